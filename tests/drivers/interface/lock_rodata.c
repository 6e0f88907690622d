/* A lock in the driver's own read-only data: its window, but not memory the
 * kernel may write for it. */
#include "misuse.h"
static const spinlock_t frozen = { 0, 0 };
static int init(void) { spin_lock((spinlock_t *)&frozen); return 0; }
module_init(init);
