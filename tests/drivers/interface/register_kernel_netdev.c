/* register_netdev of kernel memory: the kernel writes the device's name there. */
#include "misuse.h"
static int init(void) { return register_netdev(TARGET); }
module_init(init);
