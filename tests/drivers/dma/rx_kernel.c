/* Receive descriptors aimed at a kernel page: every frame the spare NIC
 * receives (promiscuous: the e1000 domains' traffic on the hub) is written
 * there. */
#include "aim.h"

static int probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	dma_addr_t ring_dma;
	struct e1000_rx_desc *ring = bring_up(pdev, RING * sizeof(*ring), &ring_dma);
	int i;

	(void)id;
	if (!ring)
		return -ENOMEM;
	for (i = 0; i < RING; i++) {
		ring[i].buffer_addr = DMA_TARGET; /* where a mapped skb belongs */
		ring[i].status = 0;
	}
	wr(E1000_RDBAL, (u32)ring_dma);
	wr(E1000_RDBAH, (u32)(ring_dma >> 32));
	wr(E1000_RDLEN, RING * sizeof(*ring));
	wr(E1000_RDH, 0);
	wr(E1000_RDT, RING - 1);
	wr(E1000_RCTL, E1000_RCTL_EN | RCTL_UPE | RCTL_MPE | E1000_RCTL_BAM | E1000_RCTL_SZ_2048 |
			       E1000_RCTL_SECRC);
	printk("dma_rx_kernel: %d receive buffers at %llx\n", RING, (u64)DMA_TARGET);
	return 0;
}

SPARE_NIC_DRIVER(probe)
