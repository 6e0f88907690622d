/* Intel 8254x (82540EM) registers and descriptors used by the driver.
 * Offsets and bits from the Intel PCI/PCI-X Family of Gigabit Ethernet
 * Controllers Software Developer's Manual (8254x), chapter 13. */
#ifndef E1000_HW_H
#define E1000_HW_H

#define E1000_CTRL   0x0000
#define E1000_STATUS 0x0008
#define E1000_EERD   0x0014
#define E1000_ICR    0x00c0
#define E1000_ITR    0x00c4
#define E1000_IMS    0x00d0
#define E1000_IMC    0x00d8
#define E1000_RCTL   0x0100
#define E1000_TCTL   0x0400
#define E1000_TIPG   0x0410
#define E1000_RDBAL  0x2800
#define E1000_RDBAH  0x2804
#define E1000_RDLEN  0x2808
#define E1000_RDH    0x2810
#define E1000_RDT    0x2818
#define E1000_RDTR   0x2820
#define E1000_TDBAL  0x3800
#define E1000_TDBAH  0x3804
#define E1000_TDLEN  0x3808
#define E1000_TDH    0x3810
#define E1000_TDT    0x3818
#define E1000_MTA    0x5200
#define E1000_RAL0   0x5400
#define E1000_RAH0   0x5404

#define E1000_CTRL_FD   (1u << 0)
#define E1000_CTRL_ASDE (1u << 5)
#define E1000_CTRL_SLU  (1u << 6)
#define E1000_CTRL_RST  (1u << 26)

#define E1000_STATUS_LU (1u << 1)

#define E1000_EERD_START      (1u << 0)
#define E1000_EERD_DONE       (1u << 4)
#define E1000_EERD_ADDR_SHIFT 8
#define E1000_EERD_DATA_SHIFT 16

/* Interrupt causes (ICR/IMS/IMC). */
#define E1000_ICR_TXDW   (1u << 0)
#define E1000_ICR_TXQE   (1u << 1)
#define E1000_ICR_LSC    (1u << 2)
#define E1000_ICR_RXDMT0 (1u << 4)
#define E1000_ICR_RXO    (1u << 6)
#define E1000_ICR_RXT0   (1u << 7)

#define E1000_RCTL_EN    (1u << 1)
#define E1000_RCTL_BAM   (1u << 15)
#define E1000_RCTL_SZ_2048 (0u << 16)
#define E1000_RCTL_SECRC (1u << 26)

#define E1000_TCTL_EN   (1u << 1)
#define E1000_TCTL_PSP  (1u << 3)
#define E1000_TCTL_CT   (0x10u << 4)
#define E1000_TCTL_COLD (0x40u << 12)

#define E1000_TIPG_82540 (10u | (8u << 10) | (6u << 20))

#define E1000_RAH_AV (1u << 31)

/* Legacy transmit descriptor. */
struct e1000_tx_desc {
	u64 buffer_addr;
	u16 length;
	u8 cso;
	u8 cmd;
	u8 status;
	u8 css;
	u16 special;
};

#define E1000_TXD_CMD_EOP  0x01
#define E1000_TXD_CMD_IFCS 0x02
#define E1000_TXD_CMD_RS   0x08
#define E1000_TXD_STAT_DD  0x01

/* Receive descriptor. */
struct e1000_rx_desc {
	u64 buffer_addr;
	u16 length;
	u16 csum;
	u8 status;
	u8 errors;
	u16 special;
};

#define E1000_RXD_STAT_DD  0x01
#define E1000_RXD_STAT_EOP 0x02

#endif
