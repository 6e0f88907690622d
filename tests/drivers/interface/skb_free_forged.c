/* dev_kfree_skb_any of an sk_buff it made up. */
#include "misuse.h"
static struct sk_buff fake;
static int init(void) { fake.head = fake.data = TARGET; dev_kfree_skb_any(&fake); return 0; }
module_init(init);
