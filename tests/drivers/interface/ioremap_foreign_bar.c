/* ioremap of the first e1000's registers (another domain's device), to turn
 * its receiver off. */
#include "misuse.h"
static int init(void)
{
	volatile u32 *regs = ioremap(0xfeb80000ull, 0x20000);
	if (regs)
		regs[0x100 / 4] = 0; /* RCTL */
	return 0;
}
module_init(init);
