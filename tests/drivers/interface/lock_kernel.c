/* spin_lock on kernel memory: the kernel's cmpxchg would set it. */
#include "misuse.h"
static int init(void) { spin_lock(TARGET); return 0; }
module_init(init);
