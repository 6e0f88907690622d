#include <stdio.h>
/* gcc's hot/cold splitting (-freorder-blocks-and-partition, on at -O2):
 * the unlikely paths below go to `work.cold` and `scan.cold` in
 * .text.unlikely, entered and left by jumps, using the function's frame. */
long (*program_callback(void))(long) { return 0; }
__attribute__((cold, noinline)) void report(int x, long v) { printf("cold %d %ld\n", x, v); }
__attribute__((noinline)) long work(long *a, int n)
{
	long s = 0;
	for (int i = 0; i < n; i++) {
		if (__builtin_expect(a[i] < 0, 0)) {
			report(i, s);
			s -= a[i] * 3;
			continue;
		}
		s += a[i];
	}
	return s;
}
__attribute__((noinline)) static int scan(const char *p, int n, int *bad)
{
	int words = 0, in = 0;
	for (int i = 0; i < n; i++) {
		char c = p[i];
		if (__builtin_expect(c == 0 || c > 126, 0)) {
			(*bad)++;
			report(-i, c);
			if (*bad > 3)
				return -words;
			continue;
		}
		if (c == ' ')
			in = 0;
		else if (!in) {
			in = 1;
			words++;
		}
	}
	return words;
}
int program_main(void)
{
	long a[50];
	for (int i = 0; i < 50; i++)
		a[i] = (i % 7 == 3) ? -i : i * 2;
	char text[64] = "the quick brown\x7f fox jumps over\x01 the lazy dog";
	int bad = 0;
	int w = scan(text, 48, &bad);
	printf("%ld %d %d\n", work(a, 50), w, bad);
	return w;
}
