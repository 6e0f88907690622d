/* The real e1000 descriptor-processing code — drivers/e1000/'s four files,
 * included whole — driven on the host the way the kernel drives it: e1000_path.shim.c
 * (native, never rewritten) holds the loop, transmits bursts through the
 * driver's own ndo_start_xmit, plays the device (completes what the tail
 * register says was queued, receives frames), and calls the driver's
 * interrupt handler, which reaps both rings and refills the receive ring.
 * Only the driver's code — this object — is measured against its rewrites. */
#include "../../drivers/e1000/e1000_hw.c"
#include "../../drivers/e1000/e1000_ring.c"
#include "../../drivers/e1000/e1000_stats.c"
#include "../../drivers/e1000/e1000_main.c"

static struct net_device netdev;
static struct e1000_adapter adapter;

/* The state probe and open would leave behind, on the host's memory: the
 * shim's registers and rings. Returns the interface, or NULL. */
struct net_device *e1000_path_setup(u32 *regs, struct e1000_tx_desc *txr, struct e1000_rx_desc *rxr,
				    irqreturn_t (**handler)(int, void *))
{
	struct e1000_adapter *a = &adapter;
	u32 i;

	netdev.stats = (struct net_device_stats){ 0 };
	netdev.priv = a;
	netdev.netdev_ops = &e1000_netdev_ops;
	a->netdev = &netdev;
	a->hw = (u8 __iomem *)regs;
	a->tx_ring = txr;
	a->rx_ring = rxr;
	a->tx_tail = a->tx_clean = a->rx_next = 0;
	spin_lock_init(&a->tx_lock);
	for (i = 0; i < RX_RING_SIZE; i++)
		if (e1000_alloc_rx_buffer(a, i))
			return NULL;
	netif_start_queue(&netdev);
	*handler = e1000_intr;
	return &netdev;
}
