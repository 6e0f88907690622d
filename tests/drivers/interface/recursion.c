/* Unbounded recursion: it overflows the domain's stack. */
#include "misuse.h"
static volatile int sink, forever = 1;
static int deep(int n)
{
	volatile char frame[256];
	frame[0] = (char)n;
	frame[255] = (char)n;
	return (forever ? deep(n + 1) : 0) + frame[0] + frame[255];
}
static int init(void) { sink = deep(0); return 0; }
module_init(init);
