/*
 * The e1000 driver's shared definitions: its adapter, register access and
 * the functions its files call in each other. The driver is four files, as
 * Linux's e1000 is several: e1000_main.c (the PCI and net_device sides),
 * e1000_hw.c (EEPROM, reset, link, station address), e1000_ring.c (the
 * descriptor rings, transmit and the interrupt handler) and e1000_stats.c
 * (statistics); the Makefile links them into one object (`ld -r`, or
 * `nooks-cc -r`), which the kernel loads as one driver.
 */
#ifndef E1000_H
#define E1000_H

#include <nooks/driver.h>
#include "e1000_hw.h"

#define TX_RING_SIZE 256
#define RX_RING_SIZE 256
#define RX_BUFFER_SIZE 2048
#define E1000_SIZE_CLASSES 8
#define E1000_IRQ_CAUSES (E1000_ICR_TXDW | E1000_ICR_LSC | E1000_ICR_RXDMT0 | E1000_ICR_RXO | E1000_ICR_RXT0)

struct e1000_adapter {
	struct net_device *netdev;
	struct pci_dev *pdev;
	u8 __iomem *hw;

	struct e1000_tx_desc *tx_ring;
	dma_addr_t tx_ring_dma;
	struct sk_buff *tx_skb[TX_RING_SIZE];
	dma_addr_t tx_map[TX_RING_SIZE];
	u32 tx_tail;   /* next descriptor to fill */
	u32 tx_clean;  /* next descriptor to reap */
	spinlock_t tx_lock;

	struct e1000_rx_desc *rx_ring;
	dma_addr_t rx_ring_dma;
	struct sk_buff *rx_skb[RX_RING_SIZE];
	dma_addr_t rx_map[RX_RING_SIZE];
	u32 rx_next;   /* next descriptor the hardware fills */

	u32 irq;
	u32 interrupts;
	struct e1000_size_class {          /* received frames by size class (e1000_stats.c) */
		u64 frames;
		u32 min, max;
	} rx_sizes[E1000_SIZE_CLASSES];
	u64 rx_bytes_large;                /* bytes in frames of 1024 bytes or more */
	u64 rx_bad_length;
};

static inline u32 er32(struct e1000_adapter *a, u32 reg) { return readl(a->hw + reg); }
static inline void ew32(struct e1000_adapter *a, u32 reg, u32 val) { writel(val, a->hw + reg); }

/* e1000_hw.c */
int e1000_read_eeprom(struct e1000_adapter *a, u32 word, u16 *data);
void e1000_reset_hw(struct e1000_adapter *a);
void e1000_update_link(struct e1000_adapter *a);
void e1000_set_mac(struct e1000_adapter *a, const u8 *mac);

/* e1000_ring.c */
int e1000_alloc_rx_buffer(struct e1000_adapter *a, u32 i);
void e1000_clean_rx(struct e1000_adapter *a);
void e1000_clean_tx(struct e1000_adapter *a);
irqreturn_t e1000_intr(int irq, void *dev_id);
int e1000_xmit_frame(struct sk_buff *skb, struct net_device *dev);
void e1000_free_rings(struct e1000_adapter *a);

/* e1000_stats.c */
int e1000_count_rx(struct e1000_adapter *a, u32 len);
void e1000_print_stats(struct e1000_adapter *a);

#endif
