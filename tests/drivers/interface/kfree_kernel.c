/* kfree of kernel memory. */
#include "misuse.h"
static int init(void) { kfree(TARGET); return 0; }
module_init(init);
