//! Real objects from a real compiler: gcc builds `tests/c/*.c`, the loader loads
//! them into host memory, and the test calls the loaded code.

use nooks_loader::{Layout, LoadError, Object, Placement, Target, load};
use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

fn compile(name: &str, flags: &[&str]) -> Vec<u8> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out = std::env::temp_dir().join(format!(
        "nooks-loader-{}-{name}-{seq}.o",
        std::process::id()
    ));
    let status = Command::new("gcc")
        .args([
            "-c",
            "-O2",
            "-fno-pic",
            "-mno-red-zone",
            "-ffreestanding",
            "-fno-stack-protector",
            "-g",
        ])
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("gcc runs");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    bytes
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn host_add(a: i64, b: i64) -> i64 {
    a + b
}

extern "C" fn host_log(msg: *const c_char) {
    // SAFETY: the loaded code passes a NUL-terminated string from its rodata.
    let s = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push(s);
}

fn resolver(name: &str) -> Option<u64> {
    match name {
        "host_add" => Some(host_add as *const () as u64),
        "host_log" => Some(host_log as *const () as u64),
        _ => None,
    }
}

/// Memory below 2 GiB, RWX for the test's simplicity. The host functions the
/// object imports are more than 2 GiB away, so the executed objects use the
/// large code model (absolute 64-bit call targets).
struct LowMem {
    ptr: *mut u8,
    len: usize,
}

impl LowMem {
    fn new(len: usize) -> Self {
        // SAFETY: an anonymous private mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        LowMem {
            ptr: ptr.cast(),
            len,
        }
    }

    fn split(&mut self) -> [(&mut [u8], u64); 3] {
        let third = self.len / 3 & !0xfff;
        // SAFETY: the mapping is `len` bytes, split into disjoint thirds.
        let all = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) };
        let (a, rest) = all.split_at_mut(third);
        let (b, c) = rest.split_at_mut(third);
        let base = self.ptr as u64;
        [
            (a, base),
            (b, base + third as u64),
            (c, base + 2 * third as u64),
        ]
    }
}

