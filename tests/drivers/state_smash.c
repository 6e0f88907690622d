/* A store into its own SFI runtime area, which the kernel places 3 MiB into
 * the driver's own 32 MiB window, below the writable part: `__nooks_sfi`
 * (the window's bounds) and `__nooks_esp` (the published stack pointer) live
 * there. Were it writable through the window, a driver could widen its own
 * window, or aim the kernel's stack-argument copies, and then store anywhere. */
#include <nooks/driver.h>
static long anchor; /* in the driver's data, inside its window */
static int init(void)
{
	unsigned long window = (unsigned long)&anchor & ~((32ul << 20) - 1);
	*(volatile unsigned long *)(window + (3ul << 20) + 8) = ~0ul;
	return 0;
}
module_init(init);
