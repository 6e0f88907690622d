/* Store-heavy: memcpy-like word and byte copies between buffers. */
static unsigned long src[2048], dst[2048];
static unsigned char bsrc[3000], bdst[3000];
long kernel_run(long iters)
{
	for (int i = 0; i < 2048; i++) src[i] = i * 2654435761u;
	for (int i = 0; i < 3000; i++) bsrc[i] = (unsigned char)i;
	long acc = 0;
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < 2048; i++) dst[i] = src[(i + it) & 2047] + 1;
		for (int i = 0; i < 3000; i++) bdst[i] = bsrc[i] ^ (unsigned char)it;
		acc += dst[it & 2047] + bdst[it % 3000];
	}
	return acc;
}
