/* A wild store into kernel data: probe writes the kernel-owned pci_dev. */
#include <nooks/driver.h>
static int bad_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	(void)id;
	pdev->vendor = 0xdead; /* the kernel's object, not the driver's */
	return 0;
}
static const struct pci_device_id ids[] = { { PCI_DEVICE(0x8086, 0x2918) }, { 0 } }; /* the ICH9 LPC bridge */
static struct pci_driver drv = { .name = "wild_store", .id_table = ids, .probe = bad_probe };
static int init(void) { return pci_register_driver(&drv); }
module_init(init);
