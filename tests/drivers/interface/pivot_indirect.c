/* Moves its stack pointer into kernel memory, then calls one of its own
 * functions through a pointer, with stack arguments: a rewritten function's
 * native entry copies them below the published stack pointer, so the copy
 * must be checked like any of the driver's stores (no kernel involved). */
#include "misuse.h"
__attribute__((noinline)) long sum8(long a, long b, long c, long d, long e, long f, long g, long h)
{
	return a + b + c + d + e + f + g + h;
}
static long (*volatile fp)(long, long, long, long, long, long, long, long) = sum8;
static int init(void)
{
	long r = sum8(1, 2, 3, 4, 5, 6, 7, 8); /* a direct call too: sum8 is a helper */
	__asm__ __volatile__(
		"mov %%rsp, %%rbx\n\t"
		"mov %[top], %%rsp\n\t"
		"call *%[f]\n\t"
		"mov %%rbx, %%rsp"
		: "+a"(r)
		: [top] "r"((u64)TARGET + 0x800), [f] "r"(fp), "D"(1), "S"(2), "d"(3), "c"(4)
		: "rbx", "r8", "r9", "r10", "r11", "memory");
	printk("pivot_indirect: returned %ld\n", r);
	return 0;
}
module_init(init);
