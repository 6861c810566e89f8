//! The EasyBuild easyconfig's `crates` and `checksums` lists, from
//! Cargo.lock. Everything else in `tools/packaging/easybuild/hpcs-VERSION.eb`
//! is written by hand; these two lists are replaced whole, so that the
//! crates EasyBuild unpacks into its vendor directory are exactly the locked
//! ones, each checked against the SHA-256 crates.io published (Cargo.lock's
//! `checksum`, which is also the SHA-256 of the `.crate` file EasyBuild
//! stores as `NAME-VERSION.tar.gz`).

use serde::Deserialize;

#[derive(Deserialize)]
struct Lock {
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// One crate from crates.io: name, version, SHA-256 of its `.crate` file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// The crates.io packages of a Cargo.lock, sorted, and the version of the
/// workspace package `root` (e.g. `hpcs`). Refuses other sources (git, other
/// registries), which the easyconfig would have to list differently.
pub fn locked_crates(lock: &str, root: &str) -> Result<(Vec<Crate>, String), String> {
    let lock: Lock = toml::from_str(lock).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut crates = Vec::new();
    let mut version = None;
    for p in lock.package {
        match p.source.as_deref() {
            None if p.name == root => version = Some(p.version),
            None => {}
            Some(CRATES_IO) => {
                let sha256 = p
                    .checksum
                    .ok_or_else(|| format!("Cargo.lock: {} {} has no checksum", p.name, p.version))?;
                crates.push(Crate {
                    name: p.name,
                    version: p.version,
                    sha256,
                });
            }
            Some(other) => {
                return Err(format!(
                    "Cargo.lock: {} {} comes from {other}, not crates.io: list it in the easyconfig by hand",
                    p.name, p.version
                ))
            }
        }
    }
    crates.sort();
    let version = version.ok_or_else(|| format!("Cargo.lock has no workspace package {root}"))?;
    Ok((crates, version))
}

/// `text` (an easyconfig) with its `crates = [...]` and `checksums = [...]`
/// blocks replaced by the lists for `crates`. The first entry of
/// `checksums` is the project's own tarball's: `main_entry`, a whole line
/// without its indentation (e.g. `None,  # why`).
pub fn with_crates(text: &str, crates: &[Crate], main_entry: &str) -> Result<String, String> {
    let mut list = String::new();
    let mut sums = format!("    {main_entry}\n");
    for c in crates {
        list += &format!("    ('{}', '{}'),\n", c.name, c.version);
        sums += &format!(
            "    {{'{}-{}.tar.gz': '{}'}},\n",
            c.name, c.version, c.sha256
        );
    }
    let text = replace_block(text, "crates", &list)?;
    replace_block(&text, "checksums", &sums)
}

/// Replaces the lines between `NAME = [` and the next line that is `]`.
fn replace_block(text: &str, name: &str, body: &str) -> Result<String, String> {
    let open = format!("\n{name} = [\n");
    let start = text
        .find(&open)
        .ok_or_else(|| format!("the easyconfig has no line `{name} = [`"))?
        + open.len();
    let end = if text[start..].starts_with("]\n") {
        start
    } else {
        text[start..]
            .find("\n]\n")
            .map(|i| start + i + 1)
            .ok_or_else(|| format!("the easyconfig's `{name}` list has no closing `]` line"))?
    };
    Ok(format!("{}{body}{}", &text[..start], &text[end..]))
}

/// The `version = '...'` of an easyconfig.
pub fn version_of(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("version = '")?.strip_suffix('\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "zeta"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbb"

[[package]]
name = "alpha"
version = "0.2.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaa"

[[package]]
name = "hpcs"
version = "0.3.0"

[[package]]
name = "hpcs-pack"
version = "0.3.0"
"#;

    #[test]
    fn lock_gives_sorted_crates_io_packages_and_the_root_version() {
        let (crates, version) = locked_crates(LOCK, "hpcs").unwrap();
        assert_eq!(version, "0.3.0");
        let names: Vec<_> = crates
            .iter()
            .map(|c| (c.name.as_str(), c.sha256.as_str()))
            .collect();
        assert_eq!(names, [("alpha", "aaaa"), ("zeta", "bbbb")]);
        let git = LOCK.replace(
            "registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"bbbb",
            "git+https://example.org/zeta?rev=1#1",
        );
        let err = locked_crates(&git, "hpcs").unwrap_err();
        assert!(
            err.contains("zeta") && err.contains("not crates.io"),
            "{err}"
        );
    }

    #[test]
    fn blocks_are_replaced_and_the_rest_kept() {
        let ec = "name = 'hpcs'\nversion = '0.3.0'\n\ncrates = [\n    ('old', '1'),\n]\nchecksums = [\n]\n\nmoduleclass = 'tools'\n";
        let (crates, _) = locked_crates(LOCK, "hpcs").unwrap();
        let out = with_crates(ec, &crates, "None,").unwrap();
        assert_eq!(
            out,
            "name = 'hpcs'\nversion = '0.3.0'\n\ncrates = [\n    ('alpha', '0.2.0'),\n    ('zeta', '1.0.0'),\n]\n\
             checksums = [\n    None,\n    {'alpha-0.2.0.tar.gz': 'aaaa'},\n    {'zeta-1.0.0.tar.gz': 'bbbb'},\n]\n\n\
             moduleclass = 'tools'\n"
        );
        assert_eq!(
            with_crates(&out, &crates, "None,").unwrap(),
            out,
            "idempotent"
        );
        assert_eq!(version_of(&out), Some("0.3.0"));
        let unclosed = with_crates("x = 1\ncrates = [\n    ('a', '1'),\n", &crates, "None,");
        assert!(unclosed.unwrap_err().contains("closing"));
        assert!(with_crates("x = 1\n", &crates, "None,")
            .unwrap_err()
            .contains("no line"));
    }
}
