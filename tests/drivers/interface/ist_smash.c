/* From a timer callback (run by the timer interrupt), overwrites the stack
 * the CPU pushed that interrupt's frame on: the IRQ slot's IST stack at
 * 0xffffff000002d000 (memory::move_interrupt_stacks: slot 5 of 32 KiB stacks
 * with a guard page each). Under mmu it must stay writable (the CPU pushes
 * there in the domain's tables), so the kernel runs handlers elsewhere and
 * the write changes nothing it reads back; under sfi it is outside the domain. */
#include "misuse.h"
static struct timer_list t;
static void smash(struct timer_list *x)
{
	(void)x;
	for (volatile u64 *p = (u64 *)0xffffff000002d000ull; p < (u64 *)0xffffff0000035000ull; p++)
		*p = 0x4141414141414141ull;
	printk("ist_smash: wrote the interrupt stack\n");
}
static int init(void)
{
	timer_setup(&t, smash, 0);
	mod_timer(&t, jiffies + 1);
	return 0;
}
module_init(init);
