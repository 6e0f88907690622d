/* spin_lock_init on kernel memory: the kernel would zero the word for it. */
#include "misuse.h"
static int init(void) { spin_lock_init(TARGET); return 0; }
module_init(init);
