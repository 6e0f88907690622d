#include <stdio.h>
/* A program of three files, partially linked (`ld -r`) before the rewrite,
 * as Kbuild links a module of several files: each file has a static
 * function and a static counter of the same names, a function pointer
 * crosses files both ways, one file calls a weak hook nobody defines. */
long (*program_callback(void))(long) { return 0; }
long ring_push(long v);
long ring_sum(void);
long hw_apply(long (*f)(long), long x);
long (*hw_pick(int k))(long);
__attribute__((noinline)) static long helper(long x) { return x * 7 + 1; }
static int counter;
long main_step(long x) { counter++; return helper(x) ^ counter; }
int program_main(void)
{
	long s = 0;
	for (int i = 0; i < 40; i++) {
		s += ring_push(main_step(i));
		s ^= hw_apply(main_step, i);
		s += hw_pick(i % 3)(s & 0xfff);
	}
	printf("multi %ld %ld %d\n", s, ring_sum(), counter);
	return (int)(s & 0x7f);
}
