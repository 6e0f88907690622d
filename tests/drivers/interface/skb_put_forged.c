/* skb_put on an sk_buff the driver made up, whose buffer is kernel memory. */
#include "misuse.h"
static struct sk_buff fake;
static int init(void)
{
	fake.head = fake.data = TARGET;
	fake.size = 1 << 20;
	u8 *p = skb_put(&fake, 64);
	if (p)
		p[0] = 1;
	return 0;
}
module_init(init);
