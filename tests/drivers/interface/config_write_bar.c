/* Moves its own device's BAR through config space (over RAM, say). */
#include "misuse.h"
static int probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	(void)id;
	return pci_write_config_dword(pdev, 0x10, 0x100000);
}
BIND(SATA, probe)
