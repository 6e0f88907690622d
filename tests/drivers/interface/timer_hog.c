/* A timer whose callback busy-waits 20 ms and re-arms itself for the next
 * tick: each run is short, but together they would take almost all of the
 * CPU. The kernel gives a domain's callbacks at most half of any second. */
#include "misuse.h"
static struct timer_list t;
static void hog(struct timer_list *x)
{
	mdelay(20);
	mod_timer(x, jiffies + 1);
}
static int init(void)
{
	timer_setup(&t, hog, 0);
	mod_timer(&t, jiffies + 1);
	return 0;
}
module_init(init);
