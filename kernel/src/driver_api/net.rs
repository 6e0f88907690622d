//! The network-device and skb part of the driver API.
//!
//! Net devices and skbs are capabilities: a domain may name only a net
//! device it allocated (and, once registered, registered) and an skb it
//! holds. Anything else — another domain's device, a forged pointer, an skb
//! it already gave away — fails it with a cause naming the export.

use super::abi::{NetDevice, NetDeviceOps, SkBuff};
use super::mem::{self, Kind};
use crate::domain::{self, Resource, UMem};
use crate::net::{self, skb};
use core::mem::offset_of;

/// Whether `dev` is a net device the calling domain allocated (registered or
/// not); fails it otherwise.
fn own_device(export: &'static str, dev: *const NetDevice) -> bool {
    let me = domain::current();
    let ok = match mem::block(dev.cast()) {
        Some((owner, Kind::NetDevice, _)) => me.is_none() || owner == me,
        _ => me.is_none() && net::is_registered(dev),
    };
    if !ok {
        domain::misuse(export, "dev", dev as u64, "not a net device of this domain");
    }
    ok
}

/// Fails the calling domain for an skb operation `export` refused.
fn refused(export: &'static str, s: *const SkBuff, e: skb::SkbError) {
    domain::misuse(export, "skb", s as u64, e.why());
}

pub extern "C" fn alloc_etherdev(sizeof_priv: i32) -> *mut NetDevice {
    let Ok(priv_size) = usize::try_from(sizeof_priv) else {
        return core::ptr::null_mut();
    };
    let total = core::mem::size_of::<NetDevice>() + priv_size;
    let dev = mem::alloc(total, Kind::NetDevice) as *mut NetDevice;
    if dev.is_null() {
        return dev;
    }
    // SAFETY: zeroed allocation large enough for the struct and the private area.
    unsafe {
        (*dev).mtu = 1500;
        (*dev).priv_ = (dev as *mut u8).add(core::mem::size_of::<NetDevice>());
    }
    dev
}

pub extern "C" fn free_netdev(dev: *mut NetDevice) {
    if !own_device("free_netdev", dev) {
        return;
    }
    if net::is_registered(dev) {
        domain::uncharge(domain::current(), Resource::NetDevice);
    }
    for s in net::unregister(dev) {
        skb::free(s);
    }
    mem::free(dev as *const u8, Kind::NetDevice);
}

/// The driver's operations, each checked to be one of its entry points.
fn checked_ops(dev: *mut NetDevice) -> Option<net::Ops> {
    // SAFETY: reads of the driver's net_device (its own block, checked) and
    // of the ops table it names (a read fault is contained by its catch frame).
    let table = unsafe { (*dev).netdev_ops };
    if table.is_null() {
        return Some(net::Ops::default());
    }
    // SAFETY: as above; the table is read once, here, and never again.
    let o: NetDeviceOps = unsafe { core::ptr::read_unaligned(table) };
    // Each operation the driver set must be one of its entry points.
    macro_rules! checked {
        ($op:ident) => {
            match o.$op {
                None => None,
                Some(f) => Some(domain::entry::register(
                    "register_netdev",
                    concat!("netdev_ops->", stringify!($op)),
                    f as usize as u64,
                )?),
            }
        };
    }
    Some(net::Ops {
        open: checked!(ndo_open),
        stop: checked!(ndo_stop),
        start_xmit: checked!(ndo_start_xmit),
        set_mac_address: checked!(ndo_set_mac_address),
        change_mtu: checked!(ndo_change_mtu),
        get_stats: checked!(ndo_get_stats),
        tx_timeout: checked!(ndo_tx_timeout),
    })
}

