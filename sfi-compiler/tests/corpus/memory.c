#include <stdio.h>
#include <string.h>
#include <stdint.h>
long (*program_callback(void))(long) { return 0; }
struct big { long v[19]; char tag[13]; };
static struct big g1, g2;
static const char *names[] = { "zero", "one", "two", "three", "four", "five" };
static struct big make(int k) { struct big b; for (int i = 0; i < 19; i++) b.v[i] = k * i; memcpy(b.tag, "tag-of-big!", 12); b.tag[12] = (char)k; return b; }
static long sum_big(struct big b) { long s = 0; for (int i = 0; i < 19; i++) s += b.v[i]; return s + b.tag[12]; }
static int classify(int x)
{
	switch (x % 9) {
	case 0: return 10; case 1: return 21; case 2: return 32; case 3: return 43;
	case 4: return 54; case 5: return 65; case 6: return 76; default: return -1;
	}
}
static long vla(int n) { long a[n]; for (int i = 0; i < n; i++) a[i] = i * i; long s = 0; for (int i = n - 1; i >= 0; i--) s += a[i] ^ i; return s; }
int program_main(void)
{
	char buf[300];
	memset(buf, 'x', sizeof buf);
	for (int i = 0; i < 5; i++) { g1 = make(i + 1); g2 = g1; g2.v[3] += i; }
	long s = sum_big(g1) * 3 + sum_big(g2);
	for (int i = 0; i < 100; i++) s += classify(i);
	s += vla(17) + vla(100);
	size_t len = 0;
	for (int i = 0; i < 6; i++) { size_t n = strlen(names[i]); memcpy(buf + len, names[i], n); len += n; }
	buf[len] = 0;
	uint8_t block[256];
	for (int i = 0; i < 256; i++) block[i] = (uint8_t)(i * 7);
	uint8_t copy[256];
	memcpy(copy, block, sizeof copy);
	memmove(copy + 3, copy, 100);
	for (int i = 0; i < 256; i++) s += copy[i] * (i & 3);
	printf("memory %ld %s %zu\n", s, buf, len);
	return (int)(s & 0x7f);
}
