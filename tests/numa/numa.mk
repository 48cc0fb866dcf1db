# tests/numa/numa.mk — huge pages on this host, NUMA placement in QEMU VMs.
# Included by tests/tests.mk.
#   make hugepage-test   hugetlb / THP / 4 KiB backing of large blocks on this machine
#                        (sizes /proc/sys/vm/nr_hugepages, restores it; ~1 s; needs root)
#   make vm-test         placement checked page by page in 2- and 4-node QEMU VMs, and
#                        what the dump says about it (tests/numa/truth.c)
#                        (55 to 75 s on the 2-core machine with the kernel cached,
#                        +5 to 10 s to fetch it once; skipped, one line, without QEMU)
# The programs are plain x86-64 C (the TCG guest has no AVX-512) and call the
# numamalloc_* API through dlsym, so they are not linked with the library.

SUITES += hugepage-test vm-test
.PHONY: hugepage-test vm-test

NUMA_TB    := $(TB)/numa
NUMA_PROGS := $(NUMA_TB)/placement $(NUMA_TB)/hugepages $(NUMA_TB)/truth
NUMA_DEPS  := tests/numa/numa_common.c tests/numa/numa_common.h include/numamalloc.h

$(NUMA_TB)/%: tests/numa/%.c $(NUMA_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $< tests/numa/numa_common.c -ldl

hugepage-test: $(LIB) $(NUMA_TB)/hugepages
	@bash tests/numa/hugepage-test.sh $(LIB) $(NUMA_TB)

# deps.sh's output goes to a log so that a skip stays one line
vm-test: $(LIB) $(NUMA_PROGS)
	@scripts/deps.sh vm > $(NUMA_TB)/deps-vm.log 2>&1; \
	 NUMAVM_DEPS_RC=$$? bash tests/numa/vm-test.sh $(LIB) $(NUMA_TB)
