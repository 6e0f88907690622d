/* e1000: statistics — received frames by size class.
 *
 * A dense switch, which gcc compiles to a jump table (a table of code
 * addresses in .rodata, `jmp *table(,%rax,8)`): nooks-cc turns it into a
 * bounds-checked branch over the function's own blocks. The classes do
 * different work, so no table of constants can replace the jump. */
#include "e1000.h"

static const struct {
	u32 lo, hi;
} e1000_classes[E1000_SIZE_CLASSES] = {
	{ ETH_HLEN, 127 }, { 128, 255 }, { 256, 511 }, { 512, 1023 },
	{ 1024, 1279 }, { 1280, ETH_FRAME_LEN }, { 0, 0 }, { 0, 0 },
};

static void e1000_account(struct e1000_adapter *a, u32 class, u32 len)
{
	struct e1000_size_class *c = &a->rx_sizes[class];

	if (!c->frames || len < c->min)
		c->min = len;
	if (len > c->max)
		c->max = len;
	c->frames++;
}

/* Counts a received frame of `len` bytes (FCS stripped) in its class;
 * returns 0 to deliver it, -EINVAL for a length no Ethernet frame has. */
int e1000_count_rx(struct e1000_adapter *a, u32 len)
{
	switch (len >> 8) {
	case 0:
		if (len < ETH_HLEN)
			goto bad;
		e1000_account(a, len < 128 ? 0 : 1, len);
		break;
	case 1:
		e1000_account(a, 2, len);
		break;
	case 2:
	case 3:
		e1000_account(a, 3, len);
		break;
	case 4:
		e1000_account(a, 4, len);
		a->rx_bytes_large += len;
		break;
	case 5:
		if (len > ETH_FRAME_LEN)
			goto bad;
		e1000_account(a, 5, len);
		a->rx_bytes_large += len;
		break;
	default:
		goto bad;
	}
	return 0;
bad:
	a->rx_bad_length++;
	return -EINVAL;
}

/* Prints each class seen: its bounds, and the frames and lengths it got. */
void e1000_print_stats(struct e1000_adapter *a)
{
	u32 i;

	for (i = 0; i < E1000_SIZE_CLASSES; i++) {
		struct e1000_size_class *c = &a->rx_sizes[i];

		if (c->frames)
			printk("%s: rx class %u-%u: %llu frames, %u-%u bytes\n", a->netdev->name,
			       e1000_classes[i].lo, e1000_classes[i].hi,
			       (unsigned long long)c->frames, c->min, c->max);
	}
	if (a->rx_bad_length)
		printk("%s: rx bad length: %llu frames\n", a->netdev->name,
		       (unsigned long long)a->rx_bad_length);
}
