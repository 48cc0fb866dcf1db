# tests/core.mk — unit (white-box), API conformance and misuse suites.
#
#   make unit-test   tests/unit/test_*.c linked with the white-box archive $(TLIB):
#                    internals (size classes, page map, options, topology, magazines
#                    and depots, formatting and the stats emitter) called directly;
#                    the test binaries themselves run on mimalloc's malloc.
#   make api-test    tests/api/test_*.c and test_*.cc, plain Criterion programs run
#                    with LD_PRELOAD=$(LIB): the malloc family, C++ operators and the
#                    numamalloc_* API (reached through dlsym) as a program sees them;
#                    test_misuse and test_numamalloc_api also spawn
#                    $(TB)/helpers/api_misuse with explicit environments
#                    (NUMAMALLOC_CHECK=1, stats to a file, options).
#
# Criterion runs every test in a process of its own; --jobs 2 matches this machine,
# and its default output shows failures only (plus one synthesis line per binary).
# --timeout is a hang guard, far above any test's run time (the slowest takes about
# a second): timings never gate a test. Every binary runs even when an earlier one
# fails, so one report shows all failures. Both suites together take about 10 s.

SUITES += unit-test api-test

CORE_UNIT_LIBS := -lmimalloc -lunwind -lpthread -lm -ldl -lcriterion
# -fno-builtin: the compiler must not fold or drop the calls under test (malloc/free
# pairs, malloc(huge) == NULL, memalign(...)): every call reaches the library.
CORE_API_CFLAGS   := $(TEST_CFLAGS) -fno-builtin
CORE_API_CXXFLAGS := $(TEST_CXXFLAGS) -fno-builtin
CORE_RUN := --jobs 2 --short-filename --timeout 120

CORE_UNIT_BINS    := $(patsubst tests/unit/%.c,$(TB)/unit/%,$(wildcard tests/unit/test_*.c))
CORE_API_BINS     := $(patsubst tests/api/%.c,$(TB)/api/%,$(wildcard tests/api/test_*.c)) \
                     $(patsubst tests/api/%.cc,$(TB)/api/%,$(wildcard tests/api/test_*.cc))
CORE_API_HELPERS  := $(patsubst tests/helpers/%.c,$(TB)/helpers/%,$(wildcard tests/helpers/api_*.c))
CORE_TEST_HDRS    := $(wildcard tests/unit/*.h tests/api/*.h)

$(TB)/unit/%: tests/unit/%.c $(TLIB) $(HDRS) $(CORE_TEST_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $< $(TLIB) $(CORE_UNIT_LIBS)

# API tests do not link the library: they run with it preloaded (api-test below)
$(TB)/api/%: tests/api/%.c include/numamalloc.h $(CORE_TEST_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CORE_API_CFLAGS) -o $@ $< -lcriterion -ldl

$(TB)/api/%: tests/api/%.cc include/numamalloc.h $(CORE_TEST_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(CORE_API_CXXFLAGS) -o $@ $< -lcriterion -ldl

$(TB)/helpers/api_%: tests/helpers/api_%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CORE_API_CFLAGS) -o $@ $< -ldl

.PHONY: unit-test api-test
unit-test: $(CORE_UNIT_BINS)
	@echo "== unit-test ($(words $(CORE_UNIT_BINS)) binaries, white-box)"
	$(Q)fail=; for t in $(CORE_UNIT_BINS); do \
	    $$t $(CORE_RUN) || fail="$$fail $${t##*/}"; \
	done; \
	if [ -n "$$fail" ]; then echo "unit-test: FAILED:$$fail"; exit 1; fi

api-test: $(LIB) $(CORE_API_BINS) $(CORE_API_HELPERS)
	@echo "== api-test ($(words $(CORE_API_BINS)) binaries, LD_PRELOAD=$(abspath $(LIB)))"
	$(Q)fail=; for t in $(CORE_API_BINS); do \
	    NM_TEST_HELPERS=$(abspath $(TB)/helpers) LD_PRELOAD=$(abspath $(LIB)) $$t $(CORE_RUN) \
	        || fail="$$fail $${t##*/}"; \
	done; \
	if [ -n "$$fail" ]; then echo "api-test: FAILED:$$fail"; exit 1; fi
