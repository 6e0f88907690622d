//! Rust mirrors of the structs in `drivers/include/nooks/driver.h`. Sizes and
//! offsets are checked at compile time against the header's comments, so a
//! change on one side without the other does not build.

use core::mem::{offset_of, size_of};

/// `struct pci_dev`.
#[repr(C)]
pub struct PciDev {
    pub vendor: u16,
    pub device: u16,
    pub bus: u8,
    pub devfn: u8,
    pub irq: u8,
    pub pad0: u8,
    pub resource_start: [u64; 6],
    pub nooks_private: u64,
}

/// `struct pci_device_id`.
#[repr(C)]
pub struct PciDeviceId {
    pub vendor: u32,
    pub device: u32,
    pub subvendor: u32,
    pub subdevice: u32,
    pub class: u32,
    pub class_mask: u32,
    pub driver_data: u64,
}

/// `struct pci_driver`.
#[repr(C)]
pub struct PciDriver {
    pub name: *const u8,
    pub id_table: *const PciDeviceId,
    pub probe: Option<unsafe extern "C" fn(*mut PciDev, *const PciDeviceId) -> i32>,
    pub remove: Option<unsafe extern "C" fn(*mut PciDev)>,
}

/// `struct net_device_ops`.
#[repr(C)]
pub struct NetDeviceOps {
    pub ndo_open: Option<unsafe extern "C" fn(*mut NetDevice) -> i32>,
    pub ndo_stop: Option<unsafe extern "C" fn(*mut NetDevice) -> i32>,
    pub ndo_start_xmit: Option<unsafe extern "C" fn(*mut SkBuff, *mut NetDevice) -> i32>,
    pub ndo_set_mac_address: Option<unsafe extern "C" fn(*mut NetDevice, *mut u8) -> i32>,
    pub ndo_change_mtu: Option<unsafe extern "C" fn(*mut NetDevice, i32) -> i32>,
    pub ndo_get_stats: Option<unsafe extern "C" fn(*mut NetDevice) -> *mut NetDeviceStats>,
    pub ndo_tx_timeout: Option<unsafe extern "C" fn(*mut NetDevice, u32)>,
}

/// `struct net_device_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct NetDeviceStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// `struct net_device`.
#[repr(C)]
pub struct NetDevice {
    pub name: [u8; 16],
    pub dev_addr: [u8; 6],
    pub pad0: u16,
    pub mtu: u32,
    pub flags: u32,
    pub irq: i32,
    pub pad1: u32,
    pub netdev_ops: *const NetDeviceOps,
    pub stats: NetDeviceStats,
    pub priv_: *mut u8,
    pub nooks_private: u64,
}

/// `struct sk_buff`.
#[repr(C)]
pub struct SkBuff {
    pub data: *mut u8,
    pub len: u32,
    pub size: u32,
    pub head: *mut u8,
    pub dev: *mut NetDevice,
    pub protocol: u16,
    pub pad0: u16,
    pub pad1: u32,
    pub nooks_private: u64,
}

/// `struct timer_list`.
#[repr(C)]
pub struct TimerList {
    pub function: Option<unsafe extern "C" fn(*mut TimerList)>,
    pub expires: u64,
    pub nooks_private: u64,
}

/// `spinlock_t`.
#[repr(C)]
pub struct SpinLock {
    pub locked: u32,
    pub nooks_private: u32,
}

/// `NETDEV_TX_OK`.
pub const NETDEV_TX_OK: i32 = 0;
/// `NETDEV_TX_BUSY`.
pub const NETDEV_TX_BUSY: i32 = 16;

const _: () = {
    assert!(size_of::<PciDev>() == 64);
    assert!(offset_of!(PciDev, irq) == 6);
    assert!(offset_of!(PciDev, resource_start) == 8);
    assert!(size_of::<PciDeviceId>() == 32);
    assert!(size_of::<PciDriver>() == 32);
    assert!(size_of::<NetDeviceOps>() == 56);
    assert!(size_of::<NetDeviceStats>() == 64);
    assert!(size_of::<NetDevice>() == 128);
    assert!(offset_of!(NetDevice, dev_addr) == 16);
    assert!(offset_of!(NetDevice, mtu) == 24);
    assert!(offset_of!(NetDevice, irq) == 32);
    assert!(offset_of!(NetDevice, netdev_ops) == 40);
    assert!(offset_of!(NetDevice, stats) == 48);
    assert!(offset_of!(NetDevice, priv_) == 112);
    assert!(size_of::<SkBuff>() == 48);
    assert!(offset_of!(SkBuff, len) == 8);
    assert!(offset_of!(SkBuff, head) == 16);
    assert!(offset_of!(SkBuff, dev) == 24);
    assert!(size_of::<TimerList>() == 24);
    assert!(size_of::<SpinLock>() == 8);
};
