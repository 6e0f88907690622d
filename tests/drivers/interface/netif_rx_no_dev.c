/* netif_rx of an skb whose dev is not a registered device of the driver. */
#include "misuse.h"
static int init(void)
{
	struct sk_buff *skb = netdev_alloc_skb(NULL, 128);
	skb_put(skb, 60);
	skb->dev = (struct net_device *)TARGET;
	netif_rx(skb);
	return 0;
}
module_init(init);
