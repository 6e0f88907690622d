//! The kernel functions a driver may call: the driver API of
//! `drivers/include/nooks/driver.h`, one entry per declared function. A test
//! parses the header and checks both lists are equal.

/// What a function is for (wrappers and reports group by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Console output.
    Log,
    /// Kernel heap.
    Mem,
    /// Time and delays.
    Time,
    /// PCI configuration and resources.
    Pci,
    /// Device-memory mappings.
    Mmio,
    /// DMA buffers and mappings.
    Dma,
    /// Interrupt handlers.
    Irq,
    /// Spinlocks.
    Lock,
    /// Network devices.
    Net,
    /// Socket buffers.
    Skb,
    /// Timers.
    Timer,
    /// String functions (gcc may emit calls to these itself).
    String,
    /// Port I/O (what nooks-cc turns `in`/`out` into).
    Port,
}

/// One exported function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    /// Its C name.
    pub name: &'static str,
    /// Number of fixed arguments.
    pub args: u8,
    /// Whether it takes `...`.
    pub variadic: bool,
    /// What it is for.
    pub category: Category,
}

const fn f(name: &'static str, args: u8, category: Category) -> Export {
    Export {
        name,
        args,
        variadic: false,
        category,
    }
}

use Category::*;

/// Every function the kernel exports to drivers.
pub const EXPORTS: &[Export] = &[
    Export {
        name: "printk",
        args: 1,
        variadic: true,
        category: Log,
    },
    f("kmalloc", 2, Mem),
    f("kzalloc", 2, Mem),
    f("kfree", 1, Mem),
    f("nooks_jiffies", 0, Time),
    f("udelay", 1, Time),
    f("mdelay", 1, Time),
    f("pci_register_driver", 1, Pci),
    f("pci_unregister_driver", 1, Pci),
    f("pci_enable_device", 1, Pci),
    f("pci_disable_device", 1, Pci),
    f("pci_set_master", 1, Pci),
    f("pci_resource_start", 2, Pci),
    f("pci_resource_len", 2, Pci),
    f("pci_read_config_dword", 3, Pci),
    f("pci_write_config_dword", 3, Pci),
    f("pci_read_config_word", 3, Pci),
    f("pci_write_config_word", 3, Pci),
    f("pci_set_drvdata", 2, Pci),
    f("pci_get_drvdata", 1, Pci),
    f("ioremap", 2, Mmio),
    f("iounmap", 1, Mmio),
    f("dma_alloc_coherent", 4, Dma),
    f("dma_free_coherent", 4, Dma),
    f("dma_map_single", 4, Dma),
    f("dma_unmap_single", 4, Dma),
    f("dma_mapping_error", 2, Dma),
    f("request_irq", 5, Irq),
    f("free_irq", 2, Irq),
    f("spin_lock_init", 1, Lock),
    f("spin_lock", 1, Lock),
    f("spin_unlock", 1, Lock),
    f("spin_lock_irqsave_flags", 1, Lock),
    f("spin_unlock_irqrestore", 2, Lock),
    f("alloc_etherdev", 1, Net),
    f("free_netdev", 1, Net),
    f("register_netdev", 1, Net),
    f("unregister_netdev", 1, Net),
    f("netif_start_queue", 1, Net),
    f("netif_stop_queue", 1, Net),
    f("netif_wake_queue", 1, Net),
    f("netif_queue_stopped", 1, Net),
    f("netif_carrier_on", 1, Net),
    f("netif_carrier_off", 1, Net),
    f("netif_carrier_ok", 1, Net),
    f("netif_rx", 1, Net),
    f("netdev_alloc_skb", 2, Skb),
    f("dev_kfree_skb_any", 1, Skb),
    f("skb_put", 2, Skb),
    f("skb_reserve", 2, Skb),
    f("timer_setup", 3, Timer),
    f("mod_timer", 2, Timer),
    f("del_timer_sync", 1, Timer),
    f("memset", 3, String),
    f("memcpy", 3, String),
    f("memmove", 3, String),
    f("memcmp", 3, String),
    f("nooks_port_in", 2, Port),
    f("nooks_port_out", 3, Port),
];

/// The export named `name`.
pub fn export(name: &str) -> Option<&'static Export> {
    EXPORTS.iter().find(|e| e.name == name)
}

/// Whether the kernel exports `name` to drivers.
pub fn is_exported(name: &str) -> bool {
    export(name).is_some()
}
