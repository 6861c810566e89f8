//! The one logger of every hpcs binary: lines `PROGRAM: LEVEL: message` on
//! stderr, one `write(2)` per line so concurrent threads never interleave and
//! a reader of the log file never sees half a line.
//!
//! The program name is set once at startup ([`init`]). Nothing logs keys or
//! data; names, paths, symlink targets and sizes from an archive or a result
//! go through [`Name`], [`Also`] and [`Size`], which show them only after
//! [`set_names`] (`--log-names`): a failure names the archive, the entry
//! number and the chunk.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

static NAMES: AtomicBool = AtomicBool::new(false);

/// Lets log lines and reports show names, paths and sizes from archives and
/// results (`--log-names`). Off by default: stderr of a job is a file on
/// shared storage (`slurm-%j.out`), and a name there maps the encrypted index.
pub fn set_names(on: bool) {
    NAMES.store(on, Ordering::Relaxed);
}

/// True when `--log-names` was given.
pub fn names() -> bool {
    NAMES.load(Ordering::Relaxed)
}

/// What a log line says about a name from an archive or a result: the name
/// with `--log-names`, otherwise a placeholder.
pub struct Name<'a>(pub &'a [u8]);

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if names() {
            write!(f, "{:?}", String::from_utf8_lossy(self.0))
        } else {
            f.write_str("[name hidden; --log-names shows it]")
        }
    }
}

/// " (NAME)" with `--log-names`, nothing otherwise: appended to a line that
/// already says which entry or object it is about.
pub struct Also<'a>(pub &'a [u8]);

impl std::fmt::Display for Also<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if names() {
            write!(f, " ({:?})", String::from_utf8_lossy(self.0))
        } else {
            Ok(())
        }
    }
}

/// A size from an archive or a result: shown with `--log-names` only.
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if names() {
            write!(f, "{} bytes", self.0)
        } else {
            f.write_str("[size hidden]")
        }
    }
}

/// The help text of `--log-names`, the same in every binary.
pub const NAMES_HELP: &str = "Show file names, paths, symlink targets and sizes from archives and results in messages (stderr). Off by default: a job's stderr is a file on shared storage (slurm-%j.out) readable by admins and backups, and names there leak what the encryption hides. Give it only where stderr stays private (the secure device, or a terminal you own)";

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

    #[test]
    fn names_hidden_unless_asked() {
        let shown = || {
            format!(
                "{} {} {}",
                super::Name(b"CANARY"),
                super::Also(b"CANARY"),
                super::Size(424242)
            )
        };
        super::set_names(false);
        let s = shown();
        assert!(!s.contains("CANARY") && !s.contains("424242"), "{s}");
        super::set_names(true);
        let s = shown();
        super::set_names(false);
        assert!(
            s.starts_with("\"CANARY\"  (\"CANARY\") 424242 bytes"),
            "{s}"
        );
    }
}
