/* cmpxchg into kernel memory. */
#include "misuse.h"
static int init(void)
{
	long expected = *(volatile long *)TARGET;
	__atomic_compare_exchange_n((long *)TARGET, &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	return 0;
}
module_init(init);
