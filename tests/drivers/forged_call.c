/* A call through a forged function pointer into kernel text. */
#include <nooks/driver.h>
static volatile unsigned long target = 0xffffffff80100000ul;
static int init(void) { ((void (*)(void))target)(); return 0; }
module_init(init);
