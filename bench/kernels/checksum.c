/* Compute-heavy: an Internet-style checksum over a buffer, plus a CRC. */
static unsigned char buf[4096];
long kernel_run(long iters)
{
	unsigned long sum = 0, crc = 0xffffffff;
	for (int i = 0; i < 4096; i++) buf[i] = (unsigned char)(i * 131 + 7);
	for (long it = 0; it < iters; it++) {
		unsigned long s = 0;
		for (int i = 0; i < 4096; i += 2) s += (unsigned)(buf[i] << 8 | buf[i + 1]);
		while (s >> 16) s = (s & 0xffff) + (s >> 16);
		sum += s;
		for (int i = 0; i < 256; i++) {
			crc ^= buf[(i + it) & 4095];
			for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
		}
	}
	return (long)(sum ^ crc);
}
