/* A pci_driver whose probe is kernel code. */
#include "misuse.h"
static const struct pci_device_id ids[] = { { PCI_DEVICE(PCI_ANY_ID, PCI_ANY_ID) }, { 0 } };
static struct pci_driver drv = { .name = "probe_kernel", .id_table = ids };
static int init(void)
{
	drv.probe = (int (*)(struct pci_dev *, const struct pci_device_id *))(void *)kfree;
	return pci_register_driver(&drv);
}
module_init(init);
