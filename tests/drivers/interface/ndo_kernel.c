/* A net device whose ndo_open is kernel code. */
#include "misuse.h"
static struct net_device_ops ops;
static int init(void)
{
	struct net_device *dev = alloc_etherdev(0);
	ops.ndo_open = (int (*)(struct net_device *))(void *)kfree;
	dev->netdev_ops = &ops;
	return register_netdev(dev);
}
module_init(init);
