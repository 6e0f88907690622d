/*
 * Shared by the interface misuse drivers: each one misuses one export,
 * callback or kernel object of drivers/include/nooks/driver.h.
 *
 * KERNEL_TARGET is kernel memory the kernel's integrity check covers (the
 * IDT: a write there is caught at the end of the run even if nothing traps).
 * tests/tests/interface.rs passes its address with -DKERNEL_TARGET=...
 */
#include <nooks/driver.h>

#ifndef KERNEL_TARGET
#error "built by tests/tests/interface.rs with -DKERNEL_TARGET=<the IDT's address>"
#endif
#define TARGET ((void *)KERNEL_TARGET)

/* The first e1000 domain's net_device ("eth0"), found by reading its window:
 * reads are not checked under sfi; under mmu other windows are absent from a
 * domain's page tables and the read itself faults. */
static inline struct net_device *find_eth0(void)
{
	for (u64 a = 0xffffffffc0400000ull; a < 0xffffffffc0c00000ull; a += 64) {
		struct net_device *d = (struct net_device *)a;
		if (d->name[0] == 'e' && d->name[1] == 't' && d->name[2] == 'h' && d->name[3] == '0' &&
		    d->name[4] == 0 && d->mtu == 1500)
			return d;
	}
	return NULL;
}

/* A device of the q35 machine no other driver takes, for drivers that need a
 * pci_dev of their own. */
#define BIND(...) BIND_(__VA_ARGS__)
#define PCI_DEVICE_OF(...) PCI_DEVICE(__VA_ARGS__)
#define BIND_(vendor, device, probe_fn)                                                        \
	static const struct pci_device_id ids[] = { { PCI_DEVICE(vendor, device) }, { 0 } };      \
	static struct pci_driver drv = { .name = __FILE__, .id_table = ids, .probe = probe_fn }; \
	static int init(void) { return pci_register_driver(&drv); }                              \
	module_init(init);
#define SATA 0x8086, 0x2922
#define SMBUS 0x8086, 0x2930
#define LPC 0x8086, 0x2918

/* An offset the compiler cannot see (nooks-cc refuses a relocation into
 * the middle of a function at build time; computed at run time it reaches
 * the kernel, which must refuse it there). */
static volatile long mid = 4;

/* A net device of the driver's own, registered, with no operations. */
static inline struct net_device *own_netdev(void)
{
	static const struct net_device_ops none = { 0 };
	struct net_device *dev = alloc_etherdev(0);
	dev->netdev_ops = &none;
	register_netdev(dev);
	return dev;
}
