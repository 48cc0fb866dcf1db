# tests/deb/deb.mk — the Debian package of `make deb` (scripts/mkdeb.sh): contents,
# control fields, Depends, running from an unpacked copy, reproducibility. Included
# by tests/tests.mk. Run: make deb-test (about 5 s). Prints lintian's findings when
# lintian is installed, without judging them.

SUITES += deb-test
.PHONY: deb-test

DEB_FILE := $(B)/numamalloc_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null || echo unknown).deb

deb-test: deb $(LAUNCH_DIR)/prog_launch
	@echo "== deb-test"
	$(Q)tests/deb/deb-test.sh $(abspath $(DEB_FILE)) $(abspath $(LIB)) $(VERSION) $(abspath $(LAUNCH_DIR))/prog_launch
