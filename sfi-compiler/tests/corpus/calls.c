#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
long native_twice(long x);
long native_apply(long (*f)(long), long x);
struct pair { long a, b; };
struct triple { long a, b, c; };
static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
long many(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j, long k)
{ return a - b + c * 2 - d + e * 3 - f + g * 5 - h + i * 7 - j + k * 11; }
long byval(struct triple t, int x, struct pair p, long y, struct triple u)
{ return t.a * 3 + t.b * 5 + t.c * 7 + x + p.a * 11 + p.b * 13 + y + u.a + u.b * 2 + u.c * 3; }
static struct triple mk(long a) { struct triple t = { a, a + 1, a * a }; return t; }
static long sum(int n, ...)
{
	va_list ap;
	va_start(ap, n);
	long s = 0;
	for (int i = 0; i < n; i++) s = s * 31 + va_arg(ap, long);
	va_end(ap);
	return s;
}
static int by_desc(const void *x, const void *y) { long a = *(const long *)x, b = *(const long *)y; return (a < b) - (a > b); }
static long sq(long x) { return x * x; }
static long inc(long x) { return x + 1; }
static long (*table[])(long) = { sq, inc, native_twice };
static long cb(long x) { return x * 100 + 7; }
/* A local callee that leaves RAX alone: with -fipa-ra gcc keeps the loop
 * counter in EAX across the call (the caller relies on the callee not
 * writing it, which no ABI promises). */
static int counter;
static __attribute__((noinline)) void bump(int *p) { (*p)++; }
static __attribute__((noinline)) int count_calls(void) { int i; for (i = 0; i != 34; i++) bump(&counter); return i; }
long (*program_callback(void))(long) { return cb; }
int program_main(void)
{
	long v[16];
	for (int i = 0; i < 16; i++) v[i] = (i * 37) % 17 - 8;
	qsort(v, 16, sizeof v[0], by_desc);
	long s = 0;
	for (int i = 0; i < 16; i++) s = s * 3 + v[i];
	for (int i = 0; i < 3; i++) s += table[i](i + 4);
	s += native_apply(sq, 9) + native_apply(table[1], 2);
	struct pair p = { 4, 5 };
	printf("ipa-ra %d %d\n", count_calls(), counter);
	printf("calls %ld %ld %ld %ld %ld\n", fib(20), many(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), byval(mk(2), 3, p, 6, mk(5)),
	       sum(10, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L, 10L), s);
	printf("%d %d %d %d %d %d %d %d %d %d %s %c %ld\n", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "eleven", 'c', -13L);
	return (int)(s & 0x7f);
}
