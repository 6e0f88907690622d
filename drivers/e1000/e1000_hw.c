/* e1000: the hardware side — EEPROM, reset, link state, station address. */
#include "e1000.h"

int e1000_read_eeprom(struct e1000_adapter *a, u32 word, u16 *data)
{
	int i;

	ew32(a, E1000_EERD, (word << E1000_EERD_ADDR_SHIFT) | E1000_EERD_START);
	for (i = 0; i < 10000; i++) {
		u32 v = er32(a, E1000_EERD);
		if (v & E1000_EERD_DONE) {
			*data = (u16)(v >> E1000_EERD_DATA_SHIFT);
			return 0;
		}
		udelay(5);
	}
	return -ETIMEDOUT;
}

void e1000_reset_hw(struct e1000_adapter *a)
{
	ew32(a, E1000_IMC, 0xffffffff);
	ew32(a, E1000_RCTL, 0);
	ew32(a, E1000_TCTL, E1000_TCTL_PSP);
	ew32(a, E1000_CTRL, er32(a, E1000_CTRL) | E1000_CTRL_RST);
	mdelay(1);
	ew32(a, E1000_IMC, 0xffffffff);
	(void)er32(a, E1000_ICR);
}

void e1000_update_link(struct e1000_adapter *a)
{
	if (er32(a, E1000_STATUS) & E1000_STATUS_LU) {
		if (!netif_carrier_ok(a->netdev)) {
			netif_carrier_on(a->netdev);
			printk("%s: link up\n", a->netdev->name);
		}
	} else if (netif_carrier_ok(a->netdev)) {
		netif_carrier_off(a->netdev);
		printk("%s: link down\n", a->netdev->name);
	}
}

void e1000_set_mac(struct e1000_adapter *a, const u8 *mac)
{
	u32 ral = mac[0] | (mac[1] << 8) | (mac[2] << 16) | ((u32)mac[3] << 24);
	u32 rah = mac[4] | (mac[5] << 8) | E1000_RAH_AV;

	ew32(a, E1000_RAL0, ral);
	ew32(a, E1000_RAH0, rah);
}
