/* unregister_netdev of another domain's net device (e1000's eth0). */
#include "misuse.h"
static int init(void) { unregister_netdev(find_eth0()); return 0; }
module_init(init);
