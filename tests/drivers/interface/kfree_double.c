/* kfree of the same block twice. */
#include "misuse.h"
static int init(void) { void *p = kmalloc(64, GFP_KERNEL); kfree(p); kfree(p); return 0; }
module_init(init);
