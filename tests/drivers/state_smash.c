/* A store into its own SFI runtime state: the `hi` bound of `__nooks_sfi`,
 * which the kernel places 3 MiB into the driver's own 32 MiB window, below
 * the writable part. Were the state writable through the window, a driver
 * could widen its own window and then store anywhere. */
#include <nooks/driver.h>
static long anchor; /* in the driver's data, inside its window */
static int init(void)
{
	unsigned long window = (unsigned long)&anchor & ~((32ul << 20) - 1);
	*(volatile unsigned long *)(window + (3ul << 20) + 8) = ~0ul;
	return 0;
}
module_init(init);
