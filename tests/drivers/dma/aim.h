/*
 * Drivers that aim their device's DMA at kernel memory. Each binds the spare
 * NIC of tests/tests/dma.rs (an 82545EM, 8086:100f, which e1000.o leaves
 * alone), resets it and sets up a ring in its own coherent memory as a real
 * driver does — and then writes DMA_TARGET, the physical address of a kernel
 * page (-DDMA_TARGET=...), into the descriptors where a buffer of its own
 * belongs. No store check and no page table sees that: the device's DMA
 * goes to the page unless the IOMMU refuses it.
 */
#include <nooks/driver.h>
#include "../../../drivers/e1000/e1000_hw.h"

#ifndef DMA_TARGET
#error "built by tests/tests/dma.rs with -DDMA_TARGET=<a kernel page's physical address>"
#endif

#define RING 8
#define RCTL_UPE (1u << 3) /* unicast promiscuous */
#define RCTL_MPE (1u << 4) /* multicast promiscuous */

static u8 __iomem *hw;
static inline void wr(u32 reg, u32 v) { writel(v, hw + reg); }
static inline u32 rd(u32 reg) { return readl(hw + reg); }

/* Enables the device (bus mastering on), maps its registers, resets it,
 * sets its link up, and allocates a ring of `size` bytes of coherent memory
 * (its bus address in *ring_dma); the ring, or NULL. */
static void *bring_up(struct pci_dev *pdev, size_t size, dma_addr_t *ring_dma)
{
	if (pci_enable_device(pdev))
		return NULL;
	pci_set_master(pdev);
	hw = ioremap(pci_resource_start(pdev, 0), pci_resource_len(pdev, 0));
	if (!hw)
		return NULL;
	wr(E1000_IMC, 0xffffffff);
	wr(E1000_RCTL, 0);
	wr(E1000_TCTL, E1000_TCTL_PSP);
	wr(E1000_CTRL, rd(E1000_CTRL) | E1000_CTRL_RST);
	mdelay(1);
	wr(E1000_IMC, 0xffffffff);
	wr(E1000_CTRL, rd(E1000_CTRL) | E1000_CTRL_SLU | E1000_CTRL_ASDE);
	return dma_alloc_coherent(pdev, size, ring_dma, GFP_KERNEL);
}

#define SPARE_NIC_DRIVER(probe_fn)                                                               \
	static const struct pci_device_id ids[] = { { PCI_DEVICE(0x8086, 0x100f) }, { 0 } };     \
	static struct pci_driver drv = { .name = __FILE__, .id_table = ids, .probe = probe_fn }; \
	static int init(void) { return pci_register_driver(&drv); }                             \
	module_init(init);
