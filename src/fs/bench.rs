//! Benchmark ceilings and shaping for the read path: compiled only with the
//! cargo feature `bench-ceilings` (tools/bench.sh builds with it), never in
//! the binaries users install, since a ceiling serves zeros or
//! unauthenticated bytes instead of a file's contents.
//!
//! [`BenchMode`] is what a read does: the real thing, or a ceiling chosen by
//! [`super::MountConfig::no_crypt`] (the same reads without decryption or
//! authentication) or [`super::MountConfig::null_data`] (the same FUSE code
//! path serving zeros, no archive reads). [`ShapedSource`] wraps a backing
//! source and adds a fixed latency per request plus a bandwidth limit, to
//! imitate a remote parallel filesystem (Lustre) on a local disk.

use std::io;
use std::time::Duration;

use crate::crypto::Source;

use super::MountConfig;

/// What a read does: the real thing, or a benchmark ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// Read, authenticate and decrypt (production).
    Real,
    /// Serve zeros; no backing read, no cache (FUSE-only ceiling).
    Zeros,
    /// Cache, read-ahead and backing reads as usual, no decryption or
    /// authentication: the stored bytes are served (no-crypto ceiling).
    NoCrypt,
}

impl BenchMode {
    /// The mode `cfg` asks for.
    pub fn of(cfg: &MountConfig) -> BenchMode {
        if cfg.null_data {
            BenchMode::Zeros
        } else if cfg.no_crypt {
            BenchMode::NoCrypt
        } else {
            BenchMode::Real
        }
    }
}

/// A source with added per-request latency and a bandwidth cap.
pub struct ShapedSource<S> {
    inner: S,
    latency: Duration,
    bytes_per_sec: Option<u64>,
}

impl<S: Source> ShapedSource<S> {
    /// Wraps `inner`: every read waits `latency` plus `len / bytes_per_sec`.
    pub fn new(inner: S, latency: Duration, bytes_per_sec: Option<u64>) -> ShapedSource<S> {
        ShapedSource {
            inner,
            latency,
            bytes_per_sec: bytes_per_sec.filter(|&b| b > 0),
        }
    }

    fn delay(&self, len: usize) {
        let mut d = self.latency;
        if let Some(bw) = self.bytes_per_sec {
            d += Duration::from_secs_f64(len as f64 / bw as f64);
        }
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

impl<S: Source> Source for ShapedSource<S> {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.delay(buf.len());
        self.inner.read_exact_at(buf, offset)
    }

    fn read_vectored_exact_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
        self.delay(bufs.iter().map(|b| b.len()).sum());
        self.inner.read_vectored_exact_at(bufs, offset)
    }
}
