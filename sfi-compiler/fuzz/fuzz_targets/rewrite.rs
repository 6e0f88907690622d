//! Any bytes through `nooks_sfi_compiler::rewrite`, under `none` or `sfi`
//! (by the input's length, so both see every kind of input): an error is
//! fine, a panic is a bug. Seed it with real objects: `fuzz/seed.sh` builds
//! the driver objects and the differential corpus into
//! `fuzz/corpus/rewrite/`. The crate has no unsafe code, so the run needs no
//! sanitizer (`-s none`), which makes it several times faster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nooks_sfi_compiler::{Isolation, Options, rewrite};

fuzz_target!(|data: &[u8]| {
    let isolation = if data.len() % 2 == 0 {
        Isolation::None
    } else {
        Isolation::Sfi
    };
    let opts = Options {
        isolation,
        ..Options::default()
    };
    let _ = rewrite(data, &opts);
});
