/* Returns to the kernel with interrupts disabled. */
#include <nooks/driver.h>
static int init(void) { __asm__ volatile("cli"); return 0; }
module_init(init);
