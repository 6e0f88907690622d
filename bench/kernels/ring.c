/* The driver's own shape: a descriptor ring, producer fills descriptors, the
 * "device" marks them done, the consumer reaps them and recycles buffers. */
struct desc { unsigned long addr; unsigned short len; unsigned char cmd, status; unsigned int pad; };
static struct desc ring[256];
static unsigned long bufs[256];
long kernel_run(long iters)
{
	unsigned tail = 0, clean = 0;
	long bytes = 0;
	for (int i = 0; i < 256; i++) bufs[i] = 0x100000ul + i * 2048;
	for (long it = 0; it < iters; it++) {
		for (int n = 0; n < 200; n++) {
			if ((tail + 1) % 256 == clean) break;
			ring[tail].addr = bufs[tail];
			ring[tail].len = (unsigned short)(64 + (it * 7 + n) % 1450);
			ring[tail].cmd = 0x0b;
			ring[tail].status = 0;
			tail = (tail + 1) % 256;
		}
		for (unsigned i = clean; i != tail; i = (i + 1) % 256) ring[i].status |= 1;
		while (clean != tail && (ring[clean].status & 1)) {
			bytes += ring[clean].len;
			ring[clean].status = 0;
			clean = (clean + 1) % 256;
		}
	}
	return bytes;
}
