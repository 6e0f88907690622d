/* dma_free_coherent of memory that is not a coherent buffer. */
#include "misuse.h"
static u8 buf[4096];
static int init(void) { dma_free_coherent(NULL, sizeof(buf), buf, 0); return 0; }
module_init(init);
