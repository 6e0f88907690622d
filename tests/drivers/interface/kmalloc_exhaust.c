/* Allocates without end (tiny blocks, each costing the kernel bookkeeping). */
#include "misuse.h"
static int init(void)
{
	for (;;)
		if (!kmalloc(1, GFP_KERNEL))
			printk("kmalloc_exhaust: out of memory\n");
	return 0;
}
module_init(init);
