#include <stdio.h>
#include <stdint.h>
static volatile int64_t vs[] = { 0, 1, -1, 7, -7, 1000003, -1000003, INT64_MAX, INT64_MIN + 1, 0x123456789abcdefLL };
static volatile uint64_t vu[] = { 0, 1, 3, 255, 65535, 0xffffffffULL, 0x8000000000000000ULL, 0xdeadbeefcafebabeULL, ~0ULL };
long (*program_callback(void))(long) { return 0; }
static unsigned __int128 mul128(uint64_t a, uint64_t b) { return (unsigned __int128)a * b; }
static __int128 smul128(int64_t a, int64_t b) { return (__int128)a * b; }
int program_main(void)
{
	uint64_t h = 1469598103934665603ULL;
	for (unsigned i = 0; i < sizeof vs / sizeof vs[0]; i++)
		for (unsigned j = 0; j < sizeof vs / sizeof vs[0]; j++) {
			int64_t a = vs[i], b = vs[j];
			int32_t a32 = (int32_t)a, b32 = (int32_t)b;
			int16_t a16 = (int16_t)a, b16 = (int16_t)b;
			int8_t a8 = (int8_t)a, b8 = (int8_t)b;
			h = (h ^ (uint64_t)(a + b)) * 1099511628211ULL;
			h = (h ^ (uint64_t)(a * b)) * 1099511628211ULL;
			h = (h ^ (uint64_t)(a32 * b32 - a16 * b16 + a8 * b8)) * 1099511628211ULL;
			if (b != 0 && !(a == INT64_MIN && b == -1)) h = (h ^ (uint64_t)(a / b) ^ (uint64_t)(a % b)) * 1099511628211ULL;
			if (b32 != 0 && !(a32 == INT32_MIN && b32 == -1)) h = (h ^ (uint64_t)(a32 / b32) ^ (uint64_t)(a32 % b32)) * 1099511628211ULL;
			if (b16 != 0) h = (h ^ (uint64_t)(a16 / b16) ^ (uint64_t)(a16 % b16)) * 1099511628211ULL;
			if (b8 != 0) h = (h ^ (uint64_t)(a8 / b8) ^ (uint64_t)(a8 % b8)) * 1099511628211ULL;
			h = (h ^ (uint64_t)(a << (b & 63)) ^ (uint64_t)(a >> (b & 63))) * 1099511628211ULL;
			h = (h ^ (uint64_t)(a32 >> (b & 31)) ^ (uint64_t)((uint32_t)a32 >> (b & 31))) * 1099511628211ULL;
			h = (h ^ (uint64_t)(a < b) ^ ((uint64_t)(a32 <= b32) << 1) ^ ((uint64_t)(a16 > b16) << 2)) * 1099511628211ULL;
		}
	for (unsigned i = 0; i < sizeof vu / sizeof vu[0]; i++)
		for (unsigned j = 0; j < sizeof vu / sizeof vu[0]; j++) {
			uint64_t a = vu[i], b = vu[j];
			unsigned __int128 p = mul128(a, b);
			h = (h ^ (uint64_t)(p >> 64) ^ (uint64_t)p) * 1099511628211ULL;
			__int128 sp = smul128((int64_t)a, (int64_t)b);
			h = (h ^ (uint64_t)(sp >> 64)) * 1099511628211ULL;
			if (b) h = (h ^ a / b ^ a % b ^ (uint32_t)a / ((uint32_t)b | 1)) * 1099511628211ULL;
			if (b) h = (h ^ (uint64_t)(p / b)) * 1099511628211ULL;
			uint64_t r = (a << (b & 63)) | (a >> ((64 - (b & 63)) & 63));
			h = (h ^ r ^ (a > b) ^ ((uint64_t)(a >= b) << 3)) * 1099511628211ULL;
		}
	printf("arith %016llx\n", (unsigned long long)h);
	return (int)(h & 0x7f);
}
