/* Native side of the corpus programs: never rewritten. Calls the rewritten
 * program, lends it native functions to call (directly and through pointers)
 * and calls back into it through pointers it hands out. */
#include <stdio.h>
long native_twice(long x) { return 2 * x + 1; }
long native_apply(long (*f)(long), long x) { return f(x) + f(x + 1); }
int program_main(void);
long (*program_callback(void))(long);
int main(void)
{
	int r = program_main();
	long (*cb)(long) = program_callback();
	if (cb)
		printf("callback(5) = %ld\n", cb(5));
	return r;
}
