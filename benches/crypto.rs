//! Criterion benches for the crypto layer, in bytes per second:
//! - chunk seal/open per suite and backend at sizes on both sides of the
//!   default chunk size (4 KiB … 1 MiB);
//! - pack and verify throughput of a whole archive (`HPCS_BENCH_PACK_MIB`,
//!   default 1024 MiB of random data in a tree of large and small files).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use hpcs::crypto::aead::{Backend, ChunkCipher, Suite, TAG_LEN};
use hpcs::crypto::keys::SubKey;
use hpcs::crypto::nonce::ChunkNonce;

fn chunks(c: &mut Criterion) {
    let key = SubKey::from_bytes([0x42; 32]);
    for &suite in &[Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for &backend in Backend::all() {
            let cipher = ChunkCipher::new(suite, backend, &key);
            let mut g = c.benchmark_group(format!("chunk/{}/{}", suite.name(), backend.name()));
            for &size in &[4usize << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
                g.throughput(Throughput::Bytes(size as u64));
                let mut buf = vec![7u8; size + TAG_LEN];
                g.bench_with_input(BenchmarkId::new("seal", size), &size, |b, _| {
                    b.iter(|| cipher.seal(ChunkNonce::new(1, false), black_box(&mut buf)))
                });
                cipher.seal(ChunkNonce::new(1, false), &mut buf);
                let sealed = buf.clone();
                g.bench_with_input(BenchmarkId::new("open", size), &size, |b, _| {
                    b.iter(|| {
                        buf.copy_from_slice(&sealed);
                        cipher
                            .open(ChunkNonce::new(1, false), black_box(&mut buf))
                            .expect("authentic")
                    })
                });
            }
            g.finish();
        }
    }
}

fn archive(c: &mut Criterion) {
    use std::sync::atomic::AtomicBool;
    let mib: u64 = std::env::var("HPCS_BENCH_PACK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("small")).expect("mkdir");
    // 7/8 in 8 large files, 1/8 in 4 KiB files.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let total = mib << 20;
    let big = total * 7 / 8 / 8;
    for i in 0..8 {
        std::fs::write(src.join(format!("big{i}")), noise(big as usize)).expect("write");
    }
    let smalls = (total / 8) / 4096;
    for i in 0..smalls {
        std::fs::write(src.join("small").join(format!("{i:06}")), noise(4096)).expect("write");
    }
    let id = age::x25519::Identity::generate();
    let recipient = hpcs::keys::parse_recipient(&id.to_public().to_string()).expect("recipient");
    let scan = hpcs::pack::scan(&src, hpcs::crypto::offsets::DEFAULT_CHUNK_SIZE).expect("scan");
    let out = dir.path().join("a.hpcs");
    let stop = AtomicBool::new(false);
    let mut g = c.benchmark_group("archive");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(scan.data_len));
    g.bench_function(BenchmarkId::new("pack", format!("{mib}MiB")), |b| {
        b.iter(|| {
            let key = hpcs::crypto::DataKey::generate().expect("key");
            let stanza =
                hpcs::keys::wrap_recipients(&key, std::slice::from_ref(&recipient)).expect("wrap");
            hpcs::pack::write(
                &scan,
                &out,
                true,
                &hpcs::crypto::WriteOptions::default(),
                &key,
                [1; 32],
                vec![stanza],
                &mut |_| {},
                &stop,
            )
            .expect("pack")
        })
    });
    let ids = {
        let p = dir.path().join("id.txt");
        use age::secrecy::ExposeSecret;
        std::fs::write(&p, id.to_string().expose_secret()).expect("write id");
        // hpcs refuses identity files others can read.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod id");
        hpcs::keys::load_identities(&p).expect("ids")
    };
    g.bench_function(BenchmarkId::new("verify", format!("{mib}MiB")), |b| {
        b.iter(|| {
            let sealed = hpcs::crypto::SealedArchive::open(
                hpcs::crypto::FileSource::open(&out).expect("open"),
            )
            .expect("header");
            let key = hpcs::keys::unwrap_age(&sealed.header().stanzas, &ids).expect("key");
            let a = sealed.unlock(&key).expect("unlock");
            a.verify(&mut |_| {}).expect("verify")
        })
    });
    g.finish();
}

criterion_group!(benches, chunks, archive);
criterion_main!(benches);
