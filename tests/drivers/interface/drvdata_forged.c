/* pci_set_drvdata on a pci_dev it made up (the kernel's binding table is
 * the kernel's: a forged device names no binding). */
#include "misuse.h"
static struct pci_dev fake;
static int init(void) { pci_set_drvdata(&fake, TARGET); return 0; }
module_init(init);
