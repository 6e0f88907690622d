/* pci_enable_device of a pci_dev it made up. */
#include "misuse.h"
static struct pci_dev fake = { .vendor = 0x8086, .device = 0x100e };
static int init(void) { return pci_enable_device(&fake); }
module_init(init);
