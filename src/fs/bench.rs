//! Benchmark helpers for the read path (not for production use).
//!
//! [`ShapedSource`] wraps a backing source and adds a fixed latency per
//! request plus a bandwidth limit, to imitate a remote parallel filesystem
//! (Lustre) on a local disk. The ceilings are
//! [`super::MountConfig::no_crypt`] (the same reads without decryption or
//! authentication) and [`super::MountConfig::null_data`] (the same FUSE code
//! path serving zeros, no archive reads).

use std::io;
use std::time::Duration;

use crate::crypto::Source;

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
