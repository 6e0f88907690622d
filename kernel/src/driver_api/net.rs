//! The network-device and skb part of the driver API.

use super::abi::{NetDevice, SkBuff};
use super::mem;
use crate::net::{self, skb};

pub extern "C" fn alloc_etherdev(sizeof_priv: i32) -> *mut NetDevice {
    let Ok(priv_size) = usize::try_from(sizeof_priv) else {
        return core::ptr::null_mut();
    };
    let total = core::mem::size_of::<NetDevice>() + priv_size;
    let dev = mem::alloc(total) as *mut NetDevice;
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
    for s in net::unregister(dev) {
        skb::free(s);
    }
    mem::free(dev as *const u8);
}

pub extern "C" fn register_netdev(dev: *mut NetDevice) -> i32 {
    if dev.is_null() {
        return -22;
    }
    let name = net::register(dev);
    let mut bytes = [0u8; 16];
    bytes[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    // SAFETY: the driver's net_device from alloc_etherdev.
    unsafe { (*dev).name = bytes };
    0
}

pub extern "C" fn unregister_netdev(dev: *mut NetDevice) {
    if net::with(dev, |d| d.up).unwrap_or(false) {
        let _ = net::close(dev);
    }
    for s in net::unregister(dev) {
        skb::free(s);
    }
}

pub extern "C" fn netif_start_queue(dev: *mut NetDevice) {
    net::with(dev, |d| d.stopped = false);
}

pub extern "C" fn netif_stop_queue(dev: *mut NetDevice) {
    net::with(dev, |d| d.stopped = true);
}

pub extern "C" fn netif_wake_queue(dev: *mut NetDevice) {
    net::with(dev, |d| d.stopped = false);
}

pub extern "C" fn netif_queue_stopped(dev: *const NetDevice) -> bool {
    net::with(dev, |d| d.stopped).unwrap_or(true)
}

pub extern "C" fn netif_carrier_on(dev: *mut NetDevice) {
    net::with(dev, |d| d.carrier = true);
}

pub extern "C" fn netif_carrier_off(dev: *mut NetDevice) {
    net::with(dev, |d| d.carrier = false);
}

pub extern "C" fn netif_carrier_ok(dev: *const NetDevice) -> bool {
    net::with(dev, |d| d.carrier).unwrap_or(false)
}

pub extern "C" fn netif_rx(s: *mut SkBuff) -> i32 {
    if !skb::is_live(s) {
        crate::warn!("netif_rx({s:p}): not a live skb");
        crate::domain::abort(
            "api: netif_rx of a pointer that is not a live skb",
            s as u64,
        );
        return 1;
    }
    if net::receive(s) {
        skb::hand_to(s, None);
        0
    } else {
        skb::free(s);
        1
    }
}

pub extern "C" fn netdev_alloc_skb(dev: *mut NetDevice, length: u32) -> *mut SkBuff {
    skb::alloc(dev, length)
}

pub extern "C" fn dev_kfree_skb_any(s: *mut SkBuff) {
    if !s.is_null() && !skb::free(s) {
        crate::domain::abort(
            "api: bad free (dev_kfree_skb_any of a pointer that is not a live skb)",
            s as u64,
        );
    }
}

pub extern "C" fn skb_put(s: *mut SkBuff, len: u32) -> *mut u8 {
    if !skb::is_live(s) {
        return core::ptr::null_mut();
    }
    // SAFETY: a live skb.
    let s = unsafe { &mut *s };
    let used = (s.data as u64 - s.head as u64) as u32 + s.len;
    if used.checked_add(len).is_none_or(|end| end > s.size) {
        crate::warn!(
            "skb_put: {len} bytes past the end of a {}-byte buffer",
            s.size
        );
        return core::ptr::null_mut();
    }
    // SAFETY: within the buffer, checked above.
    let tail = unsafe { s.data.add(s.len as usize) };
    s.len += len;
    tail
}

pub extern "C" fn skb_reserve(s: *mut SkBuff, len: i32) {
    if !skb::is_live(s) {
        return;
    }
    // SAFETY: a live skb.
    let s = unsafe { &mut *s };
    let Ok(len) = u32::try_from(len) else { return };
    if s.len == 0 && (s.data as u64 - s.head as u64) as u32 + len <= s.size {
        // SAFETY: within the buffer, checked above.
        s.data = unsafe { s.data.add(len as usize) };
    }
}
