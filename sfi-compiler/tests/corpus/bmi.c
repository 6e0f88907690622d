#include <stdio.h>
#include <stdint.h>
/* BMI1/BMI2 forms gcc picks when the target has them (-mbmi -mbmi2, or
 * -march=native): shlx/shrx/sarx, rorx, andn, blsr/blsi/blsmsk, bzhi. */
long (*program_callback(void))(long) { return 0; }
#define BMI __attribute__((target("bmi,bmi2"), noinline))
BMI static uint64_t shifts(uint64_t x, unsigned n, int64_t s) { return (x << n) ^ (x >> (n + 3)) ^ (uint64_t)(s >> n); }
BMI static uint32_t shifts32(uint32_t x, unsigned n) { return (x << n) + (x >> (31 - (n & 31))); }
BMI static uint64_t rot(uint64_t x) { return (x >> 13) | (x << 51); }
BMI static uint64_t andn(uint64_t a, uint64_t b) { return ~a & b; }
BMI static uint64_t lowest(uint64_t x) { return (x & (x - 1)) + (x & -x) + (x ^ (x - 1)); }
BMI static int lowest_is_alone(uint32_t x) { return (x & (x - 1)) == 0; }
BMI static uint64_t low_bits(uint64_t x, unsigned n) { return n >= 64 ? x : x & ((1ULL << n) - 1); }
BMI static uint32_t low_bits32(uint32_t x, unsigned n) { return n >= 32 ? x : x & ((1U << n) - 1); }
int program_main(void)
{
	volatile uint64_t seed = 0x2545f4914f6cdd1dULL;
	uint64_t x = seed, acc = 0;
	int alone = 0;
	for (int i = 0; i < 3000; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		unsigned n = (unsigned)(x >> 58);
		uint64_t v = (i % 17 == 0) ? 0 : x >> (i % 64);
		acc += shifts(x, n, (int64_t)x);
		acc ^= shifts32((uint32_t)x, n & 31);
		acc += rot(acc) + andn(x, acc);
		acc ^= lowest(v);
		alone += lowest_is_alone((uint32_t)v);
		acc += low_bits(x, i % 70) + low_bits32((uint32_t)x, i % 40);
	}
	printf("bmi %016llx %d\n", (unsigned long long)acc, alone);
	return alone & 0x7f;
}
