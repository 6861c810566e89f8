//! hpcs: chunked, seekable, authenticated-encryption archives for sensitive
//! data on shared HPC systems.
//!
//! Layers point down only: [`crypto`] is the format and knows nothing else;
//! [`keys`] turns key stanzas into data keys; [`pack`] and [`extract`] move
//! trees between a local filesystem and an archive; the `fs` module (FUSE)
//! serves an unlocked archive. Binaries wire them together.

pub mod crypt4gh;
pub mod crypto;
pub mod exit;
pub mod extract;
#[cfg(feature = "fuse")]
pub mod fs;
pub mod keys;
pub mod log;
pub mod pack;
pub mod results;
pub mod secmem;
pub mod util;
