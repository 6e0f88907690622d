/* A net device whose ndo_start_xmit is the middle of its own function. */
#include "misuse.h"
static int xmit(struct sk_buff *skb, struct net_device *dev) { dev_kfree_skb_any(skb); (void)dev; return NETDEV_TX_OK; }
static struct net_device_ops ops;
static int init(void)
{
	struct net_device *dev = alloc_etherdev(0);
	ops.ndo_start_xmit = (int (*)(struct sk_buff *, struct net_device *))((char *)xmit + mid);
	dev->netdev_ops = &ops;
	return register_netdev(dev);
}
module_init(init);
