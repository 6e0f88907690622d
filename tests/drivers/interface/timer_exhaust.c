/* Sets up timers without end. */
#include "misuse.h"
static void cb(struct timer_list *t) { (void)t; }
static int init(void)
{
	for (;;) {
		struct timer_list *t = kmalloc(sizeof(*t), GFP_KERNEL);
		timer_setup(t, cb, 0);
	}
	return 0;
}
module_init(init);
