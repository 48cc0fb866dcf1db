#!/usr/bin/env bash
# scripts/check-exports.sh LIB — the .so must export exactly the malloc family,
# glibc's __libc_* aliases, C++ operator new/delete and numamalloc_*; nothing else
# (our nm_* internals and mimalloc's mi_* stay hidden). Exit 1 on any difference.
set -euo pipefail
lib=${1:-build/libnumamalloc.so}
allowed='^(malloc|free|calloc|realloc|reallocarray|cfree|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|free_sized|free_aligned_sized|malloc_trim|mallinfo|mallinfo2|mallopt|malloc_stats|malloc_info|__libc_(malloc|free|calloc|realloc|memalign|valloc|pvalloc)|__posix_memalign|numamalloc_[a-z_]+|_Zn[wa]m(RKSt9nothrow_t|St11align_val_t|St11align_val_tRKSt9nothrow_t)?|_Zd[la]Pv(m)?(RKSt9nothrow_t|St11align_val_t|St11align_val_tRKSt9nothrow_t)?)$'
required=(malloc free calloc realloc reallocarray cfree posix_memalign aligned_alloc memalign valloc pvalloc
          malloc_usable_size free_sized free_aligned_sized malloc_trim mallinfo mallinfo2 mallopt malloc_stats
          malloc_info _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t _ZnamSt11align_val_t
          _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t _ZdlPv _ZdaPv _ZdlPvm _ZdaPvm
          _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t _ZdlPvSt11align_val_t _ZdaPvSt11align_val_t
          _ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t _ZdlPvSt11align_val_tRKSt9nothrow_t
          _ZdaPvSt11align_val_tRKSt9nothrow_t numamalloc_version numamalloc_alloc_onnode
          numamalloc_alloc_interleaved numamalloc_node_of numamalloc_block_info numamalloc_stats_print
          numamalloc_stats_json numamalloc_option_get numamalloc_alloc_onnode_flags numamalloc_resident_node
          numamalloc_thread_policy_set numamalloc_thread_policy_get numamalloc_nodes_with_memory
          numamalloc_node_of_cpu numamalloc_current_node numamalloc_node_distance)
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
bad=$(grep -Ev "$allowed" <<<"$syms" || true)
rc=0
if [ -n "$bad" ]; then echo "check-exports: $lib exports symbols outside the allowed list:"; sed 's/^/  /' <<<"$bad"; rc=1; fi
for s in "${required[@]}"; do
  grep -qx "$s" <<<"$syms" || { echo "check-exports: $lib does not export $s"; rc=1; }
done
[ $rc = 0 ] && echo "check-exports: $(wc -l <<<"$syms") exported symbols, all allowed, none missing"
exit $rc
