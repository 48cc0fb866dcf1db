# tests/runtime.mk — preload runtime tests, deterministic stress, real programs.
#
#   make preload-test   Criterion: first call of new threads, thread/process exit,
#                       20,000 threads, CPU migration, fork, bootstrap, environment
#                       basics, threads started by a constructor inside dlopen();
#                       every case runs a helper (tests/helpers/prog_*) in a
#                       fresh preloaded process with an explicit environment
#   make stress-test    deterministic 8-thread stress (tests/stress/stress.c), then
#                       shorter runs under option variants (check mode, no decay
#                       delay, large mappings only, profiler), each result line
#                       compared with a glibc run of the same arguments
#   make real-test      python3, g++, gcc, git, sort, sqlite3 with and without the
#                       preload, outputs compared (scripts/real-programs.sh)
# The Criterion runners themselves are not preloaded; only what they spawn is.

SUITES += preload-test stress-test real-test
.PHONY: preload-test stress-test real-test

RT_HELPERS  := $(TB)/helpers
# absolute paths baked into the runners: they spawn helpers from any directory
RT_SPAWN_DEFS := -DNM_TEST_LIB='"$(abspath $(LIB))"' -DNM_TEST_HELPER_DIR='"$(abspath $(RT_HELPERS))"'
# the helpers' allocations must be real calls, never folded away by the compiler
RT_NOBUILTIN := -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free
RT_SPAWN_O  := $(TB)/rt/spawn.o
# every helper has its own timeout (spawn.h); Criterion's is only the last guard
RT_CRITERION := --jobs 2 --short-filename --timeout 400
RT_HDRS     := tests/helpers/spawn.h

$(RT_SPAWN_O): tests/helpers/spawn.c $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_SPAWN_DEFS) -c -o $@ $<

# ---- helper programs ----------------------------------------------------------------
RT_PROGS := prog_first_op prog_exit prog_last_round prog_churn prog_fork prog_boot prog_boot_numa prog_work prog_migrate \
            prog_key_first prog_dlopen_ctor
RT_PROG_BINS := $(addprefix $(RT_HELPERS)/,$(RT_PROGS)) $(RT_HELPERS)/prog_tls_cxx $(RT_HELPERS)/libnmctor.so

$(RT_HELPERS)/libnmlate.so: tests/helpers/prog_late_lib.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -fPIC -shared -Wl,-soname,libnmlate.so -o $@ $<
$(RT_HELPERS)/prog_exit: tests/helpers/prog_exit.c $(RT_SPAWN_O) $(RT_HELPERS)/libnmlate.so $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -L$(RT_HELPERS) -lnmlate \
	    -Wl,-rpath,$(abspath $(RT_HELPERS)) -ldl
# dlopen()ed by prog_dlopen_ctor (absolute path baked in): its constructor starts and
# joins a thread that allocates; -fno-builtin keeps every malloc/free pair a real call
$(RT_HELPERS)/libnmctor.so: tests/helpers/prog_ctor_lib.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -fno-builtin -fPIC -shared -Wl,-soname,libnmctor.so -o $@ $<
$(RT_HELPERS)/prog_dlopen_ctor: tests/helpers/prog_dlopen_ctor.c $(RT_SPAWN_O) $(RT_HELPERS)/libnmctor.so $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -DNM_CTOR_LIB='"$(abspath $(RT_HELPERS))/libnmctor.so"' -o $@ $< $(RT_SPAWN_O) -ldl
$(RT_HELPERS)/prog_boot_numa: tests/helpers/prog_boot_numa.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -Wl,--no-as-needed -lnuma -Wl,--as-needed -ldl
$(RT_HELPERS)/prog_tls_cxx: tests/preload/prog_tls_cxx.cc
	@mkdir -p $(dir $@)
	@echo "  CXX     $@"
	$(Q)$(CXX) $(TEST_CXXFLAGS) -o $@ $<
$(RT_HELPERS)/prog_%: tests/helpers/prog_%.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -ldl

# ---- preload-test -------------------------------------------------------------------
RT_PRELOAD_SRCS := $(wildcard tests/preload/test_*.c)
RT_PRELOAD_BIN  := $(TB)/rt/test_preload

$(RT_PRELOAD_BIN): $(RT_PRELOAD_SRCS) $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $(RT_PRELOAD_SRCS) $(RT_SPAWN_O) -lcriterion -ldl

# extra runner arguments, e.g. to leave out tests of a known, reported bug:
#   make preload-test RT_PRELOAD_ARGS="--filter='!(thread_exit/first_allocation_in_last*)'"
RT_PRELOAD_ARGS ?=

preload-test: $(LIB) $(RT_PRELOAD_BIN) $(RT_PROG_BINS)
	@echo "== preload-test"
	$(Q)$(RT_PRELOAD_BIN) $(RT_CRITERION) $(RT_PRELOAD_ARGS)

# ---- stress-test --------------------------------------------------------------------
RT_STRESS      := $(TB)/stress/stress
RT_STRESS_TEST := $(TB)/stress/test_stress

$(RT_STRESS): tests/stress/stress.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -O2 $(RT_NOBUILTIN) -o $@ $< $(RT_SPAWN_O) -ldl
$(RT_STRESS_TEST): tests/stress/test_stress.c $(RT_SPAWN_O) $(RT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -DNM_STRESS_BIN='"$(abspath $(RT_STRESS))"' -o $@ $< $(RT_SPAWN_O) -lcriterion -ldl

stress-test: $(LIB) $(RT_STRESS) $(RT_STRESS_TEST)
	@echo "== stress-test"
	$(Q)$(RT_STRESS_TEST) $(RT_CRITERION)

# ---- real-test ----------------------------------------------------------------------
real-test: $(LIB)
	@echo "== real-test"
	$(Q)scripts/real-programs.sh $(LIB)
