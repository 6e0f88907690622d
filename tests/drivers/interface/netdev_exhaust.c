/* Registers net devices without end. */
#include "misuse.h"
static int init(void)
{
	for (;;)
		own_netdev();
	return 0;
}
module_init(init);
