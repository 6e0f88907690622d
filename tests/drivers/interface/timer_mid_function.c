/* A timer whose callback is the middle of one of its functions. */
#include "misuse.h"
static struct timer_list t;
static void cb(struct timer_list *x) { (void)x; printk("never\n"); }
static int init(void)
{
	timer_setup(&t, (void (*)(struct timer_list *))((char *)cb + mid), 0);
	mod_timer(&t, jiffies + 1);
	return 0;
}
module_init(init);
