# bench/bench.mk — builds the benchmark programs; bench/run.sh and scripts/hotpath.sh
# call it as `make -f bench/bench.mk O=<dir>` (default O=build/bench).
#
# -fno-builtin-malloc and friends, -fno-allocation-dce: the compiler must not drop a
# malloc/free or new/delete pair whose block looks unused; measuring the allocator is
# the point. -O2 like the programs people ship.

O        ?= build/bench
CC       ?= gcc
CXX      ?= g++
NOBUILTIN := -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
             -fno-allocation-dce
BCFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread $(NOBUILTIN)
BCXXFLAGS := -std=gnu++17 -O2 -g -Wall -Wextra -Werror -pthread $(NOBUILTIN)

PROGS := $(O)/nmrun $(O)/bench_pairs $(O)/bench_xthread $(O)/bench_large $(O)/bench_hot $(O)/bench_cxx \
         $(O)/bench_memreturn $(O)/bench_threads $(O)/bench_mix

.PHONY: all
all: $(PROGS)

$(O)/nmrun: bench/nmrun.c
	@mkdir -p $(O)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $@ $<

$(O)/bench_%: bench/bench_%.c bench/common.h
	@mkdir -p $(O)
	$(CC) $(BCFLAGS) -o $@ $< -lm

$(O)/bench_cxx: bench/bench_cxx.cc
	@mkdir -p $(O)
	$(CXX) $(BCXXFLAGS) -o $@ $<
