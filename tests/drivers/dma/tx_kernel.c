/* A transmit descriptor aimed at a kernel page: the spare NIC sends the
 * kernel's bytes onto the wire. The send starts from a timer 10 ms after
 * probe, once the driver is loaded: a device fault during init_module would
 * refuse the load instead of failing (and recovering) a loaded driver. */
#include "aim.h"

#define LEN 256

static struct timer_list later;

static void send(struct timer_list *t)
{
	(void)t;
	wr(E1000_TDT, 1);
}

static int probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	dma_addr_t ring_dma;
	struct e1000_tx_desc *ring = bring_up(pdev, RING * sizeof(*ring), &ring_dma);

	(void)id;
	if (!ring)
		return -ENOMEM;
	ring[0].buffer_addr = DMA_TARGET; /* where a mapped skb belongs */
	ring[0].length = LEN;
	ring[0].cmd = E1000_TXD_CMD_EOP | E1000_TXD_CMD_IFCS | E1000_TXD_CMD_RS;
	ring[0].status = 0;
	wr(E1000_TDBAL, (u32)ring_dma);
	wr(E1000_TDBAH, (u32)(ring_dma >> 32));
	wr(E1000_TDLEN, RING * sizeof(*ring));
	wr(E1000_TDH, 0);
	wr(E1000_TDT, 0);
	wr(E1000_TIPG, E1000_TIPG_82540);
	wr(E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP | E1000_TCTL_CT | E1000_TCTL_COLD);
	timer_setup(&later, send, 0);
	mod_timer(&later, jiffies + msecs_to_jiffies(10));
	printk("dma_tx_kernel: sending %d bytes from %llx in 10 ms\n", LEN, (u64)DMA_TARGET);
	return 0;
}

SPARE_NIC_DRIVER(probe)
