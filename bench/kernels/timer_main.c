/* Times kernel_run() natively; the kernel object is either gcc's or nooks-cc's. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
long kernel_run(long iters);
int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 1000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	long best = -1, check = 0;
	for (int r = 0; r < reps; r++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		check = kernel_run(iters);
		clock_gettime(CLOCK_MONOTONIC, &b);
		long ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
		if (best < 0 || ns < best) best = ns;
	}
	printf("%ld %ld\n", best, check);
	return 0;
}
