/* numamalloc — metadata memory: descriptors, magazines, topology tables.
 *
 * Never from malloc (we are malloc) and never from the fallback arena: memory comes
 * from 256 KiB chunks mapped with nm_os_map and carved by a bump pointer. Freed
 * objects go on free lists segregated by size in 64-byte units up to 8 KiB, and
 * are reused (zeroed again) by the next request of the same unit count. Larger
 * requests get a mapping of their own. Everything is 64-byte aligned and zeroed.
 * meta_bytes counts what is mapped. One lock (meta_lock), a leaf in the lock order:
 * nothing is called with it held. */
#include <string.h>

#include "numamalloc/internal.h"

#define META_UNIT      64
#define META_MAX_UNITS 128                  /* 8 KiB */
#define META_CHUNK     ((size_t)256 << 10)

typedef struct meta_free { struct meta_free *next; } meta_free_t;

NM_GLOBAL_LOCK nm_lock_t nm_meta_lock = NM_LOCK_INIT;
static meta_free_t *free_lists[META_MAX_UNITS + 1];
static char *bump, *bump_end;

void *nm_meta_alloc(size_t size)
{
    if (size == 0) size = 1;
    size_t units = (size + META_UNIT - 1) / META_UNIT;
    if (units > META_MAX_UNITS) {
        size_t len = nm_align_up(size, nm_os_page);
        void *p = nm_os_map(len, 0);
        if (p) nm_gstat_add(NM_C_meta_bytes, len);
        return p;
    }
    void *p = NULL;
    nm_lock(&nm_meta_lock);
    if (free_lists[units]) {
        meta_free_t *f = free_lists[units];
        free_lists[units] = f->next;
        p = f;
        nm_unlock(&nm_meta_lock);
        memset(p, 0, units * META_UNIT);
        return p;
    }
    size_t bytes = units * META_UNIT;
    if (bump == NULL || (size_t)(bump_end - bump) < bytes) {
        char *c = nm_os_map(META_CHUNK, 0);
        if (c == NULL) { nm_unlock(&nm_meta_lock); return NULL; }
        nm_gstat_add(NM_C_meta_bytes, META_CHUNK);
        /* the tail of the old chunk is lost: at most 8 KiB per 256 KiB */
        bump = c;
        bump_end = c + META_CHUNK;
    }
    p = bump;
    bump += bytes;
    nm_unlock(&nm_meta_lock);
    return p;
}

void nm_meta_free(void *p, size_t size)
{
    if (p == NULL) return;
    if (size == 0) size = 1;
    size_t units = (size + META_UNIT - 1) / META_UNIT;
    if (units > META_MAX_UNITS) {
        size_t len = nm_align_up(size, nm_os_page);
        if (nm_os_unmap(p, len)) nm_gstat_sub(NM_C_meta_bytes, len);
        return;
    }
    nm_lock(&nm_meta_lock);
    meta_free_t *f = p;
    f->next = free_lists[units];
    free_lists[units] = f;
    nm_unlock(&nm_meta_lock);
}
