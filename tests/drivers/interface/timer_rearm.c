/* A timer that re-arms itself for "now" from its own callback: the kernel
 * runs it once per tick instead of looping in the timer interrupt. */
#include "misuse.h"
static struct timer_list t;
static int runs;
static void cb(struct timer_list *x)
{
	if (++runs == 50)
		printk("timer_rearm: 50 runs\n");
	if (runs < 50)
		mod_timer(x, 0);
}
static int init(void)
{
	timer_setup(&t, cb, 0);
	mod_timer(&t, 0);
	return 0;
}
module_init(init);
