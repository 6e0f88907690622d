/* The real e1000 descriptor-processing code — drivers/e1000/e1000.c, included
 * whole — driven on the host: each round transmits a burst through
 * e1000_xmit_frame, plays the device (marks the transmitted descriptors done,
 * fills receive descriptors), and runs the interrupt handler, which reaps both
 * rings and refills the receive ring. The driver API it calls comes from
 * e1000_path.shim.c, compiled natively and never rewritten: only the driver's
 * own code is measured against its rewrites. */
#include "../../drivers/e1000/e1000.c"

static u32 regs[0x20000 / 4];
static struct net_device netdev;
static struct e1000_adapter adapter;
static struct e1000_tx_desc txr[TX_RING_SIZE];
static struct e1000_rx_desc rxr[RX_RING_SIZE];

struct sk_buff *shim_tx_skb(unsigned int len);
void shim_free_skb(struct sk_buff *skb);
void shim_reset(void);

long kernel_run(long iters)
{
	struct e1000_adapter *a = &adapter;
	u32 i;

	shim_reset();
	netdev.stats = (struct net_device_stats){ 0 };
	netdev.priv = a;
	a->netdev = &netdev;
	a->hw = (u8 __iomem *)regs;
	a->tx_ring = txr;
	a->rx_ring = rxr;
	a->tx_tail = a->tx_clean = a->rx_next = 0;
	spin_lock_init(&a->tx_lock);
	for (i = 0; i < RX_RING_SIZE; i++)
		if (e1000_alloc_rx_buffer(a, i))
			return -1;
	netif_start_queue(&netdev);
	for (long it = 0; it < iters; it++) {
		for (int n = 0; n < 64; n++) {
			struct sk_buff *skb = shim_tx_skb(64 + (unsigned int)((it * 7 + n) % 1450));
			if (!skb)
				break;
			if (e1000_xmit_frame(skb, &netdev) == NETDEV_TX_BUSY) {
				shim_free_skb(skb);
				break;
			}
		}
		/* The device: transmitted, and 32 frames received. */
		for (i = a->tx_clean; i != a->tx_tail; i = (i + 1) % TX_RING_SIZE)
			txr[i].status |= E1000_TXD_STAT_DD;
		for (int k = 0; k < 32; k++) {
			struct e1000_rx_desc *d = &rxr[(a->rx_next + k) % RX_RING_SIZE];
			d->length = (u16)(64 + ((it + k) * 37) % 1450);
			d->errors = 0;
			d->status = E1000_RXD_STAT_DD | E1000_RXD_STAT_EOP;
		}
		regs[E1000_ICR / 4] = E1000_ICR_TXDW | E1000_ICR_RXT0;
		e1000_intr(11, &netdev);
	}
	return (long)(netdev.stats.tx_bytes + netdev.stats.rx_bytes + netdev.stats.tx_packets);
}
