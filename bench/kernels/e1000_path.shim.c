/* The driver API e1000_path.c needs, for the host: socket buffers from a
 * free list, identity DMA mappings, and queue state. Compiled natively. */
#include <nooks/driver.h>

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
