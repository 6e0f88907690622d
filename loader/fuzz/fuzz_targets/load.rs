//! Parses, lays out and loads arbitrary bytes: every input must end in an
//! image or a `LoadError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nooks_loader::{Layout, Object, Placement, Target, archive, load};

fuzz_target!(|data: &[u8]| {
    let _ = archive::members(data);
    let Ok(object) = Object::parse(data) else { return };
    let _ = object.imports();
    let layout = Layout::of(&object);
    let cap = |n: u64| (n as usize).min(1 << 20);
    let mut t = vec![0u8; cap(layout.text.size)];
    let mut r = vec![0u8; cap(layout.rodata.size)];
    let mut d = vec![0u8; cap(layout.data.size)];
    let mut s = vec![0u8; cap(layout.runtime.size)];
    let mut placement = Placement {
        text: Target { bytes: &mut t, addr: 0xffff_ffff_c000_0000 },
        rodata: Target { bytes: &mut r, addr: 0xffff_ffff_c100_0000 },
        data: Target { bytes: &mut d, addr: 0xffff_ffff_c200_0000 },
        runtime: Target { bytes: &mut s, addr: 0xffff_ffff_c300_0000 },
    };
    let resolver = |name: &str| (name.len() % 3 != 0).then_some(0xffff_ffff_8010_0000u64 + name.len() as u64);
    let _ = load(&object, &layout, &mut placement, &resolver);
});
