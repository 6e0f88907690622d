/* timer_setup on kernel memory: the kernel writes the callback and expiry. */
#include "misuse.h"
static void cb(struct timer_list *t) { (void)t; }
static int init(void) { timer_setup(TARGET, cb, 0); return 0; }
module_init(init);
