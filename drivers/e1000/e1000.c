/*
 * Intel 82540EM (QEMU "e1000") network driver for the nooks kernel.
 *
 * Written as a Linux author would write it, against drivers/include/nooks/
 * driver.h: probe maps BAR0, resets the MAC and reads the station address
 * from the EEPROM; open sets up the descriptor rings in coherent DMA memory,
 * fills the receive ring with DMA-mapped socket buffers and enables
 * interrupts; the interrupt handler reaps received frames (refilling the
 * ring), frees transmitted buffers and follows the link; transmit stops the
 * queue when the ring fills and the clean-up path wakes it.
 */
#include <nooks/driver.h>
#include "e1000_hw.h"

#define TX_RING_SIZE 256
#define RX_RING_SIZE 256
#define RX_BUFFER_SIZE 2048
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
};

static inline u32 er32(struct e1000_adapter *a, u32 reg) { return readl(a->hw + reg); }
static inline void ew32(struct e1000_adapter *a, u32 reg, u32 val) { writel(val, a->hw + reg); }

static int e1000_read_eeprom(struct e1000_adapter *a, u32 word, u16 *data)
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

static void e1000_reset_hw(struct e1000_adapter *a)
{
	ew32(a, E1000_IMC, 0xffffffff);
	ew32(a, E1000_RCTL, 0);
	ew32(a, E1000_TCTL, E1000_TCTL_PSP);
	ew32(a, E1000_CTRL, er32(a, E1000_CTRL) | E1000_CTRL_RST);
	mdelay(1);
	ew32(a, E1000_IMC, 0xffffffff);
	(void)er32(a, E1000_ICR);
}

static void e1000_update_link(struct e1000_adapter *a)
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

static int e1000_alloc_rx_buffer(struct e1000_adapter *a, u32 i)
{
	struct sk_buff *skb = netdev_alloc_skb(a->netdev, RX_BUFFER_SIZE);

	if (!skb)
		return -ENOMEM;
	a->rx_skb[i] = skb;
	a->rx_map[i] = dma_map_single(a->pdev, skb->data, RX_BUFFER_SIZE, DMA_FROM_DEVICE);
	if (dma_mapping_error(a->pdev, a->rx_map[i])) {
		dev_kfree_skb_any(skb);
		a->rx_skb[i] = NULL;
		return -ENOMEM;
	}
	a->rx_ring[i].buffer_addr = a->rx_map[i];
	a->rx_ring[i].status = 0;
	return 0;
}

static void e1000_clean_rx(struct e1000_adapter *a)
{
	struct net_device *dev = a->netdev;
	u32 i = a->rx_next;
	int budget = RX_RING_SIZE;

	while (budget-- > 0 && (a->rx_ring[i].status & E1000_RXD_STAT_DD)) {
		struct e1000_rx_desc *desc = &a->rx_ring[i];
		struct sk_buff *skb = a->rx_skb[i];
		u32 len = desc->length;

		rmb();
		dma_unmap_single(a->pdev, a->rx_map[i], RX_BUFFER_SIZE, DMA_FROM_DEVICE);
		if ((desc->status & E1000_RXD_STAT_EOP) && !desc->errors && len <= RX_BUFFER_SIZE) {
			skb_put(skb, len);
			skb->dev = dev;
			dev->stats.rx_packets++;
			dev->stats.rx_bytes += len;
			netif_rx(skb);
		} else {
			dev->stats.rx_errors++;
			dev_kfree_skb_any(skb);
		}
		a->rx_skb[i] = NULL;
		if (e1000_alloc_rx_buffer(a, i)) {
			/* Out of buffers: leave the descriptor to the next pass. */
			dev->stats.rx_dropped++;
			break;
		}
		wmb();
		ew32(a, E1000_RDT, i);
		i = (i + 1) % RX_RING_SIZE;
	}
	a->rx_next = i;
}

static void e1000_clean_tx(struct e1000_adapter *a)
{
	struct net_device *dev = a->netdev;
	unsigned long flags;

	spin_lock_irqsave(&a->tx_lock, flags);
	while (a->tx_clean != a->tx_tail && (a->tx_ring[a->tx_clean].status & E1000_TXD_STAT_DD)) {
		u32 i = a->tx_clean;

		dma_unmap_single(a->pdev, a->tx_map[i], a->tx_ring[i].length, DMA_TO_DEVICE);
		dev->stats.tx_packets++;
		dev->stats.tx_bytes += a->tx_ring[i].length;
		dev_kfree_skb_any(a->tx_skb[i]);
		a->tx_skb[i] = NULL;
		a->tx_ring[i].status = 0;
		a->tx_clean = (i + 1) % TX_RING_SIZE;
	}
	if (netif_queue_stopped(dev) && (a->tx_tail + 1) % TX_RING_SIZE != a->tx_clean)
		netif_wake_queue(dev);
	spin_unlock_irqrestore(&a->tx_lock, flags);
}

