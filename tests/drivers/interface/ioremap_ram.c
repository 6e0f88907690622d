/* ioremap of RAM (the kernel image), to write it through the mapping. */
#include "misuse.h"
static int init(void)
{
	volatile u64 *p = ioremap(0x100000, 4096);
	if (p)
		p[0] = 0;
	return 0;
}
module_init(init);
