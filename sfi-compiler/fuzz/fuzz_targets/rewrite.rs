//! Any bytes through `nooks_sfi_compiler::rewrite`, under `none` and `sfi`:
//! an error is fine, a panic (or a sanitizer report) is a bug. Seed it with
//! real objects: `fuzz/seed.sh` builds the driver objects and the
//! differential corpus into `fuzz/corpus/rewrite/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nooks_sfi_compiler::{Isolation, Options, rewrite};

fuzz_target!(|data: &[u8]| {
    for isolation in [Isolation::None, Isolation::Sfi] {
        let opts = Options {
            isolation,
            ..Options::default()
        };
        let _ = rewrite(data, &opts);
    }
});
