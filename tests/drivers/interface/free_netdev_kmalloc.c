/* free_netdev of a kmalloc block. */
#include "misuse.h"
static int init(void) { free_netdev(kzalloc(256, GFP_KERNEL)); return 0; }
module_init(init);
