/* A setcc to kernel memory. */
#include "misuse.h"
static int init(void)
{
	__asm__ __volatile__("cmp %%rax, %%rax\n\tsete (%0)" : : "r"(TARGET) : "memory", "cc");
	return 0;
}
module_init(init);
