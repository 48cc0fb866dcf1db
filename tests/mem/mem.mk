# tests/mem/mem.mk — memory goes back to the OS. Included by tests/tests.mk.
#
#   make mem-test    Criterion (tests/mem/test_mem.c); each case runs the helper
#                    tests/mem/mem_return.c in a fresh preloaded process with an
#                    explicit environment and judges the numbers it prints:
#                      - decay runs on every path: after 60 MiB of 3 MiB blocks are
#                        freed, 3 s of nothing but 1 MiB pairs end with a small RSS
#                      - large blocks a thread keeps while it sits idle: reused by
#                        other threads' requests, given back by malloc_trim(0),
#                        dropped in a forked child, aged out after the decay time
#                      - NUMAMALLOC_BACKGROUND=1: the option is accepted; memory freed
#                        before a program goes quiet (no allocator call at all) is
#                        returned, also in a forked child
# Every helper run has a hang guard of its own (alarm, 20 s) besides the spawn
# timeout. RSS bounds are wide (tens of MiB against what the runs hold); no timing is
# asserted. About 15 s.

SUITES += mem-test
.PHONY: mem-test

MEM_DIR  := $(TB)/mem
MEM_BINS := $(MEM_DIR)/mem_return
MEM_TEST := $(MEM_DIR)/test_mem

$(MEM_DIR)/mem_return: tests/mem/mem_return.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -ldl

$(MEM_TEST): tests/mem/test_mem.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -DNM_MEM_DIR='"$(abspath $(MEM_DIR))"' -o $@ $< $(RT_SPAWN_O) -lcriterion -ldl

mem-test: $(LIB) $(MEM_BINS) $(MEM_TEST)
	@echo "== mem-test"
	$(Q)$(MEM_TEST) $(RT_CRITERION)