pub extern "C" fn register_netdev(dev: *mut NetDevice) -> i32 {
    if !own_device("register_netdev", dev) {
        return -22;
    }
    if net::is_registered(dev) {
        domain::misuse("register_netdev", "dev", dev as u64, "registered already");
        return -16;
    }
    let Some(ops) = checked_ops(dev) else {
        return -22;
    };
    domain::charge("register_netdev", Resource::NetDevice);
    let name = net::register(dev, ops);
    let mut bytes = [0u8; 16];
    bytes[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    if let Some(m) = UMem::new("register_netdev", "dev", dev as u64, 16) {
        m.write(offset_of!(NetDevice, name) as u64, bytes);
    }
    0
}

/// Runs `f` on `dev` if it is registered by the calling domain; an own
/// device not registered yet is a no-op; anything else fails the caller.
fn with_own<R>(
    export: &'static str,
    dev: *const NetDevice,
    f: impl FnOnce(&mut net::Device) -> R,
) -> Option<R> {
    match net::with_domain(dev, domain::current(), f) {
        Ok(Some(r)) => Some(r),
        Err(_) => {
            domain::misuse(export, "dev", dev as u64, "a net device of another domain");
            None
        }
        Ok(None) => {
            own_device(export, dev);
            None
        }
    }
}

pub extern "C" fn unregister_netdev(dev: *mut NetDevice) {
    let Some(up) = with_own("unregister_netdev", dev, |d| d.up) else {
        return;
    };
    if up {
        let _ = net::close(dev);
    }
    domain::uncharge(domain::current(), Resource::NetDevice);
    for s in net::unregister(dev) {
        skb::free(s);
    }
}

pub extern "C" fn netif_start_queue(dev: *mut NetDevice) {
    with_own("netif_start_queue", dev, |d| d.stopped = false);
}

pub extern "C" fn netif_stop_queue(dev: *mut NetDevice) {
    with_own("netif_stop_queue", dev, |d| d.stopped = true);
}

pub extern "C" fn netif_wake_queue(dev: *mut NetDevice) {
    with_own("netif_wake_queue", dev, |d| d.stopped = false);
}

pub extern "C" fn netif_queue_stopped(dev: *const NetDevice) -> bool {
    with_own("netif_queue_stopped", dev, |d| d.stopped).unwrap_or(true)
}

pub extern "C" fn netif_carrier_on(dev: *mut NetDevice) {
    with_own("netif_carrier_on", dev, |d| d.carrier = true);
}

pub extern "C" fn netif_carrier_off(dev: *mut NetDevice) {
    with_own("netif_carrier_off", dev, |d| d.carrier = false);
}

pub extern "C" fn netif_carrier_ok(dev: *const NetDevice) -> bool {
    with_own("netif_carrier_ok", dev, |d| d.carrier).unwrap_or(false)
}

pub extern "C" fn netif_rx(s: *mut SkBuff) -> i32 {
    let me = domain::current();
    if let Err(e) = skb::hand_up(s) {
        refused("netif_rx", s, e);
        return 1;
    }
    // SAFETY: a live skb (checked by hand_up): its struct is mapped.
    let dev = unsafe { (*s).dev };
    if net::receive(s, dev, me) {
        return 0;
    }
    // Not a device of the caller's: the skb is its own again, to free.
    skb::hand_to(s, me);
    domain::misuse(
        "netif_rx",
        "skb->dev",
        dev as u64,
        "not a registered net device of this domain",
    );
    1
}

pub extern "C" fn netdev_alloc_skb(dev: *mut NetDevice, length: u32) -> *mut SkBuff {
    if !dev.is_null() && !own_device("netdev_alloc_skb", dev) {
        return core::ptr::null_mut();
    }
    skb::alloc(dev, length)
}

pub extern "C" fn dev_kfree_skb_any(s: *mut SkBuff) {
    if s.is_null() {
        return;
    }
    if let Err(e) = skb::free_held(s, domain::current()) {
        refused("dev_kfree_skb_any", s, e);
    }
}

pub extern "C" fn skb_put(s: *mut SkBuff, len: u32) -> *mut u8 {
    let grown = skb::with_held(s, domain::current(), |r| {
        // SAFETY: an skb the domain holds: its struct is mapped (its fields
        // are checked against the kernel's record of the buffer before use).
        let (data, old) = unsafe { ((*s).data as u64, (*s).len) };
        let end = r.head + u64::from(r.size);
        let tail = data.checked_add(u64::from(old))?;
        if data < r.head || tail.saturating_add(u64::from(len)) > end {
            return None;
        }
        // SAFETY: as above.
        unsafe { (*s).len = old + len };
        Some(tail)
    });
    match grown {
        Ok(Some(tail)) => tail as *mut u8,
        Ok(None) => {
            crate::warn!("skb_put: {len} bytes past the end of the buffer");
            core::ptr::null_mut()
        }
        Err(e) => {
            refused("skb_put", s, e);
            core::ptr::null_mut()
        }
    }
}

pub extern "C" fn skb_reserve(s: *mut SkBuff, len: i32) {
    let Ok(len) = u64::try_from(len) else { return };
    let r = skb::with_held(s, domain::current(), |r| {
        // SAFETY: an skb the domain holds (fields checked against the record).
        unsafe {
            let data = (*s).data as u64;
            if (*s).len == 0 && data >= r.head && data + len <= r.head + u64::from(r.size) {
                (*s).data = (data + len) as *mut u8;
            }
        }
    });
    if let Err(e) = r {
        refused("skb_reserve", s, e);
    }
}
