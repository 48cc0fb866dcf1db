# tests/tests.mk — included by the Makefile.
#
# `make test` installs missing Debian packages (scripts/deps.sh), builds, and runs
# every suite; each suite lives in its own fragment:
#   tests/core.mk        unit (white-box), API conformance, misuse
#   tests/runtime.mk     preload: env, threads, fork, bootstrap; stress; real
#                        programs compared with their unpreloaded runs
#   tests/numa/numa.mk   hugetlb/THP on this host, NUMA placement in QEMU VMs
#   tests/obs.mk         stats dumps (text/JSON), profiler, report, man pages
#   tests/fuzz/fuzz.mk   coverage-guided fuzzing (bounded run), differential vs glibc
#   tests/fault/fault.mk fault injection: mmap/madvise/mbind/hugetlb failures, ulimit -v
#   tests/life/life.mk   thread churn, fork storms, spawn, signals, 256 threads; `make soak`
#   tests/mem/mem.mk     memory returned to the OS: decay on every path, large blocks kept
#                        by idle threads, NUMAMALLOC_BACKGROUND
#   tests/sanitize.mk    white-box unit tests under ASan+UBSan and TSan
#   tests/pprof/pprof.mk NUMAMALLOC_PROF_FILE: pprof-format profile read by google-pprof,
#                        collapsed stacks, the report's flame graph
#   tests/launcher/launcher.mk  the launcher scripts/numamalloc, its man pages, make install
#   tests/deb/deb.mk     make deb: contents, control fields, run from an unpacked copy
# Timings never gate a test: they belong to bench/.

TB          := $(B)/tests
TEST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -I$(B) -Itests -D_GNU_SOURCE -pthread
TEST_CXXFLAGS := -std=gnu++17 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -pthread
NM_LIB_ABS  := $(abspath $(LIB))
export NM_LIB_ABS

SUITES :=
include tests/core.mk
include tests/runtime.mk
include tests/numa/numa.mk
include tests/obs.mk
-include tests/fuzz/fuzz.mk
-include tests/fault/fault.mk
-include tests/life/life.mk
-include tests/mem/mem.mk
-include tests/sanitize.mk
include tests/pprof/pprof.mk
include tests/launcher/launcher.mk
include tests/deb/deb.mk

.PHONY: test test-run
# -k: every suite runs even when an earlier one failed (one report shows all
# failures); make test still fails then, without the "all suites passed" line
test:
	@scripts/deps.sh
	@$(MAKE) -k --no-print-directory test-run

test-run: all check $(SUITES)
	@echo "make test: all suites passed"
