/*
 * nooks driver API — the kernel interface a driver is written against.
 *
 * Linux-like names, so a Linux driver author is at home. Every function
 * declared here is exported by the kernel and listed, once, in the policy
 * crate (policy/src/exports.rs); a test keeps the two lists equal. Everything
 * else a driver needs is `static inline` below (MMIO accessors, barriers).
 *
 * Layout rules: the kernel mirrors every struct here in Rust (#[repr(C)]) and
 * checks sizes and offsets at compile time, so fields use fixed-width types and
 * explicit padding. Fields marked "driver writes" are the only ones a driver
 * may store to; everything else is read-only to it, and `nooks_private` fields
 * belong to the kernel alone.
 *
 * Drivers are built with (see drivers/e1000/README.md for why):
 *   -O2 -ffreestanding -fno-builtin -nostdinc -mgeneral-regs-only -mno-red-zone
 *   -fno-pic -mcmodel=kernel -fno-jump-tables -fno-stack-protector
 *   -fno-asynchronous-unwind-tables -fcf-protection=none -g
 */
#ifndef NOOKS_DRIVER_H
#define NOOKS_DRIVER_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;
typedef unsigned long size_t;
typedef long ssize_t;
typedef u64 dma_addr_t;
typedef u32 gfp_t;
typedef _Bool bool;

#define NULL ((void *)0)
#define true 1
#define false 0
#define __iomem

#define GFP_KERNEL 0u
#define GFP_ATOMIC 1u

#define EINVAL 22
#define ENOMEM 12
#define ENODEV 19
#define EBUSY 16
#define EIO 5
#define ETIMEDOUT 110

#define HZ 1000

/* ---- logging ---------------------------------------------------------- */

/* Formats: %d %i %u %x %X %lu %ld %lx %llu %lld %llx %zu %p %s %c %%, with
 * optional '0' flag and width (e.g. %02x, %08llx). */
int printk(const char *fmt, ...);

/* ---- memory ----------------------------------------------------------- */

void *kmalloc(size_t size, gfp_t flags);
void *kzalloc(size_t size, gfp_t flags);
void kfree(const void *ptr);

/* ---- time ------------------------------------------------------------- */

u64 nooks_jiffies(void);
#define jiffies (nooks_jiffies())
void udelay(unsigned long usecs);
void mdelay(unsigned long msecs);
static inline u64 msecs_to_jiffies(u64 ms) { return ms * HZ / 1000; }

/* ---- PCI -------------------------------------------------------------- */

/* Kernel-owned; the driver only reads it. 64 bytes. */
struct pci_dev {
	u16 vendor;
	u16 device;
	u8 bus;
	u8 devfn;
	u8 irq;      /* the interrupt line to pass to request_irq */
	u8 pad0;
	u64 resource_start[6];
	void *nooks_private;
};

#define PCI_ANY_ID (~0u)

struct pci_device_id {
	u32 vendor;
	u32 device;
	u32 subvendor;
	u32 subdevice;
	u32 class;
	u32 class_mask;
	u64 driver_data;
};

#define PCI_DEVICE(vend, dev) \
	.vendor = (vend), .device = (dev), .subvendor = PCI_ANY_ID, .subdevice = PCI_ANY_ID

struct pci_driver {
	const char *name;
	const struct pci_device_id *id_table; /* ends with an all-zero entry */
	int (*probe)(struct pci_dev *pdev, const struct pci_device_id *id);
	void (*remove)(struct pci_dev *pdev);
};

int pci_register_driver(struct pci_driver *drv);
void pci_unregister_driver(struct pci_driver *drv);
int pci_enable_device(struct pci_dev *pdev);
void pci_disable_device(struct pci_dev *pdev);
void pci_set_master(struct pci_dev *pdev);
u64 pci_resource_start(struct pci_dev *pdev, int bar);
u64 pci_resource_len(struct pci_dev *pdev, int bar);
int pci_read_config_dword(struct pci_dev *pdev, int where, u32 *val);
int pci_write_config_dword(struct pci_dev *pdev, int where, u32 val);
int pci_read_config_word(struct pci_dev *pdev, int where, u16 *val);
int pci_write_config_word(struct pci_dev *pdev, int where, u16 val);
void pci_set_drvdata(struct pci_dev *pdev, void *data);
void *pci_get_drvdata(struct pci_dev *pdev);