static irqreturn_t e1000_intr(int irq, void *dev_id)
{
	struct net_device *dev = dev_id;
	struct e1000_adapter *a = netdev_priv(dev);
	u32 icr = er32(a, E1000_ICR);

	(void)irq;
	if (!icr)
		return IRQ_NONE; /* the line is shared: not ours */
	a->interrupts++;
	if (icr & E1000_ICR_LSC)
		e1000_update_link(a);
	e1000_clean_rx(a);
	e1000_clean_tx(a);
	return IRQ_HANDLED;
}

static int e1000_xmit_frame(struct sk_buff *skb, struct net_device *dev)
{
	struct e1000_adapter *a = netdev_priv(dev);
	unsigned long flags;
	u32 i;

	if (skb->len == 0 || skb->len > ETH_FRAME_LEN) {
		dev->stats.tx_dropped++;
		dev_kfree_skb_any(skb);
		return NETDEV_TX_OK;
	}
	spin_lock_irqsave(&a->tx_lock, flags);
	i = a->tx_tail;
	if ((i + 1) % TX_RING_SIZE == a->tx_clean) {
		netif_stop_queue(dev);
		spin_unlock_irqrestore(&a->tx_lock, flags);
		return NETDEV_TX_BUSY;
	}
	a->tx_skb[i] = skb;
	a->tx_map[i] = dma_map_single(a->pdev, skb->data, skb->len, DMA_TO_DEVICE);
	a->tx_ring[i].buffer_addr = a->tx_map[i];
	a->tx_ring[i].length = (u16)skb->len;
	a->tx_ring[i].cmd = E1000_TXD_CMD_EOP | E1000_TXD_CMD_IFCS | E1000_TXD_CMD_RS;
	a->tx_ring[i].status = 0;
	a->tx_tail = (i + 1) % TX_RING_SIZE;
	wmb();
	ew32(a, E1000_TDT, a->tx_tail);
	if ((a->tx_tail + 1) % TX_RING_SIZE == a->tx_clean)
		netif_stop_queue(dev);
	spin_unlock_irqrestore(&a->tx_lock, flags);
	return NETDEV_TX_OK;
}

static void e1000_free_rings(struct e1000_adapter *a)
{
	u32 i;

	for (i = 0; i < RX_RING_SIZE; i++) {
		if (a->rx_skb[i]) {
			dma_unmap_single(a->pdev, a->rx_map[i], RX_BUFFER_SIZE, DMA_FROM_DEVICE);
			dev_kfree_skb_any(a->rx_skb[i]);
			a->rx_skb[i] = NULL;
		}
	}
	for (i = 0; i < TX_RING_SIZE; i++) {
		if (a->tx_skb[i]) {
			dma_unmap_single(a->pdev, a->tx_map[i], a->tx_ring[i].length, DMA_TO_DEVICE);
			dev_kfree_skb_any(a->tx_skb[i]);
			a->tx_skb[i] = NULL;
		}
	}
	if (a->rx_ring)
		dma_free_coherent(a->pdev, RX_RING_SIZE * sizeof(struct e1000_rx_desc), a->rx_ring, a->rx_ring_dma);
	if (a->tx_ring)
		dma_free_coherent(a->pdev, TX_RING_SIZE * sizeof(struct e1000_tx_desc), a->tx_ring, a->tx_ring_dma);
	a->rx_ring = NULL;
	a->tx_ring = NULL;
}

static void e1000_set_mac(struct e1000_adapter *a, const u8 *mac)
{
	u32 ral = mac[0] | (mac[1] << 8) | (mac[2] << 16) | ((u32)mac[3] << 24);
	u32 rah = mac[4] | (mac[5] << 8) | E1000_RAH_AV;

	ew32(a, E1000_RAL0, ral);
	ew32(a, E1000_RAH0, rah);
}

