/* A misaligned lock word in the driver's own memory. */
#include "misuse.h"
static u8 buf[32];
static int init(void) { spin_lock((spinlock_t *)(buf + 1)); return 0; }
module_init(init);
