/* numamalloc — attribute macros, small inline helpers and the lock type, included
 * by every file. Cross-file prototypes are in internal.h. */
#ifndef NM_BASE_H
#define NM_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>
#include <pthread.h>

#include "numamalloc/config.h"
#include "numamalloc/atomic.h"

#define NM_LIKELY(x)     __builtin_expect(!!(x), 1)
#define NM_UNLIKELY(x)   __builtin_expect(!!(x), 0)
#define NM_NOINLINE      __attribute__((noinline))
#define NM_INLINE        static inline __attribute__((always_inline))
#define NM_COLD          __attribute__((cold, noinline))
#define NM_TLS           __thread __attribute__((tls_model("initial-exec")))
#define NM_EXPORT        __attribute__((visibility("default")))
#define NM_ALIGNED(n)    __attribute__((aligned(n)))
#define NM_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#define NM_ARRAY_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define NM_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define NM_MAX(a, b)     ((a) > (b) ? (a) : (b))

NM_INLINE uintptr_t nm_align_up(uintptr_t x, uintptr_t a)   { return (x + a - 1) & ~(a - 1); }
NM_INLINE uintptr_t nm_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }
NM_INLINE bool nm_is_pow2(size_t x) { return x && !(x & (x - 1)); }

/* Locks are plain pthread mutexes: they never allocate, sleep when the holder is
 * preempted (16 threads on 2 cores), and fork.c can take them all in one order.
 * The order is written once, in src/fork.c. A busy lock is first watched for a
 * few microseconds, as glibc's adaptive mutexes do: our critical sections are a
 * magazine exchange or a slab batch, shorter than the sleep and wake-up a waiter
 * would otherwise pay (256 threads on 2 cores: a third fewer context switches).
 * The watch reads glibc's lock word and only then tries to take it, so waiters
 * do not write the line the holder uses. */
typedef pthread_mutex_t nm_lock_t;
#define NM_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
/* The process-wide locks (not the per-domain ones) sit together in one page of .data,
 * a cache line each: src/fork.c writes every one of them at each fork, and a fork
 * pays a fault for every page written, three times over (scattered through .bss
 * they were five pages). */
#define NM_GLOBAL_LOCK __attribute__((section(".data.nm_locks"), aligned(64)))
/* Big zeroed tables go after .bss (the linker's .lbss, also never in the file), so
 * that the small variables a process touches while it starts share a few pages: each
 * first touch is a page fault (about 10 us in a virtual machine). */
#define NM_BIG_BSS __attribute__((section(".lbss")))
#define NM_LOCK_SPINS 128
#if defined(__x86_64__) || defined(__i386__)
#define NM_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define NM_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define NM_CPU_RELAX() __asm__ __volatile__("" ::: "memory")
#endif

/* Ask for a line in order to write it. x86-64's baseline has no PREFETCHW, so the
 * builtin would emit a read prefetch, and the write would then wait for the other
 * copies to go; every x86-64 CPU accepts the instruction (those without it run it
 * as a no-op). */
#if defined(__x86_64__)
#define NM_PREFETCH_WRITE(p) __asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)(p)))
#else
#define NM_PREFETCH_WRITE(p) __builtin_prefetch((p), 1, 3)
#endif

static __attribute__((noinline, unused)) void nm_lock_contended(nm_lock_t *l)
{
    for (int i = 0; i < NM_LOCK_SPINS; i++) {
        NM_CPU_RELAX();
        if (__atomic_load_n(&l->__data.__lock, __ATOMIC_RELAXED) == 0 && pthread_mutex_trylock(l) == 0) return;
    }
    pthread_mutex_lock(l);
}
NM_INLINE void nm_lock(nm_lock_t *l)
{
    if (__builtin_expect(pthread_mutex_trylock(l) != 0, 0)) nm_lock_contended(l);
}
NM_INLINE void nm_unlock(nm_lock_t *l)  { pthread_mutex_unlock(l); }
NM_INLINE bool nm_trylock(nm_lock_t *l) { return pthread_mutex_trylock(l) == 0; }
NM_INLINE void nm_lock_reinit(nm_lock_t *l) { pthread_mutex_init(l, NULL); }

#endif