/* ---- MMIO ------------------------------------------------------------- */

void __iomem *ioremap(u64 phys, size_t size);
void iounmap(void __iomem *addr);

/* As in Linux, register accesses are the driver's own machine code. */
static inline u32 readl(const volatile void __iomem *addr) { return *(const volatile u32 *)addr; }
static inline void writel(u32 val, volatile void __iomem *addr) { *(volatile u32 *)addr = val; }
static inline u16 readw(const volatile void __iomem *addr) { return *(const volatile u16 *)addr; }
static inline void writew(u16 val, volatile void __iomem *addr) { *(volatile u16 *)addr = val; }
static inline u8 readb(const volatile void __iomem *addr) { return *(const volatile u8 *)addr; }
static inline void writeb(u8 val, volatile void __iomem *addr) { *(volatile u8 *)addr = val; }

/* x86 keeps stores in order and uncached MMIO is not reordered with earlier
 * stores, so the barriers only need to stop the compiler. */
#define barrier() __asm__ __volatile__("" ::: "memory")
#define wmb() barrier()
#define rmb() barrier()
#define mb() barrier()
#define cpu_relax() barrier()

/* ---- DMA -------------------------------------------------------------- */

enum dma_data_direction {
	DMA_BIDIRECTIONAL = 0,
	DMA_TO_DEVICE = 1,
	DMA_FROM_DEVICE = 2,
};

void *dma_alloc_coherent(struct pci_dev *pdev, size_t size, dma_addr_t *handle, gfp_t flags);
void dma_free_coherent(struct pci_dev *pdev, size_t size, void *cpu_addr, dma_addr_t handle);
dma_addr_t dma_map_single(struct pci_dev *pdev, void *ptr, size_t size, enum dma_data_direction dir);
void dma_unmap_single(struct pci_dev *pdev, dma_addr_t addr, size_t size, enum dma_data_direction dir);
int dma_mapping_error(struct pci_dev *pdev, dma_addr_t addr);

/* ---- interrupts --------------------------------------------------------- */

typedef int irqreturn_t;
#define IRQ_NONE 0
#define IRQ_HANDLED 1
#define IRQF_SHARED 0x80ul
typedef irqreturn_t (*irq_handler_t)(int irq, void *dev_id);

int request_irq(unsigned int irq, irq_handler_t handler, unsigned long flags, const char *name, void *dev_id);
void free_irq(unsigned int irq, void *dev_id);

/* ---- locks -------------------------------------------------------------- */

/* Lives in driver memory; the kernel tracks who holds it. 8 bytes. */
typedef struct {
	u32 locked;
	u32 nooks_private;
} spinlock_t;

void spin_lock_init(spinlock_t *lock);
void spin_lock(spinlock_t *lock);
void spin_unlock(spinlock_t *lock);
unsigned long spin_lock_irqsave_flags(spinlock_t *lock);
void spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
#define spin_lock_irqsave(lock, flags) ((flags) = spin_lock_irqsave_flags(lock))

/* ---- network devices ---------------------------------------------------- */

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_ZLEN 60
#define ETH_FRAME_LEN 1514
#define IFNAMSIZ 16

#define NETDEV_TX_OK 0
#define NETDEV_TX_BUSY 16

struct sk_buff;
struct net_device;

struct net_device_ops {
	int (*ndo_open)(struct net_device *dev);
	int (*ndo_stop)(struct net_device *dev);
	int (*ndo_start_xmit)(struct sk_buff *skb, struct net_device *dev);
	int (*ndo_set_mac_address)(struct net_device *dev, void *addr);
	int (*ndo_change_mtu)(struct net_device *dev, int new_mtu);
	struct net_device_stats *(*ndo_get_stats)(struct net_device *dev);
	void (*ndo_tx_timeout)(struct net_device *dev, unsigned int txqueue);
};

