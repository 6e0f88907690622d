/* A store into another domain's window (domain 0's writable part). */
#include <nooks/driver.h>
static int init(void) { *(volatile long *)0xffffffffc0800000ul = 0x0bad; return 0; }
module_init(init);
