/* spin_lock_irqsave on kernel memory (interrupts off, then the write). */
#include "misuse.h"
static int init(void) { unsigned long flags; spin_lock_irqsave(TARGET, flags); (void)flags; return 0; }
module_init(init);
