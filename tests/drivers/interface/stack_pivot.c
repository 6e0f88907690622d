/* Moves its stack pointer into kernel memory, then calls an export that calls
 * back into it (pci_register_driver -> probe): whatever is pushed or copied
 * for the callback would land in kernel memory. */
#include "misuse.h"
static int probe(struct pci_dev *pdev, const struct pci_device_id *id) { (void)pdev; (void)id; return 0; }
static const struct pci_device_id ids[] = { { PCI_DEVICE(PCI_ANY_ID, PCI_ANY_ID) }, { 0 } };
static struct pci_driver drv = { .name = "stack_pivot", .id_table = ids, .probe = probe };
static int init(void)
{
	long r;
	__asm__ __volatile__(
		"mov %%rsp, %%rbx\n\t"
		"mov %[top], %%rsp\n\t"
		"call pci_register_driver\n\t"
		"mov %%rbx, %%rsp"
		: "=a"(r)
		: [top] "r"((u64)TARGET + 0x800), "D"(&drv)
		: "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory");
	return (int)r;
}
module_init(init);
