/* Compute and store: quicksort of a pseudo-random array. */
static long a[4096];
static void qs(long *v, int lo, int hi)
{
	while (lo < hi) {
		long p = v[(lo + hi) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (v[i] < p) i++;
			while (v[j] > p) j--;
			if (i <= j) { long t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
		}
		if (j - lo < hi - i) { qs(v, lo, j); lo = i; } else { qs(v, i, hi); hi = j; }
	}
}
long kernel_run(long iters)
{
	long check = 0;
	unsigned long x = 88172645463325252ul;
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < 4096; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; a[i] = (long)(x % 100000); }
		qs(a, 0, 4095);
		check += a[it & 4095];
	}
	return check;
}
