/* iounmap of an address that is not its mapping (the kernel's ioremap area). */
#include "misuse.h"
static int init(void) { iounmap((void *)0xffffc00000000000ull); return 0; }
module_init(init);
