/* e1000: statistics — received frames by size class.
 *
 * A dense switch, which gcc compiles to a jump table (a table of code
 * addresses in .rodata, `jmp *table(,%rax,8)`): nooks-cc turns it into a
 * bounds-checked branch over the function's own blocks. Each class does
 * its own work, so no table of constants can replace the jump. */
#include "e1000.h"

/* Counts a received frame of `len` bytes (FCS stripped) in its class;
 * returns 0 to deliver it, -EINVAL for a length no Ethernet frame has. */
int e1000_count_rx(struct e1000_adapter *a, u32 len)
{
	switch (len >> 8) {
	case 0:
		if (len < ETH_HLEN)
			goto bad;
		a->rx_sizes[len < 128 ? 0 : 1]++;
		break;
	case 1:
		a->rx_sizes[2]++;
		break;
	case 2:
	case 3:
		a->rx_sizes[3]++;
		break;
	case 4:
		a->rx_sizes[4]++;
		a->rx_bytes_large += len;
		break;
	case 5:
		if (len > ETH_FRAME_LEN)
			goto bad;
		a->rx_sizes[5]++;
		a->rx_bytes_large += len;
		break;
	default:
		goto bad;
	}
	return 0;
bad:
	a->rx_sizes[E1000_SIZE_CLASSES - 1]++;
	return -EINVAL;
}

static const char *const e1000_class_names[E1000_SIZE_CLASSES] = {
	"<128", "<256", "<512", "<1024", "<1280", "<=1514", "-", "bad",
};

/* Prints the classes (at close). */
void e1000_print_stats(struct e1000_adapter *a)
{
	u32 i;

	for (i = 0; i < E1000_SIZE_CLASSES; i++)
		if (a->rx_sizes[i])
			printk("%s: rx %s: %llu frames\n", a->netdev->name, e1000_class_names[i],
			       (unsigned long long)a->rx_sizes[i]);
}
