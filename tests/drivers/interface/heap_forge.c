/* Frees a block and writes a forged free-list node into it (pointing at
 * kernel memory), as a use-after-free would: the heap's bookkeeping is the
 * kernel's, so every later block is still inside the window. Nothing fails. */
#include "misuse.h"
static int init(void)
{
	u64 *p = kmalloc(256, GFP_KERNEL);
	kfree(p);
	for (int i = 0; i < 32; i++)
		p[i] = (u64)TARGET; /* what a linked-list node would hold: size, next */
	int inside = 0;
	for (int i = 0; i < 64; i++) {
		u64 a = (u64)kzalloc(128, GFP_KERNEL);
		if (a >= 0xffffffffc0000000ull && (a & 0x1ffffff) >= 0x400000)
			inside++;
	}
	printk("heap_forge: %d of 64 blocks inside the domain\n", inside);
	return 0;
}
module_init(init);
