//! The nooks kernel.
//!
//! A small x86-64 kernel whose job is to run device drivers — ordinary C driver
//! objects loaded at boot — inside lightweight protection domains, and to keep
//! running when they fail. Design principles:
//!
//! - **Booted by QEMU through PVH**: `qemu-system-x86_64 -kernel` enters the
//!   32-bit stub in [`boot`]; the command line and one boot module (an `ar`
//!   archive of driver objects and the kernel's symbol map) come with it.
//! - **Every fault is an event, not a reset**: exceptions are reported with
//!   vector, error code, RIP, CR2 and symbol; [`fault::catch`] turns them into
//!   values, which is what protection-domain containment is built on.
//! - **The kernel owns its page tables**: a direct map, the image with real
//!   section permissions (W^X), CR0.WP and EFER.NXE; no global pages, so
//!   per-domain address spaces can differ.
//! - **Interrupts never touch the interrupted stack**: every vector runs on an
//!   IST stack and saves the SSE state, because the prebuilt `core` uses SSE and
//!   the red zone.
//! - **The host reads what the kernel says**: cargo-style ktest lines and
//!   `{"nooks":...}` JSON records on COM1, verdicts through `isa-debug-exit`
//!   (see docs/ARCHITECTURE.md).
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod acpi;
pub mod arch;
pub mod bench;
pub mod boot;
pub mod bootinfo;
pub mod cmdline;
pub mod domain;
pub mod driver;
pub mod driver_api;
pub mod fault;
pub mod integrity;
pub mod iommu;
pub mod irq;
pub mod ktest;
pub mod log;
pub mod memory;
pub mod modules;
pub mod net;
pub mod pci;
pub mod recovery;
pub mod rt;
pub mod serial;
pub mod symbols;
pub mod sync;
pub mod timer;
pub mod watchdog;
pub mod workload;

mod tests;

use crate::sync::IrqMutex;

static BOOT_INFO: IrqMutex<Option<bootinfo::BootInfo>> = IrqMutex::new(None);

/// What QEMU handed over at boot.
pub fn boot_info() -> bootinfo::BootInfo {
    BOOT_INFO.lock().expect("set at boot")
}

/// The kernel command line.
pub fn cmdline() -> &'static str {
    boot_info().cmdline()
}

/// Entered from the boot stub on the kernel stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(start_info: u32) -> ! {
    serial::init();
    println!("\nnooks kernel booting");
    arch::gdt::init();
    arch::idt::init();
    arch::pic::init();
    // SAFETY: %ebx from QEMU's PVH entry; the first GiB is identity-mapped.
    let boot = unsafe { bootinfo::parse(u64::from(start_info)) }
        .unwrap_or_else(|e| panic!("bad PVH start info: {e:?}"));
    memory::init(&boot);
    let pcid = cmdline::get(boot.cmdline(), "pcid") != Some("off") && arch::enable_pcid();
    let pks = domain::pks::init();
    *BOOT_INFO.lock() = Some(boot);
    timer::init();
    arch::interrupts_enable();
    timer::calibrate_tsc();
    let nmi =
        cmdline::get(boot.cmdline(), "nmi_watchdog") != Some("off") && watchdog::enable_nmi_tick();
    let (frames_total, frames_used) = memory::frames::stats();
    info!(
        "memory: {} MiB usable, {} KiB in use; TSC {} MHz",
        frames_total * 4 / 1024,
        frames_used * 4,
        timer::tsc_hz() / 1_000_000
    );
    info!(
        "watchdog: {}",
        if nmi {
            "timer tick and NMI tick (catches loops with interrupts off)"
        } else {
            "timer tick only"
        }
    );
    info!(
        "PCIDs: {}",
        if pcid {
            "on (CR3 loads keep the TLB)"
        } else {
            "off (every CR3 load flushes the TLB)"
        }
    );
    info!(
        "PKS: {}",
        if pks {
            "on (pks domains: keys 1-14, landing pads key 15)"
        } else {
            "not offered by this CPU (no pks domains)"
        }
    );
    let modules = modules::init(&boot);
    integrity::snapshot();
    let functions = pci::enumerate();
    pci::log_all(&functions);
    iommu::init(boot.cmdline(), boot.rsdp);

    let cmdline = boot.cmdline();
    info!("command line: {cmdline}");
    match cmdline::get(cmdline, "mode").unwrap_or("info") {
        "test" => {
            let ok = ktest::run(cmdline::get(cmdline, "filter"));
            arch::exit_qemu(ok)
        }
        "info" => {
            println!(
                "{{\"nooks\":\"info\",\"memory_mib\":{},\"pci_functions\":{},\"e1000\":{},\"modules\":{},\"tsc_mhz\":{}}}",
                frames_total * 4 / 1024,
                functions.len(),
                functions
                    .iter()
                    .filter(|f| f.vendor == 0x8086 && f.device == 0x100e)
                    .count(),
                modules.len(),
                timer::tsc_hz() / 1_000_000
            );
            arch::exit_qemu(true)
        }
        "net" => {
            run_net(cmdline, &modules);
            arch::exit_qemu(true)
        }
        "bench" => {
            let drivers = driver::load_all(&modules);
            recovery::poll();
            let frames = cmdline::get_u64(cmdline, "frames").unwrap_or(2000) as u32;
            match bring_up() {
                Some((tx, rx)) => bench::run(tx, rx, frames),
                None => error!("mode=bench needs eth0 and eth1 up"),
            }
            alive(drivers.len());
            arch::exit_qemu(true)
        }
        "panic" => panic!("deliberate panic (mode=panic)"),
        "fault" => {
            // An unexpected page fault outside any catch frame: must be reported.
            // SAFETY: deliberately invalid; the exception handler reports and panics.
            let v = unsafe { core::ptr::read_volatile(0xdead_0000 as *const u64) };
            panic!("read of an unmapped address returned {v}")
        }
        "hang" => loop {
            arch::wait_for_interrupt();
        },
        other => panic!("unknown mode={other}"),
    }
}

