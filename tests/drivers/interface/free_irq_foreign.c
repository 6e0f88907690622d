/* free_irq of a handler it never registered, on the e1000s' line. */
#include "misuse.h"
static int init(void) { free_irq(11, (void *)0xffffffffc0400000ull); return 0; }
module_init(init);
