//! Running a mount as a process: everything hpcs-mount does between its
//! checked settings and its exit code, apart from choosing the keys.
//!
//! [`daemon::start`] opens the watched process and, for `--daemon`, forks
//! before any thread exists; [`serve::serve`] hardens the process, checks the
//! node ([`checks`]: /dev/fuse, the mount point against [`mountinfo`]),
//! mounts [`crate::fs`], announces readiness, runs the exec-mode command
//! ([`child`]) and acts on [`events`] until it unmounts ([`unmount`]). This
//! module sees no command-line flags: it takes the plain [`Launch`] and
//! [`Plan`] the binary checked, and a closure that opens the archives. Its
//! failures are [`crate::exit::Fail`]s: a documented exit code and a message
//! saying what to do.

pub mod checks;
pub mod child;
pub mod daemon;
pub mod events;
pub mod mountinfo;
pub mod serve;
pub mod unmount;

pub use daemon::{start, Launch};
pub use serve::{serve, OutputDir, Plan, ScratchDir};
pub use unmount::unmount_hpcs;
