# tests/sanitize.mk — the white-box unit tests under sanitizers.
#
#   make check-sanitize   every tests/unit/test_*.c built against a sanitized copy of
#                         the white-box objects and run:
#                           build/asan/   -fsanitize=address,undefined (all of them)
#                           build/tsan/   -fsanitize=thread (those that start
#                                         threads: the page-map readers, the
#                                         concurrent depot test)
#                         Any report fails the run: ASan stops at its first error,
#                         UBSan too (halt_on_error=1), TSan exits 66 after a run that
#                         reported anything.
#
# The library flags are the Makefile's CFLAGS_LIB plus -DNM_TESTING, as for the
# white-box archive, plus the sanitizer and -fno-omit-frame-pointer (readable
# stacks). Nothing in CFLAGS_LIB conflicts (-O2, -fno-stack-protector,
# -fvisibility=hidden, -ftls-model=initial-exec and -fno-plt all work with both
# sanitizers; the test programs are executables), so nothing is filtered out. The
# sanitizer runtimes replace the test programs' own malloc. What ASan can see: the
# allocator's globals and stacks and the tests' own buffers (the allocator's
# metadata and blocks come from raw mmap and have no redzones); UBSan checks every
# operation of the allocator's code; TSan every access to shared state.

SUITES += check-sanitize
.PHONY: check-sanitize

SAN_ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
SAN_TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
SAN_LIB_CFLAGS := $(CFLAGS_LIB) -DNM_TESTING

SAN_UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
# TSan only where there is concurrency to see: the tests that start threads
SAN_TSAN_SRCS  := $(shell grep -l pthread_create $(SAN_UNIT_SRCS) /dev/null)

SAN_ASAN_LIB   := $(B)/asan/libnumamalloc_test.a
SAN_TSAN_LIB   := $(B)/tsan/libnumamalloc_test.a
SAN_ASAN_BINS  := $(patsubst tests/unit/%.c,$(B)/asan/unit/%,$(SAN_UNIT_SRCS))
SAN_TSAN_BINS  := $(patsubst tests/unit/%.c,$(B)/tsan/unit/%,$(SAN_TSAN_SRCS))

$(B)/asan/tobj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (asan+ubsan)"
	$(Q)$(CC) $(SAN_LIB_CFLAGS) $(SAN_ASAN_FLAGS) -c -o $@ $<
$(B)/tsan/tobj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (tsan)"
	$(Q)$(CC) $(SAN_LIB_CFLAGS) $(SAN_TSAN_FLAGS) -c -o $@ $<

$(SAN_ASAN_LIB): $(patsubst src/%.c,$(B)/asan/tobj/%.o,$(SRCS))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(SAN_TSAN_LIB): $(patsubst src/%.c,$(B)/tsan/tobj/%.o,$(SRCS))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/asan/unit/%: tests/unit/%.c $(SAN_ASAN_LIB) $(HDRS) $(CORE_TEST_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (asan+ubsan)"
	$(Q)$(CC) $(TEST_CFLAGS) $(SAN_ASAN_FLAGS) -o $@ $< $(SAN_ASAN_LIB) $(CORE_UNIT_LIBS)
# Criterion's sandbox cannot map its arena under TSan: these link a stand-in for
# its runner (tests/life/tsan/criterion/criterion.h), not -lcriterion
SAN_TSAN_CRIT := tests/life/tsan/criterion/criterion.h
$(B)/tsan/unit/%: tests/unit/%.c $(SAN_TSAN_LIB) $(HDRS) $(CORE_TEST_HDRS) $(SAN_TSAN_CRIT)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (tsan)"
	$(Q)$(CC) -Itests/life/tsan $(TEST_CFLAGS) $(SAN_TSAN_FLAGS) -o $@ $< $(SAN_TSAN_LIB) \
	    $(filter-out -lcriterion,$(CORE_UNIT_LIBS))

SAN_ASAN_ENV := ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SAN_TSAN_ENV := TSAN_OPTIONS=halt_on_error=0:exitcode=66:second_deadlock_stack=1

check-sanitize: $(SAN_ASAN_BINS) $(SAN_TSAN_BINS)
	@echo "== check-sanitize ($(words $(SAN_ASAN_BINS)) binaries under ASan+UBSan, $(words $(SAN_TSAN_BINS)) under TSan)"
	$(Q)fail=; for t in $(SAN_ASAN_BINS); do \
	    $(SAN_ASAN_ENV) $$t $(CORE_RUN) || fail="$$fail asan/$${t##*/}"; \
	done; \
	for t in $(SAN_TSAN_BINS); do \
	    $(SAN_TSAN_ENV) $$t || fail="$$fail tsan/$${t##*/}"; \
	done; \
	if [ -n "$$fail" ]; then echo "check-sanitize: FAILED:$$fail"; exit 1; fi
