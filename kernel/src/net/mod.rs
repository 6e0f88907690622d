//! The network layer, just big enough: a registry of network devices with
//! their queue and carrier state and a receive queue each, and the skb pool.
//!
//! The kernel never trusts fields of a `net_device` for its own bookkeeping:
//! devices are looked up by pointer in the registry, and the state the stack
//! relies on (queue stopped, carrier, received frames, the driver's
//! operations — copied and checked at registration, as Nooks' wrappers
//! copied ops tables) lives here.

pub mod skb;

use crate::domain::Entry;
use crate::driver_api::abi::{NETDEV_TX_OK, NetDevice, SkBuff};
use crate::sync::IrqMutex;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// A device's operations, each a checked entry of the registering domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ops {
    /// `ndo_open`.
    pub open: Option<Entry>,
    /// `ndo_stop`.
    pub stop: Option<Entry>,
    /// `ndo_start_xmit`.
    pub start_xmit: Option<Entry>,
    /// `ndo_set_mac_address`.
    pub set_mac_address: Option<Entry>,
    /// `ndo_change_mtu`.
    pub change_mtu: Option<Entry>,
    /// `ndo_get_stats`.
    pub get_stats: Option<Entry>,
    /// `ndo_tx_timeout`.
    pub tx_timeout: Option<Entry>,
}

/// A registered network device.
pub struct Device {
    /// Its operations, as checked when it registered.
    pub ops: Ops,
    /// The driver's `net_device`.
    pub dev: *mut NetDevice,
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// The transmit queue is stopped (the driver's ring is full).
    pub stopped: bool,
    /// Link is up.
    pub carrier: bool,
    /// Opened with `ndo_open`.
    pub up: bool,
    /// Frames received and not yet consumed.
    pub rx: VecDeque<*mut SkBuff>,
    /// The protection domain of the driver that registered it.
    pub domain: Option<usize>,
}

/// What the upper layers configured on a device: restored on the fresh
/// instance after a recovery, so they keep the same interface.
#[derive(Debug, Clone)]
pub struct Config {
    /// Its name (kept across the reload).
    pub name: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// Interface flags (promiscuity and the like; recorded and written back:
    /// the driver API has no rx-mode operation for a driver to act on them).
    pub flags: u32,
    /// Whether it was open.
    pub up: bool,
}

// SAFETY: single CPU; the pointers are only used under the registry lock or
// by the driver that owns them.
unsafe impl Send for Device {}

static DEVICES: IrqMutex<Vec<Device>> = IrqMutex::new(Vec::new());
static NEXT_INDEX: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
/// Names held for devices being recovered: the next registrations take them.
static RESERVED: IrqMutex<VecDeque<String>> = IrqMutex::new(VecDeque::new());
/// Bumped whenever a device comes or goes: holders of device pointers look
/// them up again when it changes.
static GENERATION: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The registry's generation (see [`GENERATION`]).
pub fn generation() -> u64 {
    GENERATION.load(core::sync::atomic::Ordering::SeqCst)
}

/// Gives up names held for a recovery that did not happen.
pub fn release_names(names: &[String]) {
    RESERVED.lock().retain(|n| !names.contains(n));
}

/// Applies a recovered device's configuration to the fresh instance's
/// `net_device`, through the driver's own operations.
pub fn restore(dev: *mut NetDevice, c: &Config) -> Result<(), NetError> {
    // SAFETY: a registered device's net_device is alive.
    let (mac, mtu) = unsafe { ((*dev).dev_addr, (*dev).mtu) };
    if mac != c.mac {
        let set = op(dev, |o| o.set_mac_address).ok_or(NetError::NotSupported)?;
        let addr = c.mac;
        let r = crate::domain::call(set, &[dev as u64, addr.as_ptr() as u64])
            .map_err(|_| NetError::DomainFailed)? as i32;
        if r != 0 {
            return Err(NetError::Driver(r));
        }
    }
    if mtu != c.mtu {
        let change = op(dev, |o| o.change_mtu).ok_or(NetError::NotSupported)?;
        let r = crate::domain::call(change, &[dev as u64, u64::from(c.mtu)])
            .map_err(|_| NetError::DomainFailed)? as i32;
        if r != 0 {
            return Err(NetError::Driver(r));
        }
    }
    // SAFETY: as above; flags are the upper layers' field.
    unsafe { (*dev).flags = c.flags };
    if c.up {
        open(dev)?;
    }
    Ok(())
}

