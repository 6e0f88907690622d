/* dma_alloc_coherent writes the bus address through a handle in kernel memory. */
#include "misuse.h"
static int init(void) { dma_alloc_coherent(NULL, 4096, TARGET, GFP_KERNEL); return 0; }
module_init(init);
