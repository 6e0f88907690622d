//! The kernel side of the driver API (`drivers/include/nooks/driver.h`):
//! every function the policy crate exports, implemented as `extern "C"`
//! functions, one module per category, and the export table the loader
//! resolves driver imports through.
//!
//! Nothing a driver passes is trusted: a pointer the kernel writes through
//! must be the caller's own memory (`domain::UMem`), a kernel object it names
//! (net device, skb, `pci_dev`, IRQ registration, timer, DMA buffer) must be
//! one its domain owns, a callback must be one of its entry points
//! (`domain::Entry`, checked at registration and kept in kernel memory), and
//! what the kernel spends for it is charged to it (`domain::Resource`).
//! Misuse fails the calling domain with a cause naming the export and the
//! argument; the kernel never writes for it outside its memory.

#![allow(missing_docs, clippy::missing_safety_doc)]

pub mod abi;
pub mod dma;
pub mod irq;
pub mod lock;
pub mod log;
pub mod mem;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod port;
pub mod string;
pub mod time;
pub mod timer;

/// What the kernel held for a failed domain and gave back.
#[derive(Debug, Default, Clone)]
pub struct Released {
    /// Its net devices' configuration (name, MAC, MTU, flags, up), kept for
    /// the fresh instance.
    pub devices: alloc::vec::Vec<crate::net::Config>,
    /// skbs it held.
    pub skbs: usize,
    /// Heap blocks it had.
    pub blocks: usize,
}

/// Releases everything the kernel holds for failed domain `id`, in one
/// operation: its net devices (keeping their configuration and names), PCI
/// bindings, coherent DMA buffers, skbs and heap blocks. (Its interrupt
/// handlers and timers went when it failed: nothing calls into it again.)
pub fn release(id: usize) -> Released {
    let devices = crate::net::detach_domain(id);
    pci::unbind_domain(id);
    dma::forget(id);
    let skbs = crate::net::skb::reclaim(id);
    let blocks = mem::forget_domain(id);
    Released {
        devices,
        skbs,
        blocks,
    }
}

macro_rules! export_table {
    ($($name:ident => $path:path),* $(,)?) => {
        /// The address of the kernel function exported to drivers as `name`.
        pub fn resolve(name: &str) -> Option<u64> {
            match name {
                $(stringify!($name) => Some($path as *const () as u64),)*
                _ => None,
            }
        }

        /// Every name the table resolves.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        crate::domain::gate::kernel_gates! { $($name => $path),* }
    };
}

/// What a driver's import `name` resolves to under `mechanism`: the export
/// itself, or under `mmu` (`pks`) the gate that switches to the kernel's
/// tables (rights) — except the string functions, which such a domain runs
/// directly with its own tables (rights): they touch nothing but their
/// arguments, so the domain's permissions confine them; through a gate they
/// would write with the kernel's.
pub fn resolve_for(name: &str, mechanism: crate::domain::Mechanism) -> Option<u64> {
    use crate::domain::Mechanism;
    let direct = resolve(name)?;
    if !matches!(mechanism, Mechanism::Mmu | Mechanism::Pks) {
        return Some(direct);
    }
    match name {
        "memset" => Some(crate::rt::memset as *const () as u64),
        "memcpy" => Some(crate::rt::memcpy as *const () as u64),
        "memmove" => Some(crate::rt::memmove as *const () as u64),
        "memcmp" => Some(crate::rt::memcmp as *const () as u64),
        _ if mechanism == Mechanism::Pks => kernel_pkgate(name),
        _ => kernel_gate(name),
    }
}

export_table! {
    printk => log::printk,
    kmalloc => mem::kmalloc,
    kzalloc => mem::kzalloc,
    kfree => mem::kfree,
    nooks_jiffies => time::nooks_jiffies,
    udelay => time::udelay,
    mdelay => time::mdelay,
    pci_register_driver => pci::pci_register_driver,
    pci_unregister_driver => pci::pci_unregister_driver,
    pci_enable_device => pci::pci_enable_device,
    pci_disable_device => pci::pci_disable_device,
    pci_set_master => pci::pci_set_master,
    pci_resource_start => pci::pci_resource_start,
    pci_resource_len => pci::pci_resource_len,
    pci_read_config_dword => pci::pci_read_config_dword,
    pci_write_config_dword => pci::pci_write_config_dword,
    pci_read_config_word => pci::pci_read_config_word,
    pci_write_config_word => pci::pci_write_config_word,
    pci_set_drvdata => pci::pci_set_drvdata,
    pci_get_drvdata => pci::pci_get_drvdata,
    ioremap => mmio::ioremap,
    iounmap => mmio::iounmap,
    dma_alloc_coherent => dma::dma_alloc_coherent,
    dma_free_coherent => dma::dma_free_coherent,
    dma_map_single => dma::dma_map_single,
    dma_unmap_single => dma::dma_unmap_single,
    dma_mapping_error => dma::dma_mapping_error,
    request_irq => irq::request_irq,
    free_irq => irq::free_irq,
    spin_lock_init => lock::spin_lock_init,
    spin_lock => lock::spin_lock,
    spin_unlock => lock::spin_unlock,
    spin_lock_irqsave_flags => lock::spin_lock_irqsave_flags,
    spin_unlock_irqrestore => lock::spin_unlock_irqrestore,
    alloc_etherdev => net::alloc_etherdev,
    free_netdev => net::free_netdev,
    register_netdev => net::register_netdev,
    unregister_netdev => net::unregister_netdev,
    netif_start_queue => net::netif_start_queue,
    netif_stop_queue => net::netif_stop_queue,
    netif_wake_queue => net::netif_wake_queue,
    netif_queue_stopped => net::netif_queue_stopped,
    netif_carrier_on => net::netif_carrier_on,
    netif_carrier_off => net::netif_carrier_off,
    netif_carrier_ok => net::netif_carrier_ok,
    netif_rx => net::netif_rx,
    netdev_alloc_skb => net::netdev_alloc_skb,
    dev_kfree_skb_any => net::dev_kfree_skb_any,
    skb_put => net::skb_put,
    skb_reserve => net::skb_reserve,
    timer_setup => timer::timer_setup,
    mod_timer => timer::mod_timer,
    del_timer_sync => timer::del_timer_sync,
    memset => string::memset,
    memcpy => string::memcpy,
    memmove => string::memmove,
    memcmp => string::memcmp,
    nooks_port_in => port::nooks_port_in,
    nooks_port_out => port::nooks_port_out,
}

crate::ktest! {
    fn export_table_matches_the_policy() {
        for e in nooks_policy::EXPORTS {
            crate::kassert!(resolve(e.name).is_some(), "policy export {} is not implemented", e.name);
        }
        for n in NAMES {
            crate::kassert!(nooks_policy::is_exported(n), "{} is implemented but not in the policy", n);
        }
        crate::kassert!(NAMES.len() == nooks_policy::EXPORTS.len(), "table and policy differ in length");
        Ok(())
    }
}

crate::ktest! {
    fn printk_formats_like_c() {
        let s = log::format_for_test(c"%d|%5u|%02x|%-4s|%llx|%c|%%|%i", &[(-7i64) as u64, 42, 0xa, 0x0, 0xdead_beef_cafe], &[b'Z' as u64, (-3i64) as u64]);
        crate::kassert!(s == "-7|   42|0a|(null)|deadbeefcafe|Z|%|-3", "formatted {:?}", s);
        Ok(())
    }
}
