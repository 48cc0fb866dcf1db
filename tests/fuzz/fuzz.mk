# tests/fuzz/fuzz.mk — coverage-guided fuzzing and the differential test against glibc.
#
#   make fuzz-test       (in make test, ~40 s) an oracle self-test (a broken malloc must be
#                        caught); the committed corpus and regressions replayed under
#                        LD_PRELOAD=$(LIB) (the release build) with default options, check
#                        mode, a 300K large threshold, no decay or mapping cache; then a
#                        bounded libFuzzer run of FUZZ_TEST_SECONDS, which must show that
#                        numamalloc served the blocks (numamalloc_block_info counts by kind)
#   make fuzz-diff-test  (in make test, ~5 s) the same operation sequences, single-threaded,
#                        under glibc and under numamalloc: transcripts must hash the same
#   make fuzz            a long run: FUZZ_SECONDS (600) on FUZZ_JOBS (all cores) workers, niced;
#                        corpus in $(FZ_DIR)/corpus, crashes in $(FZ_DIR)/crashes
#   make fuzz-min FUZZ_INPUT=crash-...   minimise a crash input (then keep it in tests/fuzz/regressions)
#
# Coverage: libFuzzer is guided by the allocator's own branches. $(FZ_LIB) is a copy of the
# library built by clang from the same sources with the same $(CFLAGS_LIB), plus
# -fsanitize=fuzzer-no-link (counters, compare tracing), into $(FZ_DIR). The fuzz target is
# linked against it (DT_NEEDED, found through its run path): its malloc family interposes
# libc's exactly as under LD_PRELOAD, libFuzzer's own allocations included, and the link
# exports libFuzzer's coverage callbacks to it. Not LD_PRELOAD itself: libFuzzer's -jobs
# and -merge start their workers through /bin/sh, which would inherit the preload of a
# library that needs the fuzzer's callbacks and fail to start. No ASan: it replaces malloc.

SUITES += fuzz-test fuzz-diff-test
.PHONY: fuzz fuzz-test fuzz-diff-test fuzz-min

FZ_DIR     := $(B)/fuzz
FZ_CC      := clang
FZ_COV     := -fsanitize=fuzzer-no-link
FZ_OBJS    := $(patsubst src/%.c,$(FZ_DIR)/obj/%.o,$(SRCS)) $(FZ_DIR)/obj/interpose.o
FZ_LIB     := $(FZ_DIR)/libnumamalloc.so
FZ_BIN     := $(FZ_DIR)/fuzz_alloc
FZ_REPLAY  := $(FZ_DIR)/nmf_replay
FZ_BROKEN  := $(FZ_DIR)/libnmf_broken.so
FZ_HDRS    := tests/fuzz/nmf.h include/numamalloc.h
# the engine calls the family for real: no folding of malloc/free pairs or malloc(huge) == NULL
# (memcpy stays a builtin: the fill loops' 8-byte copies must compile to plain stores)
FZ_NOBUILTIN := $(foreach f,malloc calloc realloc free aligned_alloc posix_memalign memalign valloc pvalloc,-fno-builtin-$(f))
FZ_CFLAGS  := $(TEST_CFLAGS) -O2 $(FZ_NOBUILTIN)
FZ_SEEDS   := tests/fuzz/corpus tests/fuzz/regressions
# libFuzzer: inputs up to 2 KiB (~400 operations); a stuck input fails after 60 s; the
# engine keeps 64 MiB live at most (peak RSS seen: ~400 MiB), so 2 GiB means a leak
FZ_FLAGS   := -max_len=2048 -timeout=60 -rss_limit_mb=2048 -print_final_stats=1

# the replay runs once per option set (commas separate variables within one set)
FZ_VARIANTS := NUMAMALLOC_CHECK=0 NUMAMALLOC_CHECK=1 NUMAMALLOC_LARGE_THRESHOLD=300K \
               NUMAMALLOC_DECAY_MS=0,NUMAMALLOC_LARGE_CACHE=0

FUZZ_SECONDS      ?= 600
FUZZ_JOBS         ?= $(shell nproc)
FUZZ_TEST_SECONDS ?= 30
FUZZ_DIFF_SEQS    ?= 500

$(FZ_DIR)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz coverage)"
	$(Q)$(FZ_CC) $(CFLAGS_LIB) $(FZ_COV) -c -o $@ $<
$(FZ_DIR)/obj/interpose.o: preload/interpose.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz coverage)"
	$(Q)$(FZ_CC) $(CFLAGS_LIB) -fexceptions $(FZ_COV) -c -o $@ $<
# as $(LIB), less --no-undefined: the coverage callbacks come from the fuzz target
$(FZ_LIB): $(FZ_OBJS) preload/exports.map
	@echo "  LD      $@"
	$(Q)$(FZ_CC) -shared -o $@ $(FZ_OBJS) -Wl,--version-script=preload/exports.map \
	    -Wl,-z,now -Wl,-z,relro -Wl,-soname,libnumamalloc.so $(LDLIBS_LIB)