static int e1000_open(struct net_device *dev)
{
	struct e1000_adapter *a = netdev_priv(dev);
	u32 i;
	int err;

	a->tx_ring = dma_alloc_coherent(a->pdev, TX_RING_SIZE * sizeof(struct e1000_tx_desc), &a->tx_ring_dma, GFP_KERNEL);
	a->rx_ring = dma_alloc_coherent(a->pdev, RX_RING_SIZE * sizeof(struct e1000_rx_desc), &a->rx_ring_dma, GFP_KERNEL);
	if (!a->tx_ring || !a->rx_ring) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < RX_RING_SIZE; i++) {
		err = e1000_alloc_rx_buffer(a, i);
		if (err)
			goto fail;
	}
	a->tx_tail = a->tx_clean = 0;
	a->rx_next = 0;

	e1000_set_mac(a, dev->dev_addr);
	for (i = 0; i < 128; i++)
		ew32(a, E1000_MTA + 4 * i, 0);

	ew32(a, E1000_RDBAL, (u32)a->rx_ring_dma);
	ew32(a, E1000_RDBAH, (u32)(a->rx_ring_dma >> 32));
	ew32(a, E1000_RDLEN, RX_RING_SIZE * sizeof(struct e1000_rx_desc));
	ew32(a, E1000_RDH, 0);
	ew32(a, E1000_RDT, RX_RING_SIZE - 1);
	ew32(a, E1000_RDTR, 0);
	ew32(a, E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SZ_2048 | E1000_RCTL_SECRC);

	ew32(a, E1000_TDBAL, (u32)a->tx_ring_dma);
	ew32(a, E1000_TDBAH, (u32)(a->tx_ring_dma >> 32));
	ew32(a, E1000_TDLEN, TX_RING_SIZE * sizeof(struct e1000_tx_desc));
	ew32(a, E1000_TDH, 0);
	ew32(a, E1000_TDT, 0);
	ew32(a, E1000_TIPG, E1000_TIPG_82540);
	ew32(a, E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP | E1000_TCTL_CT | E1000_TCTL_COLD);

	err = request_irq(a->irq, e1000_intr, IRQF_SHARED, dev->name, dev);
	if (err)
		goto fail_hw;
	ew32(a, E1000_CTRL, er32(a, E1000_CTRL) | E1000_CTRL_SLU | E1000_CTRL_ASDE);
	(void)er32(a, E1000_ICR);
	ew32(a, E1000_IMS, E1000_IRQ_CAUSES);
	e1000_update_link(a);
	netif_start_queue(dev);
	return 0;

fail_hw:
	ew32(a, E1000_RCTL, 0);
	ew32(a, E1000_TCTL, E1000_TCTL_PSP);
fail:
	e1000_free_rings(a);
	return err;
}

static int e1000_close(struct net_device *dev)
{
	struct e1000_adapter *a = netdev_priv(dev);

	netif_stop_queue(dev);
	ew32(a, E1000_IMC, 0xffffffff);
	ew32(a, E1000_RCTL, 0);
	ew32(a, E1000_TCTL, E1000_TCTL_PSP);
	(void)er32(a, E1000_ICR);
	free_irq(a->irq, dev);
	e1000_free_rings(a);
	netif_carrier_off(dev);
	return 0;
}

static int e1000_set_mac_address(struct net_device *dev, void *addr)
{
	struct e1000_adapter *a = netdev_priv(dev);
	const u8 *mac = addr;
	int i;

	if (mac[0] & 1)
		return -EINVAL; /* multicast addresses cannot be station addresses */
	for (i = 0; i < ETH_ALEN; i++)
		dev->dev_addr[i] = mac[i];
	e1000_set_mac(a, mac);
	return 0;
}

static int e1000_change_mtu(struct net_device *dev, int new_mtu)
{
	if (new_mtu < 68 || new_mtu > ETH_FRAME_LEN - ETH_HLEN)
		return -EINVAL;
	dev->mtu = (u32)new_mtu;
	return 0;
}

static struct net_device_stats *e1000_get_stats(struct net_device *dev)
{
	return &dev->stats;
}

/* The transmitter is stuck, or the kernel wants a clean slate: stop it, reap
 * what completed, drop what did not, rewrite every descriptor, restart. */