/// `mode=net`: load every driver object of the boot archive, then move frames
/// eth0 → eth1 if both exist.
fn run_net(cmdline: &str, modules: &[nooks_loader::archive::Member<'static>]) {
    let drivers = driver::load_all(modules);
    recovery::poll();
    info!(
        "{} driver(s) loaded; network devices: {:?}",
        drivers.len(),
        net::names()
    );
    let frames = cmdline::get_u64(cmdline, "frames").unwrap_or(10_000) as u32;
    let cfg = workload::Config {
        frames,
        min: cmdline::get_u64(cmdline, "min")
            .unwrap_or(64)
            .clamp(60, 1514) as u32,
        max: cmdline::get_u64(cmdline, "max")
            .unwrap_or(1514)
            .clamp(60, 1514) as u32,
        window: cmdline::get_u64(cmdline, "window")
            .unwrap_or(64)
            .clamp(1, 1024) as u32,
        stall_ms: 3000,
    };
    if frames > 0 && cfg.min <= cfg.max {
        if let Some((tx, rx)) = bring_up() {
            match workload::run(tx, rx, cfg) {
                Ok(report) => workload::print(tx, &cfg, &report),
                Err(e) => error!("workload failed: {e:?}"),
            }
        }
    }
    alive(drivers.len());
}

/// Opens eth0 and eth1 and waits (up to 2 s) for both links. A driver that
/// fails while opening is recovered and the open tried again.
fn bring_up() -> Option<(
    *mut driver_api::abi::NetDevice,
    *mut driver_api::abi::NetDevice,
)> {
    'attempt: for _ in 0..4 {
        recovery::poll();
        let (tx, rx) = (net::find("eth0")?, net::find("eth1")?);
        for dev in [tx, rx] {
            if net::with(dev, |d| d.up) == Some(true) {
                continue;
            }
            match net::open(dev) {
                Ok(()) => {}
                Err(net::NetError::DomainFailed) => continue 'attempt,
                Err(e) => {
                    error!("opening a device failed: {e:?}");
                    return None;
                }
            }
        }
        let t0 = timer::millis();
        while !(net::carrier(tx) && net::carrier(rx)) && timer::millis() - t0 < 2000 {
            arch::wait_for_interrupt();
        }
        info!("link: eth0 {} eth1 {}", net::carrier(tx), net::carrier(rx));
        return Some((tx, rx));
    }
    error!("the network devices did not come up");
    None
}

/// Prints the `integrity` and `alive` records: the kernel survived, with
/// what it still holds.
fn alive(drivers: usize) {
    // DMA faults still in the unit's records are failures too.
    iommu::poll();
    recovery::poll();
    integrity::check();
    let (blocks, bytes) = driver_api::mem::live();
    println!(
        "{{\"nooks\":\"alive\",\"drivers\":{},\"netdevs\":{},\"heap_blocks\":{},\"heap_bytes\":{},\"skbs\":{}}}",
        drivers,
        net::names().len(),
        blocks,
        bytes,
        net::skb::live()
    );
    info!("kernel still up");
}
