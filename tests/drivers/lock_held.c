/* Returns to the kernel holding a spinlock. */
#include <nooks/driver.h>
static spinlock_t lock;
static int init(void) { spin_lock_init(&lock); spin_lock(&lock); return 0; }
module_init(init);