$(FZ_BIN): tests/fuzz/fuzz_alloc.c $(FZ_HDRS) $(FZ_LIB)
	@echo "  CC      $@ (libFuzzer)"
	$(Q)$(FZ_CC) $(FZ_CFLAGS) -fsanitize=fuzzer -o $@ $< -Wl,--no-as-needed $(FZ_LIB) \
	    -Wl,-rpath,$(abspath $(FZ_DIR)) -ldl

# replay and differential driver: gcc, no libFuzzer, no numamalloc linked (preloaded or not)
$(FZ_REPLAY): tests/fuzz/replay.c tests/fuzz/fuzz_alloc.c $(FZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(FZ_CFLAGS) -o $@ tests/fuzz/replay.c tests/fuzz/fuzz_alloc.c -ldl

# a deliberately wrong malloc for tests/fuzz/oracle-selftest.sh: the checks can fail
$(FZ_BROKEN): tests/fuzz/broken.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(FZ_CFLAGS) -fPIC -shared -o $@ $< -ldl

fuzz-test: $(LIB) $(FZ_BIN) $(FZ_REPLAY) $(FZ_BROKEN)
	@echo "== fuzz-test (oracle self-test; corpus and regressions on $(LIB); $(FUZZ_TEST_SECONDS) s of libFuzzer)"
	$(Q)tests/fuzz/oracle-selftest.sh $(FZ_REPLAY) $(abspath $(FZ_BROKEN)) tests/fuzz/corpus
	$(Q)for v in $(FZ_VARIANTS); do \
	    v=$$(echo $$v | tr , ' '); echo "fuzz-test: replay on $(LIB) with $$v"; \
	    env $$v LD_PRELOAD=$(NM_LIB_ABS) $(FZ_REPLAY) check $(FZ_SEEDS) > $(FZ_DIR)/replay.log 2>&1 \
	        || { cat $(FZ_DIR)/replay.log; exit 1; }; tail -n 1 $(FZ_DIR)/replay.log; \
	done
	$(Q)rm -rf $(FZ_DIR)/test && mkdir -p $(FZ_DIR)/test/corpus
	$(Q)nice $(FZ_BIN) $(FZ_FLAGS) -seed=1 -max_total_time=$(FUZZ_TEST_SECONDS) \
	    -artifact_prefix=$(FZ_DIR)/test/ $(FZ_DIR)/test/corpus $(FZ_SEEDS) > $(FZ_DIR)/test/log 2>&1; \
	rc=$$?; tests/fuzz/fuzz-report.sh $(FZ_DIR)/test/log; rep=$$?; \
	if [ $$rc -ne 0 ]; then echo "fuzz-test: libFuzzer exited $$rc; input(s):"; \
	    ls $(FZ_DIR)/test/crash-* $(FZ_DIR)/test/timeout-* $(FZ_DIR)/test/oom-* 2>/dev/null; \
	    grep -m5 -E "nmf: FAIL|ERROR|==[0-9]+==" $(FZ_DIR)/test/log; exit 1; fi; \
	exit $$rep

fuzz-diff-test: $(LIB) $(FZ_REPLAY)
	@echo "== fuzz-diff-test (glibc against numamalloc, $(FUZZ_DIFF_SEQS) generated sequences + corpus)"
	$(Q)tests/fuzz/differential.sh $(FZ_REPLAY) $(NM_LIB_ABS) $(FZ_DIR)/diff $(FUZZ_DIFF_SEQS) $(FZ_SEEDS)

# -jobs runs its workers from $(FZ_DIR)/run (libFuzzer writes fuzz-N.log into the current
# directory); each worker fuzzes for FUZZ_SECONDS and rereads the shared corpus
fuzz: $(FZ_BIN)
	@mkdir -p $(FZ_DIR)/corpus $(FZ_DIR)/crashes $(FZ_DIR)/run
	@echo "== fuzz: $(FUZZ_JOBS) workers for $(FUZZ_SECONDS) s; logs $(FZ_DIR)/run/fuzz-*.log"
	$(Q)cd $(FZ_DIR)/run && rm -f fuzz-*.log && nice $(abspath $(FZ_BIN)) $(FZ_FLAGS) \
	    -jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(abspath $(FZ_DIR))/crashes/ $(abspath $(FZ_DIR))/corpus \
	    $(abspath $(FZ_SEEDS)); \
	rc=$$?; for l in fuzz-*.log; do $(abspath tests/fuzz/fuzz-report.sh) $$l; done; \
	echo "fuzz: corpus $$(ls $(abspath $(FZ_DIR))/corpus | wc -l) inputs; crashes: $$(ls $(abspath $(FZ_DIR))/crashes | wc -l)"; exit $$rc

FUZZ_INPUT ?=
fuzz-min: $(FZ_BIN)
	@test -n "$(FUZZ_INPUT)" || { echo "make fuzz-min FUZZ_INPUT=path/to/crash-input"; exit 2; }
	$(Q)$(FZ_BIN) -minimize_crash=1 -max_total_time=120 -exact_artifact_path=$(FUZZ_INPUT).min $(FUZZ_INPUT)
	@echo "minimised: $(FUZZ_INPUT).min"
