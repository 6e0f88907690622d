/* Frees its own skb twice. */
#include "misuse.h"
static int init(void)
{
	struct sk_buff *skb = netdev_alloc_skb(NULL, 256);
	dev_kfree_skb_any(skb);
	dev_kfree_skb_any(skb);
	return 0;
}
module_init(init);
