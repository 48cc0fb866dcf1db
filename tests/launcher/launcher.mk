# tests/launcher/launcher.mk — the launcher (scripts/numamalloc) and its man pages.
# Included by tests/tests.mk. Run: make launcher-test (about 10 s).
#
#   $(TB)/launcher/prog_launch   the program run through the launcher (not linked to
#                                numamalloc: it asks for numamalloc_block_info by dlsym)
#   $(TB)/launcher/libmark.so    a preload of the test's own, to see LD_PRELOAD kept
#   tests/launcher/launcher-test.sh  every check; its header lists them

SUITES += launcher-test
.PHONY: launcher-test

LAUNCH_DIR := $(TB)/launcher

$(LAUNCH_DIR)/prog_launch: tests/launcher/prog_launch.c include/numamalloc.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $< -ldl

$(LAUNCH_DIR)/libmark.so: tests/launcher/libmark.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(TEST_CFLAGS) -fPIC -shared -o $@ $<

launcher-test: $(LIB) $(LAUNCH_DIR)/prog_launch $(LAUNCH_DIR)/libmark.so
	@echo "== launcher-test"
	$(Q)tests/launcher/launcher-test.sh $(abspath $(LAUNCH_DIR)) $(abspath $(LIB)) $(VERSION)
