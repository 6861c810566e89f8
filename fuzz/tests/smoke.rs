//! The bounded smoke pass of every fuzz target (tools/test.sh runs it
//! through `cargo test --workspace`; docs/fuzzing.md): each target runs on
//! every input of fuzz/seeds/NAME and fuzz/corpus/NAME (the corpus the
//! coverage-guided runs kept), then on deterministic mutations of them
//! (bit flips, byte and length changes, cuts, splices) until
//! `HPCS_FUZZ_SMOKE_EXECS` mutations (default 2000) or
//! `HPCS_FUZZ_SMOKE_SECS` seconds (default 10) per target, whichever comes
//! first. Not coverage-guided (that is tools/fuzz.sh): it keeps the targets
//! building and replays what the long runs found. A failing input is
//! written to target/tmp/fuzz-smoke/NAME-HASH and named in the failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hpcs_fuzz::targets::ALL;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The committed inputs of a target, in a stable order.
fn inputs(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["seeds", "corpus"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(name)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            out.push((f.clone(), std::fs::read(&f).unwrap()));
        }
    }
    out
}

/// xorshift64*: the same mutations on every run (seed from
/// `HPCS_FUZZ_SMOKE_SEED` to try others).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on the edges of length and count fields.
const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next() as u8;
            }
            2 if len > 0 => {
                // A little-endian or big-endian field set to an edge value.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let bytes = if rng.below(2) == 0 {
                    &bytes[..w]
                } else {
                    &bytes[8 - w..]
                };
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(d) = data.get_mut(at + i) {
                        *d = *b;
                    }
                }
            }
            3 => data.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let b = rng.next() as u8;
                data.splice(at..at, std::iter::repeat_n(b, n));
            }
            6 if !other.is_empty() => {
                // A piece of another input spliced in.
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(256));
                let at = rng.below(len + 1);
                data.splice(at..at, other[from..from + n].iter().copied());
            }
            _ if len > 1 => {
                // A piece of this input repeated.
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let piece = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, piece);
            }
            _ => data.push(rng.next() as u8),
        }
    }
}

/// Runs `f` on `input`; on a panic, saves the input and returns where.
fn exec(name: &str, f: fn(&[u8]), input: &[u8]) -> Result<(), String> {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_ok() {
        return Ok(());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke");
    std::fs::create_dir_all(&dir).unwrap();
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(input)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let file = dir.join(format!("{name}-{hash}"));
    std::fs::write(&file, input).unwrap();
    Err(format!(
        "{name} failed on {} ({} bytes); reproduce with tools/fuzz.sh --run {name} {}",
        file.display(),
        input.len(),
        file.display()
    ))
}

fn smoke(name: &str, f: fn(&[u8])) -> Result<u64, String> {
    let execs = env_num("HPCS_FUZZ_SMOKE_EXECS", 2000);
    let limit = Duration::from_secs(env_num("HPCS_FUZZ_SMOKE_SECS", 10));
    let seeds = inputs(name);
    assert!(
        !seeds.is_empty(),
        "fuzz/seeds/{name} is empty (python3 fuzz/make_seeds.py)"
    );
    for (path, input) in &seeds {
        exec(name, f, input).map_err(|e| format!("{e} (committed input {})", path.display()))?;
    }
    let mut rng =
        Rng(env_num("HPCS_FUZZ_SMOKE_SEED", 0x9e37_79b9_7f4a_7c15) ^ name.len() as u64 | 1);
    let start = Instant::now();
    let mut n = 0;
    while n < execs && start.elapsed() < limit {
        let mut data = seeds[rng.below(seeds.len())].1.clone();
        let other = &seeds[rng.below(seeds.len())].1;
        mutate(&mut rng, &mut data, other);
        exec(name, f, &data)?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn every_target_on_its_corpus_and_mutations() {
    // A panic is the finding; keep its message but not one backtrace per exec.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let mut failures = Vec::new();
    for (name, f) in ALL {
        let t = Instant::now();
        match smoke(name, *f) {
            Ok(n) => eprintln!(
                "fuzz smoke: {name}: {} committed inputs, {n} mutations, {:.1}s",
                inputs(name).len(),
                t.elapsed().as_secs_f64()
            ),
            Err(e) => failures.push(e),
        }
    }
    std::panic::set_hook(hook);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
