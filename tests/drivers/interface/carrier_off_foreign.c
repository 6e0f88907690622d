/* netif_carrier_off and netif_stop_queue on another domain's net device. */
#include "misuse.h"
static int init(void)
{
	struct net_device *d = find_eth0();
	netif_stop_queue(d);
	netif_carrier_off(d);
	return 0;
}
module_init(init);
