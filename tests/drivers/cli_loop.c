/* An infinite loop with interrupts disabled: no timer interrupt can stop it.
 * Under MMU the cli is real and only the NMI watchdog catches it; under SFI
 * the cli is virtual and the timer still runs. */
#include <nooks/driver.h>
static int init(void)
{
	__asm__ volatile("cli");
	for (;;)
		__asm__ volatile("" ::: "memory");
	return 0;
}
module_init(init);
