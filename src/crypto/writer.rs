//! Writing an archive: header, data stream, index stream, in one pass.
//!
//! The caller supplies the plaintext of the data stream through a `fill`
//! callback (run on its own thread, so reading source files overlaps with
//! encryption), and the index bytes from [`super::index::TreeBuilder`].
//! Chunks are sealed in batches, in parallel on all cores (rayon).

use std::io::{self, Write};
use std::sync::mpsc;

use super::aead::{Backend, Suite, TAG_LEN};
use super::header::{Header, Stanza};
use super::keys::DataKey;
use super::offsets::{valid_chunk_size, Geometry, DEFAULT_CHUNK_SIZE};
use super::stream::StreamKey;
use super::Error;

/// How to write an archive.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Cipher suite.
    pub suite: Suite,
    /// Chunk size (validated).
    pub chunk_size: u32,
    /// AEAD implementation.
    pub backend: Backend,
    /// Required feature bits of the header (0 for a plain archive;
    /// [`super::external::FEATURE_EXTERNAL_C4GH`] for a reference archive).
    pub features: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            suite: Suite::Aes256Gcm,
            chunk_size: DEFAULT_CHUNK_SIZE,
            backend: Backend::default(),
            features: 0,
        }
    }
}

/// Plaintext bytes sealed per batch (a batch is what one parallel step does).
const BATCH_BYTES: u64 = 8 << 20;

/// A fresh random archive id.
pub fn new_archive_id() -> io::Result<[u8; 32]> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).map_err(io::Error::other)?;
    Ok(id)
}

/// Writes a complete archive to `out`.
///
/// `fill` is called with consecutive pieces of the data stream (in order,
/// `data_len` bytes in all) and must fill each completely. `progress` gets
/// the number of plaintext bytes sealed so far. Returns the header written.
#[allow(clippy::too_many_arguments)]
pub fn write_archive(
    out: &mut dyn Write,
    opts: &WriteOptions,
    key: &DataKey,
    archive_id: [u8; 32],
    stanzas: Vec<Stanza>,
    index: &[u8],
    data_len: u64,
    fill: &mut (dyn FnMut(&mut [u8]) -> io::Result<()> + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<Header, Error> {
    if !valid_chunk_size(opts.chunk_size) {
        return Err(Error::MalformedHeader("invalid chunk size"));
    }
    let header = Header::seal(
        key,
        opts.suite,
        opts.chunk_size,
        archive_id,
        data_len,
        index.len() as u64,
        stanzas,
    )?
    .with_features(key, opts.features)?;
    let keys = key.derive(&archive_id, opts.suite);
    out.write_all(&header.to_bytes())?;

    let data = StreamKey::new(
        opts.suite,
        opts.backend,
        &keys.data,
        Geometry::new(opts.chunk_size, data_len),
    );
    write_stream(out, &data, fill, progress)?;

    let idx = StreamKey::new(
        opts.suite,
        opts.backend,
        &keys.index,
        Geometry::new(opts.chunk_size, index.len() as u64),
    );
    let mut pos = 0usize;
    write_stream(
        out,
        &idx,
        &mut |buf: &mut [u8]| {
            buf.copy_from_slice(&index[pos..pos + buf.len()]);
            pos += buf.len();
            Ok(())
        },
        &mut |_| {},
    )?;
    out.flush()?;
    Ok(header)
}

/// Seals one stream: a producer thread fills batches, this thread seals them
/// in parallel and writes them in order.
fn write_stream(
    out: &mut dyn Write,
    stream: &StreamKey,
    fill: &mut (dyn FnMut(&mut [u8]) -> io::Result<()> + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<(), Error> {
    let g = *stream.geometry();
    let per_batch = (BATCH_BYTES / g.chunk_size()).max(1);
    let count = g.chunk_count();
    std::thread::scope(|scope| -> Result<(), Error> {
        let (tx, rx) = mpsc::sync_channel::<io::Result<(u64, u64, Vec<u8>)>>(2);
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        let producer = scope.spawn(move || {
            let mut first = 0u64;
            while first < count {
                let end = (first + per_batch).min(count);
                let span = g.cipher_span(first..end) as usize;
                let mut buf = back_rx.try_recv().unwrap_or_default();
                buf.resize(span, 0);
                let mut res = Ok(());
                let mut at = 0usize;
                for i in first..end {
                    let n = g.chunk_plain_len(i);
                    if let Err(e) = fill(&mut buf[at..at + n]) {
                        res = Err(e);
                        break;
                    }
                    at += n + TAG_LEN;
                }
                let failed = res.is_err();
                if tx.send(res.map(|()| (first, end, buf))).is_err() || failed {
                    return;
                }
                first = end;
            }
        });
        let mut result = Ok(());
        for msg in rx.iter() {
            match msg {
                Ok((first, end, mut buf)) => {
                    stream.seal_run(first, &mut buf);
                    if let Err(e) = out.write_all(&buf) {
                        result = Err(Error::Io(e));
                        break;
                    }
                    progress(g.chunk_plain_start(end).min(g.len()));
                    // The buffer now holds only ciphertext; reuse it.
                    let _ = back_tx.send(buf);
                }
                Err(e) => {
                    result = Err(Error::Io(e));
                    break;
                }
            }
        }
        drop(rx);
        let _ = producer.join();
        result
    })
}
