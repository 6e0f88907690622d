/* netdev_alloc_skb for a net device that is not its own. */
#include "misuse.h"
static int init(void) { netdev_alloc_skb((struct net_device *)TARGET, 256); return 0; }
module_init(init);
