//! The seeds that the library itself writes (run by fuzz/make_seeds.py):
//! Crypt4GH results from `results::Run` and the external files of the
//! golden reference archive. Ignored by default: it rewrites
//! fuzz/seeds/c4gh_results and fuzz/seeds/c4gh_external.
//!
//!     cargo test -p hpcs-fuzz --test seeds -- --ignored

use std::path::Path;

use hpcs_fuzz::targets::{c4gh_external, c4gh_results};

#[test]
#[ignore = "rewrites the committed seeds; run by fuzz/make_seeds.py"]
fn write_library_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, seeds) in [
        ("c4gh_results", c4gh_results::seeds()),
        ("c4gh_external", c4gh_external::seeds()),
    ] {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, input) in seeds {
            std::fs::write(dir.join(name), input).unwrap();
        }
    }
}
