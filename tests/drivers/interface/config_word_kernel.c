/* pci_read_config_word writes the value through a pointer to kernel memory. */
#include "misuse.h"
static int probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	(void)id;
	return pci_read_config_word(pdev, 0, TARGET);
}
BIND(SMBUS, probe)
