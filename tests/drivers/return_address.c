/* Overwrites the saved return address in its own frame. Under SFI the frame is
 * on the emulated stack and real return addresses never are: harmless. */
#include <nooks/driver.h>
static int __attribute__((noinline)) smash(void)
{
	/* volatile: without it gcc drops the store as dead. */
	void *volatile *frame = (void *volatile *)__builtin_frame_address(0);
	frame[1] = (void *)0xdeadbeef;
	return 7;
}
static int init(void) { printk("return_address: smash returned %d\n", smash()); return 0; }
module_init(init);