/// Detaches every device domain `id` registered (its driver failed): returns
/// their configuration, frees their undelivered frames, and holds their names
/// for the fresh instance's registrations.
pub fn detach_domain(id: usize) -> Vec<Config> {
    let gone: Vec<Device> = {
        let mut d = DEVICES.lock();
        let mut gone = Vec::new();
        let mut i = 0;
        while i < d.len() {
            if d[i].domain == Some(id) {
                gone.push(d.remove(i));
            } else {
                i += 1;
            }
        }
        gone
    };
    if !gone.is_empty() {
        // A domain without net devices (a driver of another kind) failing
        // changes nothing for the holders of device pointers.
        GENERATION.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    }
    let mut configs = Vec::new();
    for g in gone {
        // SAFETY: the failed driver's net_device lives on in its abandoned window.
        let (mac, mtu, flags) = unsafe { ((*g.dev).dev_addr, (*g.dev).mtu, (*g.dev).flags) };
        for s in g.rx {
            skb::free(s);
        }
        RESERVED.lock().push_back(g.name.clone());
        configs.push(Config {
            name: g.name,
            mac,
            mtu,
            flags,
            up: g.up,
        });
    }
    configs
}

/// Why a network operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No such device.
    NoDevice,
    /// The driver lacks the operation.
    NotSupported,
    /// The driver returned an error code.
    Driver(i32),
    /// The transmit queue is stopped.
    Busy,
    /// The driver's protection domain failed.
    DomainFailed,
}

/// Registers a device with its checked operations; returns its name.
pub fn register(dev: *mut NetDevice, ops: Ops) -> String {
    let reserved = RESERVED.lock().pop_front();
    let name = reserved.unwrap_or_else(|| {
        alloc::format!(
            "eth{}",
            NEXT_INDEX.fetch_add(1, core::sync::atomic::Ordering::SeqCst)
        )
    });
    GENERATION.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    DEVICES.lock().push(Device {
        ops,
        dev,
        name: name.clone(),
        stopped: true,
        carrier: false,
        up: false,
        rx: VecDeque::new(),
        domain: crate::domain::current(),
    });
    name
}

/// Whether `dev` is registered.
pub fn is_registered(dev: *const NetDevice) -> bool {
    with(dev, |_| ()).is_some()
}

/// The domain that registered `dev`, if it is registered.
pub fn domain_of(dev: *const NetDevice) -> Option<Option<usize>> {
    with(dev, |d| d.domain)
}

/// Removes a device; returns its undelivered frames.
pub fn unregister(dev: *mut NetDevice) -> Vec<*mut SkBuff> {
    let mut d = DEVICES.lock();
    match d.iter().position(|x| x.dev == dev) {
        Some(i) => d.remove(i).rx.into_iter().collect(),
        None => Vec::new(),
    }
}

/// Runs `f` on the device registered for `dev`.
pub fn with<R>(dev: *const NetDevice, f: impl FnOnce(&mut Device) -> R) -> Option<R> {
    DEVICES
        .lock()
        .iter_mut()
        .find(|x| x.dev as *const _ == dev)
        .map(f)
}

/// The name of the device registered for `dev`.
pub fn name_of(dev: *const NetDevice) -> Option<String> {
    with(dev, |d| d.name.clone())
}

/// The device named `name`.
pub fn find(name: &str) -> Option<*mut NetDevice> {
    DEVICES
        .lock()
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.dev)
}

/// Names of the registered devices.
pub fn names() -> Vec<String> {
    DEVICES.lock().iter().map(|x| x.name.clone()).collect()
}

/// One of `dev`'s operations (`None` if it has no such operation or is not
/// registered), read from the kernel's copy under one lookup.
fn op(dev: *mut NetDevice, which: impl FnOnce(&Ops) -> Option<Entry>) -> Option<Entry> {
    with(dev, |d| which(&d.ops)).flatten()
}

/// Brings a device up (`ndo_open`).
pub fn open(dev: *mut NetDevice) -> Result<(), NetError> {
    with(dev, |_| ()).ok_or(NetError::NoDevice)?;
    let open = op(dev, |o| o.open).ok_or(NetError::NotSupported)?;
    // The driver's own ndo_open on its own device.
    let r = crate::domain::call(open, &[dev as u64]).map_err(|_| NetError::DomainFailed)? as i32;
    if r != 0 {
        return Err(NetError::Driver(r));
    }
    with(dev, |d| d.up = true);
    Ok(())
}

