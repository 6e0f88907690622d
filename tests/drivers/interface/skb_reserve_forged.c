/* skb_reserve on an sk_buff it made up (its data pointer at kernel memory). */
#include "misuse.h"
static struct sk_buff fake;
static int init(void) { fake.head = fake.data = TARGET; fake.size = 4096; skb_reserve(&fake, 16); return 0; }
module_init(init);
