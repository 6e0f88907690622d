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
#include "e1000.h"

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
	e1000_print_stats(a);
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
