/* Arms a timer, then points the timer_list's callback (driver memory) at
 * kernel code: the kernel calls the callback it checked when the timer was
 * set up, never what the driver wrote later. Nothing fails. */
#include "misuse.h"
static struct timer_list t;
static void cb(struct timer_list *x) { (void)x; printk("timer_changed: the registered callback ran\n"); }
static int init(void)
{
	timer_setup(&t, cb, 0);
	mod_timer(&t, jiffies + 2);
	t.function = (void (*)(struct timer_list *))(void *)kfree;
	return 0;
}
module_init(init);
