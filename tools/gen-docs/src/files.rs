//! The generated files of one program as committed under
//! `tools/packaging`: which are stale, and rewriting them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::man::completion_paths;

/// Which committed files are stale for `program`: differing, missing, or
/// left over from a subcommand that no longer exists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Committed, but different from what the command line generates.
    pub differ: Vec<String>,
    /// Generated, but not committed.
    pub missing: Vec<String>,
    /// Committed pages of this program that nothing generates any more.
    pub extra: Vec<String>,
}

impl Drift {
    /// No stale file.
    pub fn is_empty(&self) -> bool {
        self.differ.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares `files` (from [`generate`]) with what is under `dir`.
pub fn compare(dir: &Path, program: &str, files: &BTreeMap<String, Vec<u8>>) -> Drift {
    let mut d = Drift::default();
    for (rel, want) in files {
        match std::fs::read(dir.join(rel)) {
            Ok(have) if &have == want => {}
            Ok(_) => d.differ.push(rel.clone()),
            Err(_) => d.missing.push(rel.clone()),
        }
    }
    d.extra = owned_files(dir, program)
        .into_iter()
        .filter(|rel| !files.contains_key(rel))
        .collect();
    d
}

/// Committed files that belong to `program`: its man pages
/// (`PROGRAM.1`, `PROGRAM-*.1`) and its three completion scripts.
fn owned_files(dir: &Path, program: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join("man")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".1").unwrap_or("");
            if stem == program || stem.starts_with(&format!("{program}-")) {
                out.push(format!("man/{name}"));
            }
        }
    }
    for (_, rel) in completion_paths(program) {
        if dir.join(&rel).exists() {
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// Writes `files` under `dir` (each through a temporary file and a rename)
/// and removes the program's pages that nothing generates any more.
pub fn write(dir: &Path, program: &str, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let drift = compare(dir, program, files);
    for rel in drift.differ.iter().chain(&drift.missing) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a relative path with a directory"))?;
        let tmp = path.with_extension("tmp-gen-docs");
        std::fs::write(&tmp, &files[rel])?;
        std::fs::rename(&tmp, &path)?;
    }
    for rel in &drift.extra {
        std::fs::remove_file(dir.join(rel))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::man::generate;
    use clap::Command;

    fn sample() -> Command {
        Command::new("hpcs-sample")
            .version("1.0.0")
            .subcommand(Command::new("go"))
    }

    #[test]
    fn drift_finds_differing_missing_and_leftover_files_and_write_fixes_it() {
        let dir = std::env::temp_dir().join(format!("hpcs-gen-docs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = generate(sample(), None);
        let d = compare(&dir, "hpcs-sample", &files);
        assert_eq!(d.missing.len(), files.len());

        write(&dir, "hpcs-sample", &files).unwrap();
        assert!(compare(&dir, "hpcs-sample", &files).is_empty());

        std::fs::write(dir.join("man/hpcs-sample-gone.1"), "old").unwrap();
        std::fs::write(dir.join("man/hpcs-other.1"), "not ours").unwrap();
        std::fs::write(dir.join("man/hpcs-sample.1"), "edited by hand").unwrap();
        let d = compare(&dir, "hpcs-sample", &files);
        assert_eq!(d.differ, ["man/hpcs-sample.1"]);
        assert_eq!(d.extra, ["man/hpcs-sample-gone.1"]);
        assert!(d.missing.is_empty());

        write(&dir, "hpcs-sample", &files).unwrap();
        assert!(compare(&dir, "hpcs-sample", &files).is_empty());
        assert!(
            dir.join("man/hpcs-other.1").exists(),
            "another program's page is kept"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
