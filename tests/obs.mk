# tests/obs.mk — observability suite: statistics dumps, profiler, report tool,
# man pages, install and pkg-config. Run: make obs-test (10-15 s on 2 cores).
#
#   $(TB)/obs/test_obs   Criterion (tests/obs/test_obs.c): NUMAMALLOC_STATS_FILE (%p, %t,
#                        mode 0600, append, O_NOFOLLOW, forked children), dumps on
#                        SIGUSR1 while threads allocate and every second, a bad value for
#                        every option, unknown names, NUMAMALLOC_VERBOSE, AT_SECURE
#   tests/obs/test_dumps.py   the dump's numbers against known work, text sections, the
#                        profiler (hot site, leak, sample everything, threads), the report
#   tests/obs/check-man.sh    gen-man-env.sh --check (and that it catches drift), groff -ww,
#                        the numamalloc.3 example
#   tests/obs/check-install.sh  make install into $(TB)/obs/stage; pkg-config builds against it
# Helpers: prog_obs (preloaded), prog_obs_linked (linked to the library, for the set-uid
# case), prog_prof (profiler sites), prog_obs_guard (hang-guarded: a FIFO as the stats
# file, dumps while libraries are dlopen()ed, a forked child with interval dumps). Every part runs even when an earlier one fails.

SUITES += obs-test
.PHONY: obs-test

OBS_DIR  := $(TB)/obs
OBS_DEFS := -DNM_TEST_LIB='"$(abspath $(LIB))"' -DNM_TEST_HELPER_DIR='"$(abspath $(OBS_DIR))"' \
            -DNM_OBS_VERSION='"$(VERSION)"' -DNM_OBS_LINKED_HELPER='"$(abspath $(OBS_DIR))/prog_obs_linked"'
# the helpers' allocations are what the dumps are checked against: real calls only
OBS_NOBUILTIN := -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free
OBS_BINS := $(OBS_DIR)/test_obs $(OBS_DIR)/prog_obs $(OBS_DIR)/prog_obs_linked $(OBS_DIR)/prog_prof \
            $(OBS_DIR)/prog_obs_guard $(OBS_DIR)/libnmobsdl.so

$(OBS_DIR)/spawn.o: tests/helpers/spawn.c tests/helpers/spawn.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_DEFS) -c -o $@ $<

$(OBS_DIR)/test_obs: tests/obs/test_obs.c $(OBS_DIR)/spawn.o tests/helpers/spawn.h include/numamalloc/options.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_DEFS) -o $@ $< $(OBS_DIR)/spawn.o -lcriterion -ldl

$(OBS_DIR)/prog_obs: tests/obs/prog_obs.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_NOBUILTIN) -o $@ $<

# linked to the library (no LD_PRELOAD): the loader ignores preload paths in set-uid runs
$(OBS_DIR)/prog_obs_linked: tests/obs/prog_obs.c $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_NOBUILTIN) -o $@ $< -L$(B) -lnumamalloc -Wl,-rpath,$(abspath $(B))

# hang-guarded programs (stats file a FIFO, dumps during dlopen, forked children);
# the library it dlopens is found by absolute path
$(OBS_DIR)/prog_obs_guard: tests/obs/prog_obs_guard.c $(OBS_DIR)/spawn.o tests/helpers/spawn.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_NOBUILTIN) -DNM_OBS_DL_LIB='"$(abspath $(OBS_DIR))/libnmobsdl.so"' -o $@ $< $(OBS_DIR)/spawn.o -ldl
$(OBS_DIR)/libnmobsdl.so: tests/obs/prog_obs_dl_lib.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) -fno-builtin -fPIC -shared -Wl,-soname,libnmobsdl.so -o $@ $<

# not -rdynamic on purpose: the profiler must name functions from the .symtab
$(OBS_DIR)/prog_prof: tests/obs/prog_prof.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) $(OBS_NOBUILTIN) -o $@ $<

obs-test: $(LIB) $(OBS_BINS)
	@echo "== obs-test"
	$(Q)fail=; \
	$(OBS_DIR)/test_obs --jobs 2 --short-filename --timeout 600 || fail="$$fail test_obs"; \
	echo "  RUN     tests/obs/test_dumps.py"; \
	NM_OBS_LIB=$(abspath $(LIB)) NM_OBS_BIN=$(abspath $(OBS_DIR)) python3 tests/obs/test_dumps.py \
	    || fail="$$fail test_dumps.py"; \
	echo "  RUN     tests/obs/check-man.sh"; \
	tests/obs/check-man.sh $(abspath $(LIB)) || fail="$$fail check-man.sh"; \
	echo "  RUN     make install PREFIX=/usr DESTDIR=$(OBS_DIR)/stage; tests/obs/check-install.sh"; \
	rm -rf $(OBS_DIR)/stage; \
	if $(MAKE) --no-print-directory -s install B=$(B) PREFIX=/usr DESTDIR=$(abspath $(OBS_DIR))/stage >$(OBS_DIR)/install.log 2>&1; then \
	    tests/obs/check-install.sh $(abspath $(OBS_DIR))/stage $(abspath $(LIB)) $(VERSION) || fail="$$fail check-install.sh"; \
	else cat $(OBS_DIR)/install.log; fail="$$fail make-install"; fi; \
	if [ -n "$$fail" ]; then echo "obs-test: FAILED:$$fail"; exit 1; fi; \
	echo "obs-test: all passed"
