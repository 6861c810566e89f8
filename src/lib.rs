//! hpcs: chunked, seekable, authenticated-encryption archives for sensitive
//! data on shared HPC systems.
//!
//! Layers point down only (ARCHITECTURE.md): [`crypto`] is the format and
//! knows nothing else; [`crypt4gh`] is a codec for the GA4GH format beside
//! it; [`keys`] turns key stanzas into data keys and back; [`pack`] and
//! [`extract`] move trees between a local filesystem and an archive,
//! [`rewrap`] gives an archive a new header over the same data; [`results`]
//! is the encrypted-results format; the `fs` module (FUSE) serves unlocked
//! archives, and the `mount` module runs that service as a process (daemon,
//! readiness, signals, unmount). Leaves every layer may use: [`secmem`]
//! (locked memory), [`exit`] (exit codes), [`log`], [`util`]. Binaries wire
//! them together.

pub mod crypt4gh;
pub mod crypto;
pub mod exit;
pub mod extract;
#[cfg(feature = "fuse")]
pub mod fs;
pub mod keys;
pub mod log;
#[cfg(feature = "fuse")]
pub mod mount;
pub mod pack;
pub mod results;
pub mod rewrap;
pub mod secmem;
pub mod util;
