/* memset into kernel memory through the export (not a store of its own). */
#include "misuse.h"
static int init(void) { memset(TARGET, 0, 16); return 0; }
module_init(init);
