# tests/pprof/pprof.mk — NUMAMALLOC_PROF_FILE: the heap profile in pprof's legacy text
# format and collapsed stacks, read back by google-pprof (package google-perftools,
# installed by scripts/deps.sh), and the report's flame graph. Included by
# tests/tests.mk. Run: make pprof-test (about 10 s on 2 cores).
#
#   $(TB)/pprof/prog_pprof         the program with the planted site (-g, no -rdynamic:
#                                  pprof reads the names and lines from the file)
#   $(TB)/pprof/prog_pprof_linked  the same, linked to the library (the set-uid case:
#                                  the loader ignores preload paths there)
#   tests/pprof/test_pprof.py      every check; its docstring lists them

SUITES += pprof-test
.PHONY: pprof-test

PPROF_DIR  := $(TB)/pprof
PPROF_BINS := $(PPROF_DIR)/prog_pprof $(PPROF_DIR)/prog_pprof_linked
# every malloc and free of the helper is a real call, where the source says
PPROF_CFLAGS := $(TEST_CFLAGS) -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free

$(PPROF_DIR)/prog_pprof: tests/pprof/prog_pprof.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(PPROF_CFLAGS) -o $@ $<

$(PPROF_DIR)/prog_pprof_linked: tests/pprof/prog_pprof.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(PPROF_CFLAGS) -o $@ $< -L$(B) -lnumamalloc -Wl,-rpath,$(abspath $(B))

pprof-test: $(LIB) $(PPROF_BINS)
	@echo "== pprof-test"
	$(Q)NM_PPROF_LIB=$(abspath $(LIB)) NM_PPROF_BIN=$(abspath $(PPROF_DIR)) python3 tests/pprof/test_pprof.py -v
