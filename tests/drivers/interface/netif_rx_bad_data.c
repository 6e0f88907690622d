/* netif_rx of its own skb whose data pointer it aimed at kernel memory: the
 * kernel's receive path would read the frame from there. */
#include "misuse.h"
static int init(void)
{
	struct net_device *dev = own_netdev();
	struct sk_buff *skb = netdev_alloc_skb(dev, 128);
	skb->data = TARGET;
	skb->len = 64;
	skb->dev = dev;
	netif_rx(skb);
	return 0;
}
module_init(init);
