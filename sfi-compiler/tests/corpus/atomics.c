#include <stdio.h>
#include <stdint.h>
long (*program_callback(void))(long) { return 0; }
static long counter;
static int flag;
static uint8_t small;
int program_main(void)
{
	long r = 0;
	for (int i = 0; i < 1000; i++) {
		r += __atomic_fetch_add(&counter, i, __ATOMIC_SEQ_CST);
		long expected = counter;
		if (__atomic_compare_exchange_n(&counter, &expected, expected * 3 % 1000003, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			r ^= expected;
		r += __atomic_exchange_n(&flag, i & 7, __ATOMIC_SEQ_CST);
		r += __sync_fetch_and_or(&flag, 0x40);
		r += __sync_fetch_and_and(&flag, ~0x40);
		__atomic_add_fetch(&small, 3, __ATOMIC_RELAXED);
		r += __sync_bool_compare_and_swap(&small, 6, 9);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	printf("atomics %ld %ld %d %u\n", r, counter, flag, small);
	return (int)(r & 0x7f);
}
