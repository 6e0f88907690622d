/* Store-heavy: an open-addressing hash table with inserts and lookups. */
#define N 8192
static unsigned long keys[N];
static long vals[N];
static void put(unsigned long k, long v)
{
	unsigned long h = (k * 0x9e3779b97f4a7c15ul) >> 51;
	while (keys[h] && keys[h] != k) h = (h + 1) & (N - 1);
	keys[h] = k;
	vals[h] += v;
}
static long get(unsigned long k)
{
	unsigned long h = (k * 0x9e3779b97f4a7c15ul) >> 51;
	while (keys[h]) {
		if (keys[h] == k) return vals[h];
		h = (h + 1) & (N - 1);
	}
	return 0;
}
long kernel_run(long iters)
{
	long acc = 0;
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < N; i++) keys[i] = 0, vals[i] = 0;
		for (unsigned long k = 1; k < 4000; k++) put(k * 7 + it, (long)k);
		for (unsigned long k = 1; k < 4000; k += 3) acc += get(k * 7 + it);
	}
	return acc;
}
