/* A call through a forged function pointer into kernel text (0x10000 past
 * its start: ordinary kernel code, not the gates). */
#include <nooks/driver.h>
static volatile unsigned long target = 0xffffffff80110000ul;
static int init(void) { ((void (*)(void))target)(); return 0; }
module_init(init);
