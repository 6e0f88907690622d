/* Calls kzalloc with the direction flag set: kernel code must run with it
 * clear (the ABI's entry state), or it zeroes the memory below the block. */
#include "misuse.h"
static int init(void)
{
	u8 *p;
	__asm__ __volatile__("std" ::: "memory");
	p = kzalloc(64, GFP_KERNEL);
	__asm__ __volatile__("cld" ::: "memory");
	int zero = 1;
	for (int i = 0; i < 64; i++)
		zero &= p[i] == 0;
	printk("direction_flag: kzalloc %s\n", zero ? "zeroed its block" : "missed its block");
	return 0;
}
module_init(init);
