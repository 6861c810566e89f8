//! What is negotiated with the kernel at FUSE init: capabilities (async and
//! mmap-able direct I/O, parallel directory operations, cached symlinks),
//! background and write request sizes, and the I/O mode every open file then
//! gets (direct I/O or the kernel page cache, `--direct-io`/`--page-cache`,
//! automatic by default).

use std::sync::atomic::Ordering;

use fuser::{InitFlags, KernelConfig};

use crate::crypto::Source;

use super::{Inner, MAX_REQUEST};

impl<S: Source + 'static> Inner<S> {
    pub(super) fn init(&self, config: &mut KernelConfig) {
        for cap in [
            InitFlags::FUSE_ASYNC_DIO,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            if config.add_capabilities(cap).is_err() {
                crate::log::log(2, format_args!("kernel lacks capability {cap:?}"));
            }
        }
        let _ = config.set_max_background(64);
        if self.output.is_some() || self.scratch.is_some() {
            // Large writes into the results and scratch directories (the
            // default is 128 KiB).
            let _ = config.set_max_write(MAX_REQUEST as u32);
        }
        let mmap_ok = config
            .capabilities()
            .contains(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        let direct = self.cfg.direct_io.unwrap_or(mmap_ok);
        self.direct_io.store(direct, Ordering::Relaxed);
        if let Some(s) = &self.scratch {
            s.set_direct_io(direct);
        }
        if direct && !mmap_ok {
            crate::log::log(
                0,
                format_args!("--direct-io on a kernel without FUSE_DIRECT_IO_ALLOW_MMAP: shared mmap of files will fail (ENODEV)"),
            );
        }
        crate::log::log(
            1,
            format_args!(
                "I/O mode: {}",
                if direct {
                    "direct I/O (no kernel page cache)"
                } else {
                    "kernel page cache"
                }
            ),
        );
    }
}
