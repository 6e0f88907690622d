//! Driver entry points: the functions of a driver the kernel calls, and what
//! must hold when each returns. The wrappers check these invariants under every
//! isolation mechanism.

/// How the kernel reaches a driver entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `init_module`, by symbol.
    ModuleInit,
    /// `cleanup_module`, by symbol.
    ModuleExit,
    /// `pci_driver.probe`.
    Probe,
    /// `pci_driver.remove`.
    Remove,
    /// `net_device_ops.ndo_open`.
    NdoOpen,
    /// `net_device_ops.ndo_stop`.
    NdoStop,
    /// `net_device_ops.ndo_start_xmit`.
    NdoStartXmit,
    /// `net_device_ops.ndo_set_mac_address`.
    NdoSetMacAddress,
    /// `net_device_ops.ndo_change_mtu`.
    NdoChangeMtu,
    /// An interrupt handler passed to `request_irq`.
    IrqHandler,
    /// A timer callback passed to `timer_setup`.
    TimerCallback,
}

/// What an entry point must leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invariants {
    /// The driver holds exactly the locks it held at entry.
    pub locks_balanced: bool,
    /// The interrupt flag is as it was at entry.
    pub irq_state_restored: bool,
}

/// The invariants of every entry point: Nooks' "locks released, interrupts as
/// they were" holds for all of them.
pub const fn invariants(_kind: EntryKind) -> Invariants {
    Invariants {
        locks_balanced: true,
        irq_state_restored: true,
    }
}

/// Entry points found by symbol name.
pub const NAMED_ENTRIES: &[(&str, EntryKind)] = &[
    ("init_module", EntryKind::ModuleInit),
    ("cleanup_module", EntryKind::ModuleExit),
];
