/* Its policy (policy_entry.policy) declares one entry point, `declared`; it
 * registers another of its functions as a timer callback. */
#include "misuse.h"
static struct timer_list t;
void declared(struct timer_list *x) { (void)x; }
void undeclared(struct timer_list *x) { (void)x; }
static int init(void)
{
	timer_setup(&t, declared, 0);
	printk("policy_entry: the declared entry was accepted\n");
	timer_setup(&t, undeclared, 0);
	return 0;
}
module_init(init);
