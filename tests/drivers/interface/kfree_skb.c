/* kfree of an skb: a kernel object, freed only by dev_kfree_skb_any. */
#include "misuse.h"
static int init(void) { kfree(netdev_alloc_skb(NULL, 256)); return 0; }
module_init(init);
