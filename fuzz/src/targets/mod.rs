//! The fuzz targets: one module per parser of untrusted bytes, each with
//! `run(&[u8])`. The libFuzzer bins (fuzz_targets/) and the smoke test
//! (tests/smoke.rs) call these; the module docs say how the input is read.

pub mod c4gh_external;
pub mod c4gh_results;
pub mod crypt4gh;
pub mod differential;
pub mod header_unlock;
pub mod index_parse;
pub mod pin;
pub mod results;
pub mod scratch_block;
pub mod stanzas;
pub mod vault_json;

/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name (the name of its bin and of its seed and corpus
/// directories, fuzz/seeds/NAME and fuzz/corpus/NAME).
pub const ALL: &[Target] = &[
    ("header_unlock", header_unlock::run),
    ("index_parse", index_parse::run),
    ("stanzas", stanzas::run),
    ("results", results::run),
    ("crypt4gh", crypt4gh::run),
    ("differential", differential::run),
    ("vault_json", vault_json::run),
    ("pin", pin::run),
    ("scratch_block", scratch_block::run),
    ("c4gh_results", c4gh_results::run),
    ("c4gh_external", c4gh_external::run),
];
