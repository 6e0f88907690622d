/* An infinite loop. */
#include <nooks/driver.h>
static volatile int spin = 1;
static int init(void) { while (spin) barrier(); return 0; }
module_init(init);
