/* Unmaps a DMA mapping twice: under iommu=strict the second unmap could
 * take away a page another mapping still uses, so it fails the domain;
 * elsewhere nothing is tracked and it does nothing. */
#include <nooks/driver.h>

static u8 buffer[256];

static int init(void)
{
	dma_addr_t bus = dma_map_single(NULL, buffer, sizeof(buffer), DMA_TO_DEVICE);

	if (dma_mapping_error(NULL, bus))
		return -ENOMEM;
	dma_unmap_single(NULL, bus, sizeof(buffer), DMA_TO_DEVICE);
	dma_unmap_single(NULL, bus, sizeof(buffer), DMA_TO_DEVICE);
	printk("unmap_twice: unmapped twice\n");
	return 0;
}
module_init(init);
