__attribute__((weak)) long hw_trace(long x);
__attribute__((noinline)) static long helper(long x) { return (x << 2) - x / 3; }
static int counter = 100;
long ring_push(long v);
long main_step(long x);
long hw_apply(long (*f)(long), long x)
{
	if (hw_trace)
		x = hw_trace(x);
	counter++;
	return f(x) + helper(x) + counter;
}
static long twice(long x) { return 2 * x + counter; }
long (*hw_pick(int k))(long)
{
	switch (k) {
	case 0: return twice;
	case 1: return ring_push;
	default: return main_step;
	}
}
