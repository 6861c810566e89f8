//! Encrypted job results (RESULTS.md): the files a job writes under
//! hpcs-mount's output directory, encrypted while they are written to the
//! user's age recipients and streamed to shared storage; and the
//! secure-device side that checks and decrypts them.
//!
//! Knows nothing of FUSE: [`Run`] hands out one [`ObjectWriter`] per file and
//! writes the run's manifest; [`check_dir`] reads a results directory back.
//! One module per RESULTS.md section:
//!
//! | RESULTS.md                         | module        | owns                                 |
//! |------------------------------------|---------------|--------------------------------------|
//! | Keys, Directory layout, Object plaintext | `object.rs` | names, header, trailer, MAC, paths |
//! | Directory layout, Object plaintext | `writer.rs`   | writing objects (what the mount uses) |
//! | Object plaintext                   | `read.rs`     | decrypting objects back              |
//! | Manifest plaintext                 | `manifest.rs` | writing and reading manifests        |
//! | Verdicts                           | `check.rs`    | verdicts, placing decrypted results  |

mod check;
mod manifest;
mod object;
mod read;
mod writer;

pub use check::{check_dir, DirReport, FileReport, RunReport, Status};
pub use manifest::{
    read_manifest, Manifest, ManifestBody, ManifestDir, ManifestFile, ManifestOpen, MANIFEST_MAGIC,
};
pub use object::{
    safe_relative, MANIFEST_PREFIX, MAX_PATH, OBJECT_MAGIC, OBJECT_SUFFIX, PARTIAL_SUFFIX,
};
pub use read::{decrypt_object, partial_run, ObjectMeta, ReadError};
pub use writer::{Finished, ObjectWriter, Run, RunInfo};

#[cfg(test)]
mod test_util {
    use std::path::Path;

    use super::Run;
    use crate::crypto::keys::SubKey;
    use crate::keys::{load_identities, parse_recipient, Identities};

    /// A fresh X25519 identity saved as `dir/id.txt`.
    fn identity(dir: &Path) -> age::x25519::Identity {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        crate::keys::age_keys::write_test_identity(
            &dir.join("id.txt"),
            &format!("{}\n", id.to_string().expose_secret()),
        );
        id
    }

    /// The public key of the identity in `dir/id.txt`.
    pub fn recipient_of(dir: &Path) -> String {
        let text = std::fs::read_to_string(dir.join("id.txt")).unwrap();
        let id: age::x25519::Identity = text.trim().parse().unwrap();
        id.to_public().to_string()
    }

    /// A run writing into `dir/out` for a new identity (in `dir/id.txt`),
    /// with archive id `[7; 32]`; the identity to read it back.
    pub fn run(dir: &Path, key: &SubKey) -> (Run, Identities) {
        let id = identity(dir);
        let r = parse_recipient(&id.to_public().to_string()).unwrap();
        let ids = load_identities(&dir.join("id.txt")).unwrap();
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        (
            Run::new(&out, vec![r], key, [7; 32], "node1".into(), "42".into()).unwrap(),
            ids,
        )
    }
}
