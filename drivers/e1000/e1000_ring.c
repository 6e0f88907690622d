/* e1000: the descriptor rings — receive (reap, refill), transmit, clean-up,
 * and the interrupt handler that drives them. */
#include "e1000.h"

int e1000_alloc_rx_buffer(struct e1000_adapter *a, u32 i)
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

void e1000_clean_rx(struct e1000_adapter *a)
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
		if ((desc->status & E1000_RXD_STAT_EOP) && !desc->errors && e1000_count_rx(a, len) == 0) {
			skb_put(skb, len);
			skb->dev = dev;
			dev->stats.rx_packets++;
			if (!(dev->stats.rx_packets & 4095))
				e1000_print_stats(a); /* every 4096 frames */
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

void e1000_clean_tx(struct e1000_adapter *a)
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

irqreturn_t e1000_intr(int irq, void *dev_id)
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

int e1000_xmit_frame(struct sk_buff *skb, struct net_device *dev)
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

void e1000_free_rings(struct e1000_adapter *a)
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
