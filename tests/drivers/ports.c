/* Port I/O under a policy (ports.policy allows only 0x80, the POST-code port):
 * a write to that constant port, then a read from a port computed at run
 * time that the policy does not allow (the i8042 status port). */
#include <nooks/driver.h>
static volatile unsigned short where = 0x64;
static inline void out8(unsigned short port, unsigned char v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline unsigned char in8(unsigned short port) { unsigned char v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static int init(void)
{
	out8(0x80, 0x42);
	printk("ports: status %d\n", in8(where));
	return 0;
}
module_init(init);
