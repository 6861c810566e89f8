//! Positional byte sources an archive is read from.
//!
//! Readers never share a file cursor: every read names its offset, so many
//! threads can read one archive at once. [`FileSource`] uses `pread`/`preadv`
//! (the default, and the only safe choice when the archive may be truncated
//! under a live reader: a short read becomes an error). [`MmapSource`] maps
//! the file; it is faster for hot local archives but a truncation under the
//! mapping raises SIGBUS, so it is only for archives nobody else can modify.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Something an archive can be read from at arbitrary offsets.
pub trait Source: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// True when the source is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `offset`; a short read is `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Fills `bufs`, back to back, from `offset` (one request where possible).
    fn read_vectored_exact_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
        let mut off = offset;
        for b in bufs.iter_mut() {
            self.read_exact_at(b, off)?;
            off += b.len() as u64;
        }
        Ok(())
    }
}

impl<S: Source + ?Sized> Source for std::sync::Arc<S> {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn read_vectored_exact_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
        (**self).read_vectored_exact_at(bufs, offset)
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn read_vectored_exact_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
        (**self).read_vectored_exact_at(bufs, offset)
    }
}

/// An archive file read with `pread`/`preadv`.
pub struct FileSource {
    file: File,
}

impl FileSource {
    /// Opens `path` read-only.
    pub fn open(path: &std::path::Path) -> io::Result<FileSource> {
        Ok(FileSource {
            file: File::open(path)?,
        })
    }

    /// Wraps an open file.
    pub fn new(file: File) -> FileSource {
        FileSource { file }
    }
}

impl Source for FileSource {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn read_vectored_exact_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
        // preadv, resumed after partial reads; at most IOV_MAX buffers a call.
        const IOV_MAX: usize = 1024;
        let mut idx = 0; // first buffer not yet complete
        let mut done_in = 0; // bytes already in bufs[idx]
        let mut off = offset;
        while idx < bufs.len() {
            let end = (idx + IOV_MAX).min(bufs.len());
            let iov: Vec<libc::iovec> = bufs[idx..end]
                .iter_mut()
                .enumerate()
                .map(|(k, b)| {
                    let skip = if k == 0 { done_in } else { 0 };
                    libc::iovec {
                        iov_base: b[skip..].as_mut_ptr().cast(),
                        iov_len: b.len() - skip,
                    }
                })
                .collect();
            // SAFETY: every iovec points into a distinct, live `&mut [u8]` from
            // `bufs` with its exact remaining length; the kernel writes at most
            // that many bytes into each, and `bufs` outlives the call.
            let n = unsafe {
                libc::preadv(
                    self.file.as_raw_fd(),
                    iov.as_ptr(),
                    iov.len() as libc::c_int,
                    off as libc::off_t,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ended before the requested chunks",
                ));
            }
            let mut n = n as usize;
            off += n as u64;
            while n > 0 && idx < bufs.len() {
                let left = bufs[idx].len() - done_in;
                if n >= left {
                    n -= left;
                    idx += 1;
                    done_in = 0;
                } else {
                    done_in += n;
                    n = 0;
                }
            }
            // Skip empty buffers.
            while idx < bufs.len() && bufs[idx].len() == done_in {
                idx += 1;
                done_in = 0;
            }
        }
        Ok(())
    }
}

/// An archive file mapped into memory (see the module doc for the caveat).
pub struct MmapSource {
    map: memmap2::Mmap,
}

impl MmapSource {
    /// Maps `file` read-only.
    ///
    /// The caller promises that nobody truncates the file while it is mapped
    /// (a truncation turns reads into SIGBUS); use [`FileSource`] otherwise.
    pub fn new(file: &File) -> io::Result<MmapSource> {
        // SAFETY: the mapping is read-only and private to this process; the
        // caller guarantees the file is not truncated while mapped (see the
        // function doc). Modified bytes are caught by chunk authentication.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(MmapSource { map })
    }
}

impl Source for MmapSource {
    fn len(&self) -> io::Result<u64> {
        Ok(self.map.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.map.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the archive",
    )
}

/// An in-memory archive (tests, vectors).
impl Source for Vec<u8> {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.get(start..end).ok_or_else(eof)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn preadv_fills_buffers_back_to_back() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let s = FileSource::new(f);
        let mut a = vec![0u8; 10];
        let mut b = vec![0u8; 0];
        let mut c = vec![0u8; 70_000];
        {
            let mut bufs: Vec<&mut [u8]> = vec![&mut a, &mut b, &mut c];
            s.read_vectored_exact_at(&mut bufs, 5).unwrap();
        }
        assert_eq!(a, data[5..15]);
        assert_eq!(c, data[15..70_015]);
        let mut d = vec![0u8; 20];
        let mut bufs: Vec<&mut [u8]> = vec![&mut d];
        let e = s.read_vectored_exact_at(&mut bufs, 99_990).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