impl Drop for LowMem {
    fn drop(&mut self) {
        // SAFETY: unmapping what new() mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[test]
fn loads_and_runs_a_gcc_object() {
    for opt in ["-O0", "-O2", "-Os"] {
        let bytes = compile("sample", &["-mcmodel=large", opt]);
        let object = Object::parse(&bytes).unwrap();
        assert_eq!(object.imports(), vec!["host_add", "host_log"]);
        let layout = Layout::of(&object);
        let mut mem = LowMem::new(3 << 20);
        let [(t, ta), (r, ra), (d, da)] = mem.split();
        let mut placement = Placement {
            text: Target { bytes: t, addr: ta },
            rodata: Target { bytes: r, addr: ra },
            data: Target { bytes: d, addr: da },
            runtime: Target {
                bytes: &mut [],
                addr: 0,
            },
        };
        let image = load(&object, &layout, &mut placement, &resolver).unwrap();
        let entry = image.symbol("entry").expect("entry is exported");
        assert!(
            image.symbol("twice").is_none(),
            "static functions are not global"
        );
        // SAFETY: the loaded, relocated `long entry(long)`.
        let entry: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(entry) };
        // sum_{i<64} i*3 = 6048; twice -> 12096; bump -> 42
        assert_eq!(entry(3), 12096 + 42, "{opt}");
        assert_eq!(entry(1), 2 * 2016 + 43, "{opt}");
        assert_eq!(
            LOG.lock().unwrap().last().map(String::as_str),
            Some("hello from a loaded object")
        );
    }
}

#[test]
fn kernel_code_model_relocates_into_the_top_2gib() {
    let bytes = compile("sample", &["-mcmodel=kernel"]);
    let object = Object::parse(&bytes).unwrap();
    let layout = Layout::of(&object);
    let (mut t, mut r, mut d) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let base = 0xffff_ffff_c000_0000u64;
    let mut placement = Placement {
        text: Target {
            bytes: &mut t,
            addr: base,
        },
        rodata: Target {
            bytes: &mut r,
            addr: base + 0x10_0000,
        },
        data: Target {
            bytes: &mut d,
            addr: base + 0x20_0000,
        },
        runtime: Target {
            bytes: &mut [],
            addr: 0,
        },
    };
    let kernel = |name: &str| resolver(name).map(|_| 0xffff_ffff_8010_0000u64);
    let image = load(&object, &layout, &mut placement, &kernel).unwrap();
    // The ops table holds function pointers: check them against the symbols.
    let table = image.symbol("table").unwrap();
    let off = (table - (base + 0x20_0000)) as usize;
    let bump = image.symbol("bump").unwrap();
    let second = u64::from_le_bytes(d[off + 8..off + 16].try_into().unwrap());
    assert_eq!(second, bump);
    // The same object placed in low memory overflows R_X86_64_32S: an error, not truncation.
    let (mut t, mut r, mut d) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut low = Placement {
        text: Target {
            bytes: &mut t,
            addr: 0x1_0000_0000,
        },
        rodata: Target {
            bytes: &mut r,
            addr: 0x1_0010_0000,
        },
        data: Target {
            bytes: &mut d,
            addr: 0x1_0020_0000,
        },
        runtime: Target {
            bytes: &mut [],
            addr: 0,
        },
    };
    let err = load(&object, &layout, &mut low, &kernel).unwrap_err();
    assert!(matches!(err, LoadError::RelocationOverflow { .. }), "{err}");
}

#[test]
fn a_missing_import_is_named() {
    let bytes = compile("sample", &["-mcmodel=kernel"]);
    let object = Object::parse(&bytes).unwrap();
    let layout = Layout::of(&object);
    let (mut t, mut r, mut d) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut placement = Placement {
        text: Target {
            bytes: &mut t,
            addr: 0xffff_ffff_c000_0000,
        },
        rodata: Target {
            bytes: &mut r,
            addr: 0xffff_ffff_c010_0000,
        },
        data: Target {
            bytes: &mut d,
            addr: 0xffff_ffff_c020_0000,
        },
        runtime: Target {
            bytes: &mut [],
            addr: 0,
        },
    };
    let only_add = |name: &str| (name == "host_add").then_some(0xffff_ffff_8010_0000u64);
    let err = load(&object, &layout, &mut placement, &only_add).unwrap_err();
    assert_eq!(err.to_string(), "unresolved import `host_log`");
}

#[test]
fn malformed_objects_are_errors_never_panics() {
    let bytes = compile("sample", &["-mcmodel=kernel", "-O2"]);
    assert!(matches!(
        Object::parse(b"\x7fELF"),
        Err(LoadError::Malformed(_))
    ));
    let mut exec = bytes.clone();
    exec[16] = 2; // ET_EXEC
    assert_eq!(
        Object::parse(&exec).unwrap_err(),
        LoadError::NotRelocatable(2)
    );
    let mut arm = bytes.clone();
    arm[18] = 183; // EM_AARCH64
    assert_eq!(
        Object::parse(&arm).unwrap_err(),
        LoadError::WrongMachine(183)
    );
    // Every truncation, and a byte flip at every offset of the first 4 KiB.
    let try_all = |b: &[u8]| {
        if let Ok(o) = Object::parse(b) {
            let layout = Layout::of(&o);
            let n = |a: nooks_loader::AreaSize| (a.size as usize).min(1 << 20);
            let (mut t, mut r, mut d) = (
                vec![0u8; n(layout.text)],
                vec![0u8; n(layout.rodata)],
                vec![0u8; n(layout.data)],
            );
            let mut p = Placement {
                text: Target {
                    bytes: &mut t,
                    addr: 0xffff_ffff_c000_0000,
                },
                rodata: Target {
                    bytes: &mut r,
                    addr: 0xffff_ffff_c100_0000,
                },
                data: Target {
                    bytes: &mut d,
                    addr: 0xffff_ffff_c200_0000,
                },
                runtime: Target {
                    bytes: &mut [],
                    addr: 0,
                },
            };
            let _ = load(&o, &layout, &mut p, &|_: &str| Some(0xffff_ffff_8010_0000));
        }
    };
    for len in 0..bytes.len() {
        try_all(&bytes[..len]);
    }
    for i in 0..bytes.len().min(4096) {
        for x in [0x01u8, 0x80, 0xff] {
            let mut m = bytes.clone();
            m[i] ^= x;
            try_all(&m);
        }
    }
}

/// The window layout the kernel uses at `base`: text, rodata at 2 MiB, runtime
/// state at 3 MiB, data at 4 MiB; `runtime` bytes given for the state.
fn window<'m>(base: u64, [t, r, d]: &'m mut [Vec<u8>; 3], runtime: &'m mut [u8]) -> Placement<'m> {
    let [t, r, d] = [t, r, d].map(|v| v.as_mut_slice());
    Placement {
        text: Target {
            bytes: t,
            addr: base,
        },
        rodata: Target {
            bytes: r,
            addr: base + 0x20_0000,
        },
        runtime: Target {
            bytes: runtime,
            addr: base + 0x30_0000,
        },
        data: Target {
            bytes: d,
            addr: base + 0x40_0000,
        },
    }
}

#[test]
fn the_runtime_state_gets_an_area_of_its_own() {
    let bytes = compile("runtime", &["-mcmodel=kernel"]);
    let object = Object::parse(&bytes).unwrap();
    let layout = Layout::of(&object);
    assert_eq!(layout.runtime.size, 64, "{layout:?}");
    assert!(layout.data.size >= 8 && layout.data.size < 64, "{layout:?}");
    let base = 0xffff_ffff_c000_0000u64;
    let mut areas = [vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]];
    let mut s = vec![0u8; 4096];
    let image = load(
        &object,
        &layout,
        &mut window(base, &mut areas, &mut s),
        &|_: &str| None,
    )
    .unwrap();
    assert_eq!(image.symbol("state"), Some(base + 0x30_0000));
    assert_eq!(image.symbol("counter"), Some(base + 0x40_0000));
    assert_eq!(&s[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    // No room for it: a clear error, nothing loaded.
    let mut small = window(base, &mut areas, &mut []);
    let err = load(&object, &layout, &mut small, &|_: &str| None).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::PlacementTooSmall {
                area: nooks_loader::Area::Runtime
            }
        ),
        "{err}"
    );
}

#[test]
fn a_weak_absolute_symbol_is_a_default_the_resolver_overrides() {
    let bytes = compile("weak", &["-mcmodel=kernel", "-fno-toplevel-reorder"]);
    let object = Object::parse(&bytes).unwrap();
    let layout = Layout::of(&object);
    let mut areas = [vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]];
    let base = 0xffff_ffff_c000_0000u64;
    let resolver = |name: &str| (name == "overridden").then_some(0x5000);
    let image = load(
        &object,
        &layout,
        &mut window(base, &mut areas, &mut []),
        &resolver,
    )
    .unwrap();
    assert_eq!(image.symbol("overridden"), Some(0x5000));
    assert_eq!(image.symbol("kept"), Some(0x40));
    let at = (image.symbol("refs").unwrap() - (base + 0x40_0000)) as usize;
    let d = &areas[2];
    let word = |i: usize| u64::from_le_bytes(d[at + 8 * i..at + 8 * i + 8].try_into().unwrap());
    assert_eq!((word(0), word(1)), (0x5008, 0x40));
}