static void e1000_tx_timeout(struct net_device *dev, unsigned int txqueue)
{
	struct e1000_adapter *a = netdev_priv(dev);
	unsigned long flags;
	u32 i;

	(void)txqueue;
	netif_stop_queue(dev);
	ew32(a, E1000_TCTL, er32(a, E1000_TCTL) & ~E1000_TCTL_EN);
	e1000_clean_tx(a);
	spin_lock_irqsave(&a->tx_lock, flags);
	for (i = 0; i < TX_RING_SIZE; i++) {
		if (a->tx_skb[i]) {
			dma_unmap_single(a->pdev, a->tx_map[i], a->tx_ring[i].length, DMA_TO_DEVICE);
			dev_kfree_skb_any(a->tx_skb[i]);
			a->tx_skb[i] = NULL;
			dev->stats.tx_dropped++;
		}
		a->tx_map[i] = 0;
		a->tx_ring[i].buffer_addr = 0;
		a->tx_ring[i].length = 0;
		a->tx_ring[i].cso = 0;
		a->tx_ring[i].cmd = 0;
		a->tx_ring[i].status = 0;
		a->tx_ring[i].css = 0;
		a->tx_ring[i].special = 0;
	}
	a->tx_tail = a->tx_clean = 0;
	ew32(a, E1000_TDH, 0);
	ew32(a, E1000_TDT, 0);
	ew32(a, E1000_TCTL, er32(a, E1000_TCTL) | E1000_TCTL_EN);
	spin_unlock_irqrestore(&a->tx_lock, flags);
	netif_wake_queue(dev);
}

static const struct net_device_ops e1000_netdev_ops = {
	.ndo_get_stats = e1000_get_stats,
	.ndo_tx_timeout = e1000_tx_timeout,
	.ndo_open = e1000_open,
	.ndo_stop = e1000_close,
	.ndo_start_xmit = e1000_xmit_frame,
	.ndo_set_mac_address = e1000_set_mac_address,
	.ndo_change_mtu = e1000_change_mtu,
};

static int e1000_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct net_device *dev;
	struct e1000_adapter *a;
	u8 __iomem *hw;
	u16 word;
	int i, err;

	(void)id;
	err = pci_enable_device(pdev);
	if (err)
		return err;
	pci_set_master(pdev);
	hw = ioremap(pci_resource_start(pdev, 0), pci_resource_len(pdev, 0));
	if (!hw)
		return -ENOMEM;
	dev = alloc_etherdev(sizeof(struct e1000_adapter));
	if (!dev) {
		iounmap(hw);
		return -ENOMEM;
	}
	a = netdev_priv(dev);
	a->netdev = dev;
	a->pdev = pdev;
	a->hw = hw;
	a->irq = pdev->irq;
	spin_lock_init(&a->tx_lock);

	e1000_reset_hw(a);
	for (i = 0; i < 3; i++) {
		err = e1000_read_eeprom(a, (u32)i, &word);
		if (err) {
			printk("e1000: EEPROM read timed out\n");
			goto fail;
		}
		dev->dev_addr[2 * i] = (u8)word;
		dev->dev_addr[2 * i + 1] = (u8)(word >> 8);
	}
	dev->netdev_ops = &e1000_netdev_ops;
	dev->mtu = ETH_FRAME_LEN - ETH_HLEN;
	dev->irq = (s32)a->irq;
	netif_carrier_off(dev);
	err = register_netdev(dev);
	if (err)
		goto fail;
	pci_set_drvdata(pdev, dev);
	printk("%s: 82540EM at %llx irq %d mac %02x:%02x:%02x:%02x:%02x:%02x\n", dev->name,
	       pci_resource_start(pdev, 0), dev->irq, dev->dev_addr[0], dev->dev_addr[1], dev->dev_addr[2],
	       dev->dev_addr[3], dev->dev_addr[4], dev->dev_addr[5]);
	return 0;

fail:
	free_netdev(dev);
	iounmap(hw);
	return err;
}

static void e1000_remove(struct pci_dev *pdev)
{
	struct net_device *dev = pci_get_drvdata(pdev);
	struct e1000_adapter *a;

	if (!dev)
		return;
	a = netdev_priv(dev);
	unregister_netdev(dev);
	e1000_reset_hw(a);
	iounmap(a->hw);
	free_netdev(dev);
	pci_set_drvdata(pdev, NULL);
}

static const struct pci_device_id e1000_ids[] = {
	{ PCI_DEVICE(0x8086, 0x100e) }, /* 82540EM, QEMU's e1000 */
	{ 0 },
};

static struct pci_driver e1000_driver = {
	.name = "e1000",
	.id_table = e1000_ids,
	.probe = e1000_probe,
	.remove = e1000_remove,
};

static int e1000_init(void)
{
	return pci_register_driver(&e1000_driver);
}

static void e1000_exit(void)
{
	pci_unregister_driver(&e1000_driver);
}

module_init(e1000_init);
module_exit(e1000_exit);
