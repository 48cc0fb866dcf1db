# numamalloc — the only place compiler and linker flags live.
#
#   make            build/libnumamalloc.so (+ the white-box archive for the unit tests)
#   make test       install missing Debian packages, build, run every test suite
#   make bench      benchmarks side by side with glibc, jemalloc, tcmalloc, mimalloc
#   make bench-numa what locality is worth: latency/bandwidth per node, remote share
#                   per allocator, in 2- and 4-node VMs (bench/numa.sh)
#   make bench-residency   what the measured residency costs a dump on a 10 GiB heap
#   make check      exported symbols, and the library's call graph is a tower (no circles)
#   make deb        build/numamalloc_VERSION_ARCH.deb (scripts/mkdeb.sh; dpkg-dev)
#   make install PREFIX=/usr/local DESTDIR=   library, header, pkg-config file, man pages,
#                   the launcher (bin/numamalloc) and bin/numamalloc-report
#   make clean

CC       ?= gcc
CXX      ?= g++
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
B        := build
VERSION  := $(shell cat VERSION)
# ABI version: the SONAME is libnumamalloc.so.$(SOMAJOR) (programs linked with
# -lnumamalloc record that name); build/libnumamalloc.so stays the real file, for
# LD_PRELOAD and every script, and build/libnumamalloc.so.$(SOMAJOR) points at it.
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libnumamalloc.so.$(SOMAJOR)

# Plain x86-64: the library also runs inside the TCG NUMA VM (no AVX-512 there).
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_LIB := -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -ftls-model=initial-exec \
              -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
              -fno-stack-protector -fno-plt -fno-semantic-interposition \
              $(WARN) -Iinclude -I$(B) -D_GNU_SOURCE -DNM_VERSION='"$(VERSION)"' $(EXTRA_CFLAGS)
LDLIBS_LIB := -lmimalloc -lpthread -ldl

SRCS := $(wildcard src/*.c)
# the fault-injection build (tests/fault/fault.mk) also gets the fault hook
ifneq ($(findstring -DNM_FAULT_INJECT,$(EXTRA_CFLAGS)),)
SRCS += src/fault/fault.c
endif
OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(SRCS))
TOBJS := $(patsubst src/%.c,$(B)/tobj/%.o,$(SRCS))
PRELOAD_OBJS := $(B)/obj/interpose.o
HDRS := $(wildcard include/*.h include/numamalloc/*.h) $(B)/sizeclass_table.h

Q    ?= @
LIB  := $(B)/libnumamalloc.so
TLIB := $(B)/libnumamalloc_test.a

.PHONY: all test bench bench-quick bench-numa bench-residency check man clean install hotpath vm-test deps real-test unit-test api-test deb
all: $(LIB) $(TLIB)

# ---- generated size-class tables -------------------------------------------
$(B)/gen_sizeclass: tools/gen_sizeclass.c include/numamalloc/config.h
	@mkdir -p $(B)
	$(Q)$(CC) -std=gnu11 -O1 -Wall -Wextra -Werror -Iinclude -o $@ $<
$(B)/sizeclass_table.h: $(B)/gen_sizeclass
	$(Q)$(B)/gen_sizeclass > $@.tmp && mv $@.tmp $@

# ---- the library --------------------------------------------------------------
$(B)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_LIB) -c -o $@ $<
$(B)/obj/interpose.o: preload/interpose.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_LIB) -fexceptions -c -o $@ $<
# The exported entry points link first: the inline fast paths of malloc and free
# then sit at the same addresses whatever the size of the code behind them (their
# speed in a tight loop moves by 10 % with where they fall in a cache line).
$(LIB): $(OBJS) $(PRELOAD_OBJS) preload/exports.map
	@echo "  LD      $@"
	$(Q)$(CC) -shared -o $@ $(PRELOAD_OBJS) $(OBJS) -Wl,--version-script=preload/exports.map \
	    -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined -Wl,-soname,$(SONAME) $(LDLIBS_LIB)
	$(Q)ln -sfn libnumamalloc.so $(dir $@)$(SONAME)

# White-box archive: the same sources built with -DNM_TESTING and without the
# exported malloc family, so the unit tests run on the system malloc and call internals.
$(B)/tobj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (white-box)"
	$(Q)$(CC) $(CFLAGS_LIB) -DNM_TESTING -c -o $@ $<
$(TLIB): $(TOBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $(TOBJS)

# ---- tests -------------------------------------------------------------------
include tests/tests.mk

deps:
	@scripts/deps.sh

check: $(LIB)
	scripts/check-exports.sh $(LIB)
	scripts/check-tower.py $(B)/obj

hotpath: $(LIB)
	scripts/hotpath.sh

bench: deps $(LIB)
	bench/run.sh

bench-quick: deps $(LIB)
	bench/run.sh --quick

bench-numa: $(LIB)
	bench/numa.sh

# white-box: the test archive on the system malloc, a RES_GIB GiB heap built inside
RES_GIB ?= 10
bench-residency: $(TLIB)
	$(Q)$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -Iinclude -I$(B) -D_GNU_SOURCE -o $(B)/residency_cost \
	    bench/residency_cost.c $(TLIB) -lmimalloc -lunwind -lpthread -lm -ldl
	NUMAMALLOC_DECAY_MS=3600000 NUMAMALLOC_LARGE_CACHE=1G $(B)/residency_cost $(RES_GIB)

man:
	scripts/gen-man-env.sh --write

deb: $(LIB)
	@scripts/mkdeb.sh $(B) $(VERSION)

# ---- install -----------------------------------------------------------------
# The launcher finds the library relative to itself: BINDIR/../lib, ../lib64 or
# ../lib/<multiarch> (scripts/numamalloc, find_lib).
install: $(LIB)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 0755 scripts/numamalloc $(DESTDIR)$(BINDIR)/numamalloc
	install -m 0755 scripts/numamalloc-report $(DESTDIR)$(BINDIR)/numamalloc-report
	install -m 0644 man/numamalloc.1 $(DESTDIR)$(MANDIR)/man1/numamalloc.1
	install -m 0644 man/numamalloc-report.1 $(DESTDIR)$(MANDIR)/man1/numamalloc-report.1
	install -m 0755 $(LIB) $(DESTDIR)$(LIBDIR)/libnumamalloc.so.$(VERSION)
	ln -sfn libnumamalloc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libnumamalloc.so
	install -m 0644 include/numamalloc.h $(DESTDIR)$(INCDIR)/numamalloc.h
	install -m 0644 man/numamalloc.3 $(DESTDIR)$(MANDIR)/man3/numamalloc.3
	install -m 0644 man/numamalloc.7 $(DESTDIR)$(MANDIR)/man7/numamalloc.7
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCDIR@|$(INCDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' numamalloc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/numamalloc.pc

clean:
	rm -rf $(B)
