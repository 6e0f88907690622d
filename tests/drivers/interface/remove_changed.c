/* Registers a pci_driver, then points its remove (driver memory) at kernel
 * code and unregisters: the kernel calls the remove it checked at
 * registration. Nothing fails. */
#include "misuse.h"
static int probe(struct pci_dev *pdev, const struct pci_device_id *id) { (void)pdev; (void)id; return 0; }
static void remove(struct pci_dev *pdev) { (void)pdev; printk("remove_changed: the registered remove ran\n"); }
static const struct pci_device_id ids[] = { { PCI_DEVICE_OF(LPC) }, { 0 } };
static struct pci_driver drv = { .name = "remove_changed", .id_table = ids, .probe = probe, .remove = remove };
static int init(void)
{
	int err = pci_register_driver(&drv);
	drv.remove = (void (*)(struct pci_dev *))(void *)kfree;
	pci_unregister_driver(&drv);
	return err;
}
module_init(init);
