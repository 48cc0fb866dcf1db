# tests/fault/fault.mk — fault injection. Included by tests/tests.mk.
#
#   make fault-lib    build/libnumamalloc_fault.so: the library built again from the
#                     same sources, with the same flags, objects list and exports map
#                     (a sub-make of the Makefile into $(B)/fault with -DNM_FAULT_INJECT
#                     added through EXTRA_CFLAGS), so nothing here repeats a flag. Only
#                     that build reads NUMAMALLOC_FAULT (src/os.c explains the syntax).
#   make fault-test   tests/fault/fault-test.sh: the workload tests/fault/fault_work.c
#                     under every injected fault class (mmap, hugetlb, madvise, mbind,
#                     mremap: nth-call sweeps, probabilities, all at once, 1 and 4
#                     threads), a mmap outage after start-up, ulimit -v, and hugetlb
#                     pools of 1 page and pools emptied by another process during a run
#                     (root only; tests/numa/hugepage-test.sh has the static pool cases);
#                     and NUMAMALLOC_CHECK=1 with a new slab segment's mmap failed: the
#                     block served by the reclaim-and-retry is a whole checked block.
#                     Data is checked with patterns, the stats JSON with fault_check.py.
#                     About 15 s on the 2-core machine.

SUITES += fault-test
.PHONY: fault-test fault-lib

FAULT_LIB := $(B)/libnumamalloc_fault.so
FAULT_B   := $(B)/fault
FAULT_TB  := $(TB)/fault

# The sub-make decides what is stale; the copy is refreshed only when it changed.
fault-lib:
	$(Q)$(MAKE) -s --no-print-directory B=$(FAULT_B) EXTRA_CFLAGS='$(EXTRA_CFLAGS) -DNM_FAULT_INJECT' \
	    $(FAULT_B)/libnumamalloc.so
	$(Q)cmp -s $(FAULT_B)/libnumamalloc.so $(FAULT_LIB) || cp $(FAULT_B)/libnumamalloc.so $(FAULT_LIB)
$(FAULT_LIB): fault-lib

$(FAULT_TB)/fault_work: tests/fault/fault_work.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< -ldl
# linked with the fault build (its soname is libnumamalloc.so.0; the run path finds the
# fault build's copy): a set-uid program ignores LD_PRELOAD with a path
$(FAULT_TB)/fault_secure: tests/fault/fault_secure.c $(FAULT_LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< -L$(FAULT_B) -lnumamalloc -Wl,-rpath,$(abspath $(FAULT_B))

fault-test: $(LIB) $(FAULT_LIB) $(FAULT_TB)/fault_work $(FAULT_TB)/fault_secure
	@echo "== fault-test"
	$(Q)bash tests/fault/fault-test.sh $(LIB) $(FAULT_LIB) $(FAULT_TB)

# In a full run (make test, make -jN test-run) the host's hugetlb pool belongs to one
# suite at a time: fault-test resizes it too, so it waits for hugepage-test.
ifneq ($(filter test test-run,$(MAKECMDGOALS)),)
fault-test: | hugepage-test
endif
