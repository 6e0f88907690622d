/* A privileged instruction nooks-cc must refuse at build time. */
#include <nooks/driver.h>
static int init(void) { __asm__ volatile("wrmsr" :: "c"(0x10), "a"(0), "d"(0)); return 0; }
module_init(init);
