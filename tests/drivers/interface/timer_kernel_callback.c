/* A timer whose callback is kernel code. */
#include "misuse.h"
static struct timer_list t;
static int init(void)
{
	timer_setup(&t, (void (*)(struct timer_list *))(void *)printk, 0);
	mod_timer(&t, jiffies + 1);
	return 0;
}
module_init(init);
