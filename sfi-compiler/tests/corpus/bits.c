#include <stdio.h>
#include <stdint.h>
long (*program_callback(void))(long) { return 0; }
static uint64_t bitmap[8];
static int test_bit(unsigned n) { return (bitmap[n >> 6] >> (n & 63)) & 1; }
static void set_bit(unsigned n) { bitmap[n >> 6] |= 1ULL << (n & 63); }
static void clear_bit(unsigned n) { bitmap[n >> 6] &= ~(1ULL << (n & 63)); }
static void flip_bit(unsigned n) { bitmap[n >> 6] ^= 1ULL << (n & 63); }
int program_main(void)
{
	volatile uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint64_t x = seed, acc = 0;
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		acc += __builtin_popcountll(x) + (x ? __builtin_ctzll(x) : 64) + (x ? __builtin_clzll(x) : 64);
		acc ^= __builtin_bswap64(x) + __builtin_bswap32((uint32_t)x) + __builtin_bswap16((uint16_t)x);
		unsigned n = x % 512;
		if (i % 3 == 0) set_bit(n); else if (i % 3 == 1) flip_bit(n); else clear_bit(n ^ 1);
		acc += test_bit(n) ? 5 : 3;
		int a = (int)x, b = (int)(x >> 32);
		acc += (a < b) ? a : b;                   /* cmov */
		acc += (unsigned)a > (unsigned)b;         /* setcc */
		acc += __builtin_parityll(x);
		acc = (acc << 3) | (acc >> 61);
	}
	int set = 0;
	for (unsigned n = 0; n < 512; n++) set += test_bit(n);
	printf("bits %016llx %d\n", (unsigned long long)acc, set);
	return set & 0x7f;
}
