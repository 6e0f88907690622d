/* netif_rx of its own skb with a length far past its buffer. */
#include "misuse.h"
static int init(void)
{
	struct net_device *dev = own_netdev();
	struct sk_buff *skb = netdev_alloc_skb(dev, 128);
	skb->len = 1 << 30;
	skb->dev = dev;
	netif_rx(skb);
	return 0;
}
module_init(init);
