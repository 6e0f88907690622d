/* A locked read-modify-write (lock xadd) on kernel memory. */
#include "misuse.h"
static int init(void) { __atomic_fetch_add((long *)TARGET, 1, __ATOMIC_SEQ_CST); return 0; }
module_init(init);
