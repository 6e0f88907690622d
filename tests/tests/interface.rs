//! The interface is checked: the drivers of `tests/drivers/interface/`, each
//! misusing one export, callback or kernel object of the driver API, are
//! loaded beside two healthy e1000 domains, under `sfi` (rewritten by
//! nooks-cc, with e1000 rewritten too) and under `mmu` (gcc's objects). Each
//! must be contained with the right cause — or, where the misuse is made
//! harmless by design (a callback changed in driver memory after it was
//! registered, a forged heap free list), run without a fault and say so —
//! while the e1000 domains move their frames, and the kernel data the drivers
//! aim at (the IDT, covered by the kernel's integrity check) is unchanged.

use nooks_bench::artifacts;
use nooks_bench::qemu::Verdict;
use nooks_sfi_compiler::{Options, rewrite};
use nooks_tests::{
    boot, fail_with_log, kernel_static, records_of, sfi, sfi_options, test_driver_with,
};
use std::time::Duration;

/// What a driver's misuse must come to under one mechanism.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The domain fails; its fault record's cause contains this.
    Fault(&'static str),
    /// It runs without a fault and prints this line.
    Runs(&'static str),
    /// nooks-cc refuses to rewrite it, with an error containing this.
    Refused(&'static str),
}
use Expect::{Fault, Refused, Runs};

/// A misbehaving driver and what happens to it under `sfi` and under `mmu`.
struct Case {
    driver: &'static str,
    sfi: Expect,
    mmu: Expect,
}

const fn both(driver: &'static str, e: Expect) -> Case {
    Case {
        driver,
        sfi: e,
        mmu: e,
    }
}

/// Pointer arguments: the kernel writes only the caller's own memory.
const POINTERS: &[Case] = &[
    both(
        "lock_init_kernel",
        Fault("api: spin_lock_init(lock): not the domain's memory"),
    ),
    both(
        "lock_kernel",
        Fault("api: spin_lock(lock): not the domain's memory"),
    ),
    both(
        "unlock_kernel",
        Fault("api: spin_unlock(lock): not the domain's memory"),
    ),
    both(
        "lock_irqsave_kernel",
        Fault("api: spin_lock(lock): not the domain's memory"),
    ),
    both(
        "lock_rodata",
        Fault("api: spin_lock(lock): not the domain's memory"),
    ),
    both("lock_misaligned", Fault("api: spin_lock(lock): misaligned")),
    both(
        "timer_setup_kernel",
        Fault("api: timer_setup(timer): not the domain's memory"),
    ),
    both(
        "mod_timer_kernel",
        Fault("api: mod_timer(timer): not a timer this domain set up"),
    ),
    both(
        "del_timer_foreign",
        Fault("api: del_timer_sync(timer): not a timer this domain set up"),
    ),
    both(
        "dma_handle_kernel",
        Fault("api: dma_alloc_coherent(handle): not the domain's memory"),
    ),
    both(
        "config_dword_kernel",
        Fault("api: pci_read_config_dword(val): not the domain's memory"),
    ),
    both(
        "config_word_kernel",
        Fault("api: pci_read_config_word(val): not the domain's memory"),
    ),
    both(
        "register_kernel_netdev",
        Fault("api: register_netdev(dev): not a net device of this domain"),
    ),
    // Under mmu the string functions run on the domain's own page tables.
    Case {
        driver: "memset_kernel",
        sfi: Fault("api: memset(dest): not the domain's memory"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "memcpy_kernel",
        sfi: Fault("api: memcpy(dest): not the domain's memory"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "memmove_kernel",
        sfi: Fault("api: memmove(dest): not the domain's memory"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    both(
        "skb_put_forged",
        Fault("api: skb_put(skb): not an skb this domain holds"),
    ),
    both(
        "netif_rx_bad_data",
        Fault("api: netif_rx(skb): skb->data and skb->len leave the buffer"),
    ),
    both(
        "netif_rx_bad_len",
        Fault("api: netif_rx(skb): skb->data and skb->len leave the buffer"),
    ),
];

/// Callbacks (checked entries of the registering domain, kept by the
/// kernel) and objects a domain does not own.
const CALLBACKS: &[Case] = &[
    both(
        "irq_kernel_handler",
        Fault("api: request_irq(handler): not code of the registering domain"),
    ),
    both(
        "irq_mid_function",
        Fault("api: request_irq(handler): not the start of one of the domain's functions"),
    ),
    both(
        "timer_kernel_callback",
        Fault("api: timer_setup(function): not code of the registering domain"),
    ),
    both(
        "timer_mid_function",
        Fault("api: timer_setup(function): not the start of one of the domain's functions"),
    ),
    both(
        "probe_kernel",
        Fault("api: pci_register_driver(probe): not code of the registering domain"),
    ),
    both(
        "ndo_kernel",
        Fault("api: register_netdev(netdev_ops->ndo_open): not code of the registering domain"),
    ),
    both(
        "ndo_mid_function",
        Fault(
            "api: register_netdev(netdev_ops->ndo_start_xmit): not the start of one of the domain's functions",
        ),
    ),
    both(
        "timer_changed",
        Runs("timer_changed: the registered callback ran"),
    ),
    both(
        "remove_changed",
        Runs("remove_changed: the registered remove ran"),
    ),
    // Under mmu another domain's window is absent: finding its device faults.
    Case {
        driver: "unregister_foreign",
        sfi: Fault("api: unregister_netdev(dev): a net device of another domain"),
        mmu: Fault("mmu: load from an unmapped page"),
    },
    Case {
        driver: "carrier_off_foreign",
        sfi: Fault("api: netif_stop_queue(dev): a net device of another domain"),
        mmu: Fault("mmu: load from an unmapped page"),
    },
    both(
        "free_irq_foreign",
        Fault("api: free_irq(dev_id): no handler of this domain registered with it on that line"),
    ),
    both(
        "skb_free_forged",
        Fault("api: dev_kfree_skb_any(skb): not an skb this domain holds"),
    ),
    both(
        "skb_double_free",
        Fault("api: dev_kfree_skb_any(skb): not an skb this domain holds"),
    ),
    both(
        "netif_rx_no_dev",
        Fault("api: netif_rx(skb->dev): not a registered net device of this domain"),
    ),
    both(
        "kfree_skb",
        Fault("api: kfree(ptr): bad free: a kernel object"),
    ),
    both(
        "kfree_kernel",
        Fault("api: kfree(ptr): bad free: not a live allocation"),
    ),
    both(
        "kfree_double",
        Fault("api: kfree(ptr): bad free: not a live allocation"),
    ),
    both(
        "free_netdev_kmalloc",
        Fault("api: free_netdev(dev): not a net device of this domain"),
    ),
];

/// Devices, DMA, ports, the heap's bookkeeping, and what the kernel spends.
const RESOURCES: &[Case] = &[
    both(
        "ioremap_foreign_bar",
        Fault("api: ioremap(phys): not inside a BAR of a device bound to this domain"),
    ),
    both(
        "ioremap_ram",
        Fault("api: ioremap(phys): not inside a BAR of a device bound to this domain"),
    ),
    both(
        "pci_forged_dev",
        Fault("api: pci_enable_device(pdev): not a pci_dev bound to this domain"),
    ),
    both(
        "config_write_bar",
        Fault(
            "api: pci_write_config_dword(where): the BARs and the expansion ROM address are the kernel's",
        ),
    ),
    both(
        "dma_map_kernel",
        Fault("api: dma_map_single(ptr): not the domain's memory"),
    ),
    both(
        "dma_free_forged",
        Fault("api: dma_free_coherent(cpu_addr): not a coherent buffer of this domain"),
    ),
    both(
        "iounmap_foreign",
        Fault("api: iounmap(addr): not a mapping of this domain"),
    ),
    both(
        "port_direct",
        Fault("api: nooks_port_out(port): outside the domain's policy"),
    ),
    both(
        "skb_reserve_forged",
        Fault("api: skb_reserve(skb): not an skb this domain holds"),
    ),
    both(
        "drvdata_forged",
        Fault("api: pci_set_drvdata(pdev): not a pci_dev bound to this domain"),
    ),
    both(
        "alloc_skb_foreign",
        Fault("api: netdev_alloc_skb(dev): not a net device of this domain"),
    ),
    both(
        "heap_forge",
        Runs("heap_forge: 64 of 64 blocks inside the domain"),
    ),
    both(
        "kmalloc_exhaust",
        Fault("api: kmalloc: limit of 16384 live heap blocks per domain reached"),
    ),
    both(
        "timer_exhaust",
        Fault("api: timer_setup: limit of 32 timers per domain reached"),
    ),
    both(
        "netdev_exhaust",
        Fault("api: register_netdev: limit of 8 net devices per domain reached"),
    ),
    both(
        "irq_exhaust",
        Fault("api: request_irq: limit of 4 interrupt handlers per domain reached"),
    ),
    both("timer_rearm", Runs("timer_rearm: 50 runs")),
    both(
        "timer_hog",
        Fault("timer: its callbacks took more than half a second of every second"),
    ),
];

/// Stacks, the direction flag, and stores of every kind into kernel data.
const STACKS: &[Case] = &[
    both("recursion", Fault("stack overflow")),
    Case {
        driver: "stack_pivot",
        sfi: Fault("stack pivot: the emulated stack pointer left the domain's stacks"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "direction_flag",
        sfi: Refused("unsupported instruction in init_module+0x4"),
        mmu: Runs("direction_flag: kzalloc zeroed its block"),
    },
    Case {
        driver: "pivot_indirect",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "ist_smash",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Runs("ist_smash: wrote the interrupt stack"),
    },
    Case {
        driver: "atomic_kernel",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "xchg_kernel",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "cmpxchg_kernel",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "rep_stos_kernel",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
    Case {
        driver: "setcc_kernel",
        sfi: Fault("sfi: store outside the domain"),
        mmu: Fault("mmu: store to a read-only page"),
    },
];

/// What a misuse comes to under `pks`, from what it comes to under `mmu`:
/// the same wrappers and exports, and where the page tables stop a store
/// (kernel memory mapped read-only, another window absent) the keys stop it
/// (key 0 write-disabled, another domain's key access-disabled).
fn pks_of(mmu: Expect) -> Expect {
    match mmu {
        Fault(cause) => Fault(match cause {
            "mmu: store to a read-only page" => "pks: store to kernel memory (key 0 is read-only)",
            "mmu: load from an unmapped page" => "pks: load from another domain's memory",
            other => match other.strip_prefix("mmu: ") {
                Some(rest) => String::leak(format!("pks: {rest}")),
                None => other,
            },
        }),
        e => e,
    }
}

/// The IDT, 2 KiB in: the kernel memory the drivers aim at. The kernel
/// checksums the descriptor tables at the end of every run.
fn target() -> String {
    format!(
        "-DKERNEL_TARGET={:#x}ull",
        kernel_static("4arch3idt3IDT") + 0x800
    )
}

fn build(driver: &str) -> Vec<u8> {
    test_driver_with(&format!("interface/{driver}"), &[target()])
}

const FRAMES: u64 = 2000;

/// Boots the group beside two e1000 domains under `mechanism` and checks
/// every case.
fn run(tag: &str, mechanism: &str, cases: &[Case]) {
    let e1000 = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let mut modules = vec![(
        "e1000.o".to_string(),
        if mechanism == "sfi" {
            sfi(&e1000, "e1000")
        } else {
            e1000
        },
    )];
    for c in cases {
        let object = build(c.driver);
        let object = match (mechanism, c.sfi) {
            ("sfi", Refused(why)) => {
                let err = rewrite(&object, &sfi_options())
                    .map(|_| ())
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(why), "{}: {err}", c.driver);
                continue;
            }
            ("sfi", _) => sfi(&object, c.driver),
            _ => object,
        };
        // The kernel loads members by name: the e1000 domains come first
        // (some drivers go looking for eth0 in domain 0's window).
        modules.push((format!("x_{}.o", c.driver), object));
    }
    let members: Vec<(&str, Vec<u8>)> = modules
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let out = boot(
        &format!("interface-{tag}-{mechanism}"),
        &format!(
            "mode=net frames={FRAMES} recover=off{}",
            if mechanism == "pks" {
                " isolation=pks"
            } else {
                ""
            }
        ),
        &members,
        Duration::from_secs(300),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive every misbehaving driver");
    }
    let integrity = records_of(&out.log, "integrity");
    if integrity.len() != 1 || integrity[0]["ok"] != true {
        fail_with_log(&out, &format!("kernel data changed: {integrity:?}"));
    }
    let w = records_of(&out.log, "workload");
    if w.len() != 1
        || w[0]["mechanism"] != mechanism
        || w[0]["received"] != FRAMES
        || w[0]["lost"] != 0
        || w[0]["bad"] != 0
    {
        fail_with_log(
            &out,
            &format!("the e1000 domains must move {FRAMES} frames intact: {w:?}"),
        );
    }
    let faults = records_of(&out.log, "fault");
    let fault_of = |driver: &str| {
        faults
            .iter()
            .filter(|f| {
                f["domain"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("x_{driver}.o#"))
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut wrong = Vec::new();
    for c in cases {
        let expect = match mechanism {
            "sfi" => c.sfi,
            "pks" => pks_of(c.mmu),
            _ => c.mmu,
        };
        let got = fault_of(c.driver);
        match expect {
            Fault(cause) => {
                if got.len() != 1 || !got[0]["cause"].as_str().unwrap_or("").contains(cause) {
                    wrong.push(format!(
                        "{}: expected a fault `{cause}`, got {got:?}",
                        c.driver
                    ));
                } else if got[0]["mechanism"] != mechanism {
                    wrong.push(format!("{}: mechanism {}", c.driver, got[0]["mechanism"]));
                }
            }
            Refused(_) => {}
            Runs(line) => {
                if !got.is_empty() || !out.log.contains(line) {
                    wrong.push(format!(
                        "{}: expected no fault and `{line}`, got {got:?}",
                        c.driver
                    ));
                }
            }
        }
    }
    for f in &faults {
        if f["domain"].as_str().unwrap_or("").starts_with("e1000") {
            wrong.push(format!("an e1000 domain failed: {f}"));
        }
    }
    if !wrong.is_empty() {
        fail_with_log(&out, &wrong.join("\n"));
    }
}

#[test]
fn pointer_arguments_are_checked_under_sfi() {
    run("pointers", "sfi", POINTERS);
}

#[test]
fn pointer_arguments_are_checked_under_mmu() {
    run("pointers", "mmu", POINTERS);
}

#[test]
fn pointer_arguments_are_checked_under_pks() {
    run("pointers", "pks", POINTERS);
}

#[test]
fn callbacks_and_objects_are_checked_under_sfi() {
    run("callbacks", "sfi", CALLBACKS);
}

#[test]
fn callbacks_and_objects_are_checked_under_mmu() {
    run("callbacks", "mmu", CALLBACKS);
}

#[test]
fn callbacks_and_objects_are_checked_under_pks() {
    run("callbacks", "pks", CALLBACKS);
}

#[test]
fn devices_and_resources_are_checked_under_sfi() {
    run("resources", "sfi", RESOURCES);
}

#[test]
fn devices_and_resources_are_checked_under_mmu() {
    run("resources", "mmu", RESOURCES);
}

#[test]
fn devices_and_resources_are_checked_under_pks() {
    run("resources", "pks", RESOURCES);
}

#[test]
fn stacks_and_stores_are_contained_under_sfi() {
    run("stacks", "sfi", STACKS);
}

#[test]
fn stacks_and_stores_are_contained_under_mmu() {
    run("stacks", "mmu", STACKS);
}

#[test]
fn stacks_and_stores_are_contained_under_pks() {
    run("stacks", "pks", STACKS);
}

/// A driver's policy file, parsed.
fn policy(driver: &str, text: Option<&str>) -> nooks_policy::file::Policy {
    let text = text.map_or_else(
        || {
            std::fs::read_to_string(
                artifacts::repo_root().join(format!("tests/drivers/interface/{driver}.policy")),
            )
            .unwrap()
        },
        String::from,
    );
    nooks_policy::file::parse(&text).unwrap()
}

#[test]
fn policies_are_enforced_by_nooks_cc_and_by_the_kernel() {
    // nooks-cc refuses an import the policy does not allow.
    let object = build("policy_import");
    let with = |p| Options {
        policy: p,
        ..sfi_options()
    };
    let err = rewrite(&object, &with(policy("policy_import", None)))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy `policy_import` does not allow importing kfree"),
        "{err}"
    );
    // An entry the policy names must be a function of the object.
    let err = rewrite(
        &object,
        &with(policy("x", Some("driver x\nimport *\nentry nowhere\n"))),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("names entry `nowhere`, which is not a function"),
        "{err}"
    );
    // The kernel checks again what `.nooks` says the policy allows: an
    // object whose imports exceed it is refused at load.
    let mut lying = rewrite(
        &object,
        &with(policy(
            "x",
            Some("driver policy_import\nimport printk kfree\n"),
        )),
    )
    .unwrap()
    .object;
    let at = lying
        .windows(27)
        .position(|w| w == b"policy-imports printk kfree")
        .expect("the policy's imports in .nooks");
    lying[at + 26] = b'X';
    let entry = rewrite(&build("policy_entry"), &with(policy("policy_entry", None)))
        .unwrap_or_else(|e| panic!("nooks-cc policy_entry: {e}"))
        .object;
    let e1000 = std::fs::read(artifacts::build_driver("e1000").unwrap()).unwrap();
    let modules = [
        ("e1000.o", sfi(&e1000, "e1000")),
        ("x_policy_entry.o", entry),
        ("x_policy_import.o", lying),
    ];
    let out = boot(
        "interface-policy",
        &format!("mode=net frames={FRAMES} recover=off"),
        &modules,
        Duration::from_secs(300),
    );
    if out.verdict != Verdict::Success || records_of(&out.log, "alive").len() != 1 {
        fail_with_log(&out, "the kernel must survive");
    }
    let loads = records_of(&out.log, "load");
    let import = loads.iter().find(|l| l["module"] == "x_policy_import.o");
    if !import.is_some_and(|l| {
        l["ok"] == false
            && l["error"]
                .as_str()
                .unwrap_or("")
                .contains("imports functions its policy does not allow: kfree")
    }) {
        fail_with_log(
            &out,
            &format!("the loader must refuse the import: {import:?}"),
        );
    }
    let faults = records_of(&out.log, "fault");
    let entry = faults.iter().find(|f| {
        f["domain"]
            .as_str()
            .unwrap_or("")
            .starts_with("x_policy_entry")
    });
    if !entry.is_some_and(|f| {
        f["cause"]
            .as_str()
            .unwrap_or("")
            .contains("api: timer_setup(function): not an entry point the domain's policy declares")
    }) || !out
        .log
        .contains("policy_entry: the declared entry was accepted")
    {
        fail_with_log(
            &out,
            &format!("the undeclared entry must be refused: {entry:?}"),
        );
    }
}
