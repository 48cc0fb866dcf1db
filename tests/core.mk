# tests/core.mk — unit (white-box), API conformance and misuse suites (issue 2).
#
#   make unit-test   tests/unit/test_*.c linked with the white-box archive $(TLIB):
#                    internals (size classes, page map, options, topology, magazines
#                    and depots, formatting and the stats emitter) called directly;
#                    the test binaries themselves run on mimalloc's malloc.
#   make api-test    tests/api/test_*.c and test_*.cc, plain Criterion programs run
#                    with LD_PRELOAD=$(LIB): the malloc family, C++ operators and the
#                    numamalloc_* API (reached through dlsym) as a program sees them;
#                    test_misuse spawns $(TB)/helpers/api_misuse with explicit
#                    environments (NUMAMALLOC_CHECK=1, stats to a file).
#
# Criterion runs every test in a process of its own; --jobs 2 matches this machine,
# and its default output shows failures only (plus one synthesis line per binary).
# --timeout is a hang guard, far above any test's run time: timings never gate a test.
# Every binary runs even when an earlier one fails, so one report shows them all.

SUITES += unit-test api-test

UNIT_LIBS   := -lmimalloc -lunwind -lpthread -lm -ldl -lcriterion
# -fno-builtin: the compiler must not fold or drop the calls we are testing
# (malloc/free pairs, malloc(huge) == NULL, memalign(...)): every call reaches the library.
API_CFLAGS  := $(TEST_CFLAGS) -fno-builtin
API_CXXFLAGS := $(TEST_CXXFLAGS) -fno-builtin
CRITERION_RUN := --jobs 2 --short-filename --timeout 300

UNIT_BINS   := $(patsubst tests/unit/%.c,$(TB)/unit/%,$(wildcard tests/unit/test_*.c))
API_C_BINS  := $(patsubst tests/api/%.c,$(TB)/api/%,$(wildcard tests/api/test_*.c))
API_CXX_BINS := $(patsubst tests/api/%.cc,$(TB)/api/%,$(wildcard tests/api/test_*.cc))
API_BINS    := $(API_C_BINS) $(API_CXX_BINS)
API_HELPERS := $(patsubst tests/helpers/%.c,$(TB)/helpers/%,$(wildcard tests/helpers/api_*.c))
CORE_TEST_HDRS := $(wildcard tests/api/*.h tests/unit/*.h)

$(TB)/unit/%: tests/unit/%.c $(TLIB) $(HDRS) $(CORE_TEST_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $< $(TLIB) $(UNIT_LIBS)

$(TB)/api/%: tests/api/%.c $(LIB) $(CORE_TEST_HDRS) include/numamalloc.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(API_CFLAGS) -o $@ $< -lcriterion -ldl

$(TB)/api/%: tests/api/%.cc $(LIB) $(CORE_TEST_HDRS) include/numamalloc.h
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(API_CXXFLAGS) -o $@ $< -lcriterion -ldl

$(TB)/helpers/api_%: tests/helpers/api_%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(API_CFLAGS) -o $@ $<

.PHONY: unit-test api-test
unit-test: $(UNIT_BINS)
	@echo "  RUN     unit tests ($(words $(UNIT_BINS)) binaries)"
	$(Q)fail=; for t in $(UNIT_BINS); do \
	    $$t $(CRITERION_RUN) || fail="$$fail $${t##*/}"; \
	done; \
	if [ -n "$$fail" ]; then echo "unit-test: FAILED:$$fail"; exit 1; fi

api-test: $(API_BINS) $(API_HELPERS) $(LIB)
	@echo "  RUN     API tests under LD_PRELOAD=$(abspath $(LIB)) ($(words $(API_BINS)) binaries)"
	$(Q)fail=; for t in $(API_BINS); do \
	    NM_TEST_HELPERS=$(abspath $(TB)/helpers) LD_PRELOAD=$(abspath $(LIB)) $$t $(CRITERION_RUN) || fail="$$fail $${t##*/}"; \
	done; \
	if [ -n "$$fail" ]; then echo "api-test: FAILED:$$fail"; exit 1; fi
