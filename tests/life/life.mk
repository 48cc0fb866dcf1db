# tests/life/life.mk — lifecycle and scale under the preload.
#
#   make life-test   Criterion (tests/life/test_life.c); each case runs a helper
#                    (tests/life/life_*.c) in a fresh preloaded process:
#                      - 50,000 threads in waves of 8, blocks freed across threads
#                        both ways; RSS and metadata level off (life_churn)
#                      - 1,000 forks while 8 threads allocate (a quarter made by
#                        the busy threads themselves; each child checks 10,000
#                        blocks for one handed out twice); posix_spawn and
#                        vfork+exec from the same busy parent (life_fork)
#                      - signal handlers that malloc, on a thread that is not inside
#                        the allocator, at a high rate, beside busy threads (life_signal)
#                      - 256 threads at once pinned to 2 CPUs, checked contents;
#                        the time against glibc is printed, never gated; the peak
#                        RSS, median of 5 runs, at most 1.5x glibc's median + 16 MiB (life_many)
#   make soak        NOT part of `make test`: SOAK_SECONDS (600) of mixed threads
#                    and forks with interval dumps to files; RSS must stay bounded
#                    and every dump must be valid JSON (tests/life/soak.sh)
# Every helper has its own hang guard (alarm(), or a watchdog thread where SIGALRM
# is the test's own signal) besides the spawn timeout, so a deadlock fails the case
# instead of hanging CI. About 30 s on an idle 2-core machine, 60 s on a busy one.

SUITES += life-test
.PHONY: life-test soak

LIFE_DIR   := $(TB)/life
LIFE_PROGS := life_churn life_fork life_exec_child life_signal life_many life_soak
LIFE_BINS  := $(addprefix $(LIFE_DIR)/,$(LIFE_PROGS))
LIFE_HDRS  := tests/life/life.h $(RT_HDRS)
LIFE_TEST  := $(LIFE_DIR)/test_life

$(LIFE_DIR)/life_%: tests/life/life_%.c $(RT_SPAWN_O) $(LIFE_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -ldl

$(LIFE_TEST): tests/life/test_life.c $(RT_SPAWN_O) $(LIFE_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -DNM_LIFE_DIR='"$(abspath $(LIFE_DIR))"' -o $@ $< $(RT_SPAWN_O) -lcriterion -ldl

life-test: $(LIB) $(LIFE_BINS) $(LIFE_TEST)
	@echo "== life-test"
	$(Q)$(LIFE_TEST) $(RT_CRITERION)

# ---- soak (not in SUITES) ------------------------------------------------------------
SOAK_SECONDS ?= 600
SOAK_INTERVAL ?= 5
soak: $(LIB) $(LIFE_DIR)/life_soak
	@echo "== soak ($(SOAK_SECONDS) s, niced)"
	$(Q)SOAK_SECONDS=$(SOAK_SECONDS) SOAK_INTERVAL=$(SOAK_INTERVAL) nice -n 10 tests/life/soak.sh $(NM_LIB_ABS) $(abspath $(LIFE_DIR)/life_soak)
