/* A string store (rep stosb) into kernel memory. */
#include "misuse.h"
static int init(void)
{
	void *d = TARGET;
	unsigned long n = 16;
	__asm__ __volatile__("rep stosb" : "+D"(d), "+c"(n) : "a"(0) : "memory");
	return 0;
}
module_init(init);
