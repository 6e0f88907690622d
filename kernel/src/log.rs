//! A small logging facility: `[   1.234] LEVEL module: message` lines on the
//! serial console, timestamped from the timer tick.

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something is wrong.
    Error,
    /// Something is unusual.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for debugging.
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

/// Writes one log line (use the macros).
pub fn log(level: Level, module: &str, args: core::fmt::Arguments<'_>) {
    let ms = crate::timer::millis();
    let module = module.strip_prefix("nooks_kernel::").unwrap_or(module);
    crate::println!(
        "[{:5}.{:03}] {} {}: {}",
        ms / 1000,
        ms % 1000,
        level.name(),
        module,
        args
    );
}

/// Logs at info level.
#[macro_export]
macro_rules! info { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Info, module_path!(), format_args!($($a)*)) } }
/// Logs at warn level.
#[macro_export]
macro_rules! warn { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Warn, module_path!(), format_args!($($a)*)) } }
/// Logs at error level.
#[macro_export]
macro_rules! error { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Error, module_path!(), format_args!($($a)*)) } }
/// Logs at debug level.
#[macro_export]
macro_rules! debug { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Debug, module_path!(), format_args!($($a)*)) } }
