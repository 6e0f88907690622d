//! In-kernel tests, in the spirit of Asterinas' `#[ktest]`: a test is a function
//! registered with [`ktest!`](crate::ktest) into the `.ktest` link section; in
//! `mode=test` the kernel runs them all (or those matching `filter=`), each
//! under `fault::catch` so an unexpected fault fails that test, not the run,
//! and prints cargo-style lines the host runner reads.

use alloc::string::String;

/// A registered test.
#[repr(C)]
pub struct KTest {
    /// Its name (unique).
    pub name: &'static str,
    /// Its body: `Err(why)` fails it.
    pub run: fn() -> Result<(), String>,
}

/// Defines and registers an in-kernel test.
#[macro_export]
macro_rules! ktest {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        fn $name() -> Result<(), alloc::string::String> $body
        const _: () = {
            #[used]
            #[unsafe(link_section = ".ktest")]
            static TEST: $crate::ktest::KTest = $crate::ktest::KTest { name: stringify!($name), run: $name };
        };
    };
}

/// Fails the enclosing ktest with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! kassert {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($msg)*));
        }
    };
}

unsafe extern "C" {
    static __ktest_start: u8;
    static __ktest_end: u8;
}

fn all() -> &'static [KTest] {
    // SAFETY: the linker script gathers every `.ktest` static, each a KTest,
    // contiguously between the two symbols.
    unsafe {
        let start = (&raw const __ktest_start).cast::<KTest>();
        let end = (&raw const __ktest_end).cast::<KTest>();
        let n = (end as usize - start as usize) / core::mem::size_of::<KTest>();
        core::slice::from_raw_parts(start, n)
    }
}

/// Runs the tests whose name contains `filter`; returns whether all passed.
pub fn run(filter: Option<&str>) -> bool {
    let tests: alloc::vec::Vec<&KTest> = all()
        .iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    crate::println!("\nrunning {} tests", tests.len());
    let (mut passed, mut failed) = (0, 0);
    for t in tests {
        let outcome = crate::fault::catch(t.run);
        crate::watchdog::disarm();
        match outcome {
            Ok(Ok(())) => {
                passed += 1;
                crate::println!("test {} ... ok", t.name);
            }
            Ok(Err(why)) => {
                failed += 1;
                crate::println!("test {} ... FAILED\n    {}", t.name, why);
            }
            Err(fault) => {
                failed += 1;
                crate::println!(
                    "test {} ... FAILED\n    unexpected fault: {} at {}",
                    t.name,
                    fault,
                    crate::symbols::Symbolized(fault.rip)
                );
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    crate::println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out"
    );
    failed == 0
}