struct net_device_stats {
	u64 rx_packets;
	u64 tx_packets;
	u64 rx_bytes;
	u64 tx_bytes;
	u64 rx_errors;
	u64 tx_errors;
	u64 rx_dropped;
	u64 tx_dropped;
};

/* Allocated by alloc_etherdev. 128 bytes, then the driver's private area. */
struct net_device {
	char name[IFNAMSIZ];                    /* kernel writes at register_netdev */
	u8 dev_addr[ETH_ALEN];                  /* driver writes */
	u16 pad0;
	u32 mtu;                                /* driver writes */
	u32 flags;
	s32 irq;                                /* driver writes */
	u32 pad1;
	const struct net_device_ops *netdev_ops; /* driver writes */
	struct net_device_stats stats;          /* driver writes */
	void *priv;                             /* see netdev_priv() */
	void *nooks_private;
};

static inline void *netdev_priv(const struct net_device *dev) { return dev->priv; }

struct net_device *alloc_etherdev(int sizeof_priv);
void free_netdev(struct net_device *dev);
int register_netdev(struct net_device *dev);
void unregister_netdev(struct net_device *dev);
void netif_start_queue(struct net_device *dev);
void netif_stop_queue(struct net_device *dev);
void netif_wake_queue(struct net_device *dev);
bool netif_queue_stopped(const struct net_device *dev);
void netif_carrier_on(struct net_device *dev);
void netif_carrier_off(struct net_device *dev);
bool netif_carrier_ok(const struct net_device *dev);
int netif_rx(struct sk_buff *skb);

/* A packet buffer. 48 bytes. */
struct sk_buff {
	u8 *data;               /* start of the packet; skb_reserve moves it */
	u32 len;                /* bytes of packet at data; skb_put grows it */
	u32 size;               /* capacity from head */
	u8 *head;               /* start of the buffer */
	struct net_device *dev; /* driver writes on receive */
	u16 protocol;
	u16 pad0;
	u32 pad1;
	void *nooks_private;
};

struct sk_buff *netdev_alloc_skb(struct net_device *dev, unsigned int length);
void dev_kfree_skb_any(struct sk_buff *skb);
u8 *skb_put(struct sk_buff *skb, unsigned int len);
void skb_reserve(struct sk_buff *skb, int len);

/* ---- timers ------------------------------------------------------------- */

struct timer_list {
	void (*function)(struct timer_list *t);
	u64 expires;
	void *nooks_private;
};

void timer_setup(struct timer_list *timer, void (*function)(struct timer_list *), unsigned int flags);
int mod_timer(struct timer_list *timer, u64 expires);
int del_timer_sync(struct timer_list *timer);

/* ---- modules ------------------------------------------------------------ */

#define module_init(fn) int init_module(void) __attribute__((alias(#fn)));
#define module_exit(fn) void cleanup_module(void) __attribute__((alias(#fn)));

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - __builtin_offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- string functions (gcc may also emit calls to these itself) --------- */

void *memset(void *s, int c, size_t n);
void *memcpy(void *dest, const void *src, size_t n);
void *memmove(void *dest, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- port I/O (nooks-cc turns the in/out instructions into these) ------- */

unsigned int nooks_port_in(unsigned long port, unsigned long size);
void nooks_port_out(unsigned long port, unsigned long size, unsigned long value);

/* The kernel mirrors these layouts (kernel/src/driver_api/abi.rs). */
_Static_assert(sizeof(struct pci_dev) == 64, "struct pci_dev layout");
_Static_assert(sizeof(struct pci_device_id) == 32, "struct pci_device_id layout");
_Static_assert(sizeof(struct pci_driver) == 32, "struct pci_driver layout");
_Static_assert(sizeof(struct net_device_ops) == 56, "struct net_device_ops layout");
_Static_assert(sizeof(struct net_device) == 128, "struct net_device layout");
_Static_assert(__builtin_offsetof(struct net_device, priv) == 112, "net_device.priv offset");
_Static_assert(sizeof(struct sk_buff) == 48, "struct sk_buff layout");
_Static_assert(sizeof(struct timer_list) == 24, "struct timer_list layout");
_Static_assert(sizeof(spinlock_t) == 8, "spinlock_t layout");

#endif /* NOOKS_DRIVER_H */
