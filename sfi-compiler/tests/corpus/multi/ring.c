__attribute__((noinline)) static long helper(long x) { return x * 3 - 2; }
static int counter;
static long ring[16];
long ring_push(long v)
{
	ring[counter++ & 15] = helper(v);
	return counter;
}
long ring_sum(void)
{
	long s = 0;
	for (int i = 0; i < 16; i++)
		s += ring[i] * (i + 1);
	return s + counter;
}
