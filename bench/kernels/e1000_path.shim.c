/* The kernel and the device around e1000_path.c, for the host, compiled
 * natively: the driver API (socket buffers from a free list, identity DMA
 * mappings, queue state), the device (registers and descriptor rings in
 * memory), and the loop that drives the driver through its entry points. */
#include <nooks/driver.h>
#include "../../drivers/e1000/e1000_hw.h"

#define POOL 1024
static struct sk_buff skbs[POOL];
static unsigned char data[POOL][2048];
static struct sk_buff *free_list[POOL];
static int nfree = -1;
static int stopped;

/* Every buffer free again: each timed run starts from scratch. */
void shim_reset(void)
{
	for (int i = 0; i < POOL; i++)
		free_list[i] = &skbs[i];
	nfree = POOL;
	stopped = 0;
}

static struct sk_buff *take(unsigned int len)
{
	if (nfree < 0)
		shim_reset();
	if (nfree == 0 || len > 2048)
		return NULL;
	struct sk_buff *s = free_list[--nfree];
	s->head = s->data = data[s - skbs];
	s->len = 0;
	s->size = 2048;
	return s;
}

struct sk_buff *shim_tx_skb(unsigned int len)
{
	struct sk_buff *s = take(len);
	if (s)
		s->len = len;
	return s;
}

void shim_free_skb(struct sk_buff *s)
{
	if (s)
		free_list[nfree++] = s;
}

struct sk_buff *netdev_alloc_skb(struct net_device *dev, unsigned int length) { (void)dev; return take(length); }
void dev_kfree_skb_any(struct sk_buff *skb) { shim_free_skb(skb); }
int netif_rx(struct sk_buff *skb) { shim_free_skb(skb); return 0; }
u8 *skb_put(struct sk_buff *skb, unsigned int len) { u8 *t = skb->data + skb->len; skb->len += len; return t; }
dma_addr_t dma_map_single(struct pci_dev *pdev, void *ptr, size_t size, enum dma_data_direction dir) { (void)pdev; (void)size; (void)dir; return (dma_addr_t)ptr; }
void dma_unmap_single(struct pci_dev *pdev, dma_addr_t addr, size_t size, enum dma_data_direction dir) { (void)pdev; (void)addr; (void)size; (void)dir; }
int dma_mapping_error(struct pci_dev *pdev, dma_addr_t addr) { (void)pdev; return addr == 0; }
void spin_lock_init(spinlock_t *lock) { lock->locked = 0; }
unsigned long spin_lock_irqsave_flags(spinlock_t *lock) { lock->locked = 1; return 0; }
void spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags) { (void)flags; lock->locked = 0; }
void netif_start_queue(struct net_device *dev) { (void)dev; stopped = 0; }
void netif_stop_queue(struct net_device *dev) { (void)dev; stopped = 1; }
void netif_wake_queue(struct net_device *dev) { (void)dev; stopped = 0; }
bool netif_queue_stopped(const struct net_device *dev) { (void)dev; return stopped; }
void netif_carrier_on(struct net_device *dev) { (void)dev; }
void netif_carrier_off(struct net_device *dev) { (void)dev; }
int printk(const char *fmt, ...) { (void)fmt; return 0; } /* e1000_stats.c prints every 4096 frames */

#define TX_RING 256
#define RX_RING 256
static u32 regs[0x20000 / 4];
static struct e1000_tx_desc txr[TX_RING];
static struct e1000_rx_desc rxr[RX_RING];

struct net_device *e1000_path_setup(u32 *regs, struct e1000_tx_desc *txr, struct e1000_rx_desc *rxr,
				    irqreturn_t (**handler)(int, void *));

long kernel_run(long iters)
{
	irqreturn_t (*intr)(int, void *);
	unsigned int tx_head = 0, rx_head = 0; /* the device's own positions */

	shim_reset();
	for (int i = 0; i < 0x20000 / 4; i++)
		regs[i] = 0;
	struct net_device *dev = e1000_path_setup(regs, txr, rxr, &intr);
	if (!dev)
		return -1;
	for (long it = 0; it < iters; it++) {
		for (int n = 0; n < 64; n++) {
			struct sk_buff *skb = shim_tx_skb(64 + (unsigned int)((it * 7 + n) % 1450));
			if (!skb)
				break;
			if (dev->netdev_ops->ndo_start_xmit(skb, dev) == NETDEV_TX_BUSY) {
				shim_free_skb(skb);
				break;
			}
		}
		/* The device: sends what the driver queued up to the tail it
		 * wrote, and receives 32 frames. */
		for (; tx_head != regs[E1000_TDT / 4]; tx_head = (tx_head + 1) % TX_RING)
			txr[tx_head].status |= E1000_TXD_STAT_DD;
		for (int k = 0; k < 32; k++) {
			struct e1000_rx_desc *d = &rxr[rx_head];
			d->length = (u16)(64 + ((it + k) * 37) % 1450);
			d->errors = 0;
			d->status = E1000_RXD_STAT_DD | E1000_RXD_STAT_EOP;
			rx_head = (rx_head + 1) % RX_RING;
		}
		regs[E1000_ICR / 4] = E1000_ICR_TXDW | E1000_ICR_RXT0;
		intr(11, dev);
	}
	return (long)(dev->stats.tx_bytes + dev->stats.rx_bytes + dev->stats.tx_packets);
}
