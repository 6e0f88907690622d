/* Registers interrupt handlers on its device's line without end. */
#include "misuse.h"
static irqreturn_t handler(int irq, void *dev_id) { (void)irq; (void)dev_id; return IRQ_NONE; }
static int probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	(void)id;
	for (long i = 0;; i++)
		if (request_irq(pdev->irq, handler, IRQF_SHARED, "exhaust", (void *)i))
			return -EBUSY;
}
BIND(SMBUS, probe)
