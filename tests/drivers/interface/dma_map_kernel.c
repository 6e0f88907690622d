/* dma_map_single of kernel memory: a bus address the device could write. */
#include "misuse.h"
static int init(void) { return dma_mapping_error(NULL, dma_map_single(NULL, TARGET, 64, DMA_FROM_DEVICE)); }
module_init(init);
