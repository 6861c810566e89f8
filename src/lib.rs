//! hpcs: chunked, seekable, authenticated-encryption archives for sensitive
//! data on shared HPC systems.
//!
//! Layers point down only: [`crypto`] is the format and knows nothing else;
//! [`keys`] turns key stanzas into data keys and back; [`pack`] and
//! [`extract`] move trees between a local filesystem and an archive,
//! [`rewrap`] gives an archive a new header over the same data; [`crypt4gh`]
//! is a Crypt4GH codec and [`reference`] builds and reads archives whose files
//! are external `.c4gh` files; the `fs` module (FUSE)
//! serves an unlocked archive, and the `mount` module runs that service as a
//! process (daemon, readiness, signals, unmount). Binaries wire them together.

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
pub mod reference;
pub mod results;
pub mod rewrap;
pub mod secmem;
pub mod util;