/// Takes a device down (`ndo_stop`), dropping its undelivered frames.
pub fn close(dev: *mut NetDevice) -> Result<(), NetError> {
    let stop = op(dev, |o| o.stop).ok_or(NetError::NotSupported)?;
    // The driver's own ndo_stop on its own device.
    let r = crate::domain::call(stop, &[dev as u64]).map_or(0, |r| r as i32);
    let dropped: Vec<*mut SkBuff> = with(dev, |d| {
        d.up = false;
        d.carrier = false;
        d.rx.drain(..).collect()
    })
    .unwrap_or_default();
    for s in dropped {
        skb::free(s);
    }
    if r != 0 {
        Err(NetError::Driver(r))
    } else {
        Ok(())
    }
}

/// Hands a frame to the driver (`ndo_start_xmit`). On `Busy` the caller keeps the skb.
pub fn transmit(dev: *mut NetDevice, skb: *mut SkBuff) -> Result<(), NetError> {
    let (stopped, xmit) = with(dev, |d| (d.stopped, d.ops.start_xmit)).ok_or(NetError::NoDevice)?;
    if stopped {
        return Err(NetError::Busy);
    }
    let xmit = xmit.ok_or(NetError::NotSupported)?;
    // The driver's ndo_start_xmit with a live skb it now holds, whose buffer
    // lies in its RAM (where its device can reach it).
    if !skb::rehome(skb, xmit.domain()) {
        return Err(NetError::Busy);
    }
    skb::hand_to(skb, Some(xmit.domain()));
    let r = crate::domain::call(xmit, &[skb as u64, dev as u64]);
    match r {
        Ok(r) if r as i32 == NETDEV_TX_OK => Ok(()),
        Ok(_) => {
            skb::hand_to(skb, None);
            Err(NetError::Busy)
        }
        // It never got the skb.
        Err(crate::domain::Failure::AlreadyFailed | crate::domain::Failure::TooDeep) => {
            skb::hand_to(skb, None);
            Err(NetError::DomainFailed)
        }
        // It may hold it: recovery reclaims it with the domain's other skbs.
        Err(crate::domain::Failure::Faulted) => Err(NetError::DomainFailed),
    }
}

/// Asks the driver for its statistics (`ndo_get_stats`): the lightest call
/// into a driver, which makes it the null crossing of the benchmarks.
pub fn get_stats(dev: *mut NetDevice) -> Result<u64, NetError> {
    let get = op(dev, |o| o.get_stats).ok_or(NetError::NotSupported)?;
    crate::domain::call(get, &[dev as u64]).map_err(|_| NetError::DomainFailed)
}

/// Tells the driver its transmitter timed out (`ndo_tx_timeout`): it resets
/// its transmit ring.
pub fn tx_timeout(dev: *mut NetDevice) -> Result<(), NetError> {
    let reset = op(dev, |o| o.tx_timeout).ok_or(NetError::NotSupported)?;
    crate::domain::call(reset, &[dev as u64, 0])
        .map(|_| ())
        .map_err(|_| NetError::DomainFailed)
}

/// Queues a received frame on `dev`, if `dev` is a device `domain`
/// registered (None: any device); false otherwise.
pub fn receive(skb: *mut SkBuff, dev: *mut NetDevice, domain: Option<usize>) -> bool {
    DEVICES
        .lock()
        .iter_mut()
        .find(|x| x.dev == dev && (domain.is_none() || x.domain == domain))
        .map(|d| d.rx.push_back(skb))
        .is_some()
}

/// Runs `f` on `dev` if `domain` registered it (None: any device): `Err`
/// with the registering domain when another one did, `Ok(None)` when no one
/// registered it.
pub fn with_domain<R>(
    dev: *const NetDevice,
    domain: Option<usize>,
    f: impl FnOnce(&mut Device) -> R,
) -> Result<Option<R>, Option<usize>> {
    match DEVICES.lock().iter_mut().find(|x| x.dev as *const _ == dev) {
        Some(d) if domain.is_none() || d.domain == domain => Ok(Some(f(d))),
        Some(d) => Err(d.domain),
        None => Ok(None),
    }
}

/// The mechanism of the domain driving `dev` (`none` for none).
pub fn mechanism_of(dev: *mut NetDevice) -> crate::domain::Mechanism {
    op(dev, |o| o.start_xmit).map_or(crate::domain::Mechanism::None, |e| {
        crate::domain::mechanism_of(e.domain())
    })
}

/// Takes the oldest received frame of a device.
pub fn next_received(dev: *mut NetDevice) -> Option<*mut SkBuff> {
    with(dev, |d| d.rx.pop_front()).flatten()
}

/// Whether the device's transmit queue is stopped.
pub fn stopped(dev: *mut NetDevice) -> bool {
    with(dev, |d| d.stopped).unwrap_or(true)
}

/// Whether the device's link is up.
pub fn carrier(dev: *mut NetDevice) -> bool {
    with(dev, |d| d.carrier).unwrap_or(false)
}
