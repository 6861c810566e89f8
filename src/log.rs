//! The one logger of every hpcs binary: lines `PROGRAM: LEVEL: message` on
//! stderr, one `write(2)` per line so concurrent threads never interleave and
//! a reader of the log file never sees half a line.
//!
//! The program name is set once at startup ([`init`]). Callers log file
//! names only where the module that calls says so; nothing logs keys or data.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

static PROGRAM: OnceLock<&'static str> = OnceLock::new();
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Warnings and errors: always shown.
pub const WARN: u8 = 0;
/// What the program is doing (-v).
pub const INFO: u8 = 1;
/// Details (-vv).
pub const DEBUG: u8 = 2;

/// Names the program in every line and sets the level (0 warnings, 1 info,
/// 2 debug). A second call changes only the level.
pub fn init(program: &'static str, verbosity: u8) {
    let _ = PROGRAM.set(program);
    set_verbosity(verbosity);
}

/// The program name given to [`init`] (`hpcs` before it is called).
pub fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("hpcs")
}

/// Sets the level for [`log`].
pub fn set_verbosity(v: u8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

/// True when [`log`] would print at `level`.
pub fn enabled(level: u8) -> bool {
    level <= VERBOSITY.load(Ordering::Relaxed)
}

/// The line [`log`] writes, without the newline.
pub fn line(level: u8, msg: std::fmt::Arguments<'_>) -> String {
    let tag = match level {
        WARN => "warning",
        INFO => "info",
        _ => "debug",
    };
    format!("{}: {tag}: {msg}", program())
}

/// Writes a log line to stderr if `level` is enabled.
pub fn log(level: u8, msg: std::fmt::Arguments<'_>) {
    if enabled(level) {
        let mut l = line(level, msg);
        l.push('\n');
        let _ = std::io::stderr().lock().write_all(l.as_bytes());
    }
}

/// `warn!("...")`: a warning line (always shown).
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::log($crate::log::WARN, format_args!($($t)*)) };
}

/// `info!("...")`: shown with -v.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::log($crate::log::INFO, format_args!($($t)*)) };
}

/// `debug!("...")`: shown with -vv.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::log($crate::log::DEBUG, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_shape() {
        super::init("hpcs-test", 0);
        assert_eq!(
            super::line(super::WARN, format_args!("x {}", 1)),
            "hpcs-test: warning: x 1"
        );
        assert!(super::enabled(super::WARN));
        assert!(!super::enabled(super::INFO));
    }
}
