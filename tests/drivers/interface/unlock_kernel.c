/* spin_unlock on kernel memory: the kernel's xchg would clear it. */
#include "misuse.h"
static int init(void) { spin_unlock(TARGET); return 0; }
module_init(init);
