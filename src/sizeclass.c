/* numamalloc — the size-class tables (generated into build/sizeclass_table.h by
 * tools/gen_sizeclass.c), defined once here for every file. Uses nothing. */
#define NM_SIZECLASS_DEFINE
#include "numamalloc/sizeclass.h"
