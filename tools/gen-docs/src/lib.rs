//! The generated packaging files of hpcs, and the tests that keep them
//! current:
//!
//! - man pages and shell completions of each user binary, rendered from its
//!   clap definition so that they never drift from `--help` ([`man`]), under
//!   `tools/packaging/man/` and `tools/packaging/completions/{bash,zsh,fish}/`;
//! - the `crates` and `checksums` lists of the EasyBuild easyconfig
//!   `tools/packaging/easybuild/hpcs-VERSION.eb`, from Cargo.lock
//!   ([`easyconfig`]).
//!
//! The Debian package, the easyconfig and the Spack package install the
//! committed files. Each binary has a test next to its (private) `Cli`,
//! [`docs_are_current!`], that calls [`assert_current`] with
//! `Cli::command()`, so new flags and subcommands are picked up by
//! construction; and this crate's own test
//! calls [`assert_easyconfig_current`]: they fail when a committed file
//! differs from what the current code generates, is missing, or belongs to
//! a subcommand that no longer exists. With `HPCS_WRITE_DOCS=1` the same
//! tests rewrite the files instead (`tools/packaging/gen-docs.sh`).

pub mod easyconfig;
pub mod files;
pub mod man;

use std::path::{Path, PathBuf};

/// Environment variable that makes the checks write the files instead.
pub const WRITE_ENV: &str = "HPCS_WRITE_DOCS";

/// The command that regenerates every generated file.
const REGENERATE: &str = "tools/packaging/gen-docs.sh";

/// The directory the generated files live in (`tools/packaging`).
pub fn packaging_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

fn write_mode() -> bool {
    std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1")
}

/// The test each binary runs: the committed man pages and completions of
/// `cmd` are current. `exit_table` is `hpcs::exit::TABLE` for a program
/// that uses the shared exit codes, `None` for one whose `--help` lists its
/// own. With `HPCS_WRITE_DOCS=1` it writes them instead.
///
/// # Panics
/// When a file is stale, naming the files and the command that fixes them.
pub fn assert_current(cmd: clap::Command, exit_table: Option<&[(u8, &str)]>) {
    let program = cmd.get_name().to_string();
    let generated = man::generate(cmd, exit_table);
    let dir = packaging_dir();
    if write_mode() {
        files::write(&dir, &program, &generated).expect("writing the generated docs");
        return;
    }
    let drift = files::compare(&dir, &program, &generated);
    assert!(
        drift.is_empty(),
        "the committed man pages or completions of {program} under {} are stale \
         (differ: {:?}, missing: {:?}, no longer generated: {:?}); \
         regenerate them with {REGENERATE} and commit the result",
        dir.display(),
        drift.differ,
        drift.missing,
        drift.extra
    );
}

/// Defines the test `man_pages_and_completions_are_current` that a binary
/// puts next to its `Cli`: `docs_are_current!(Cli, Some(hpcs::exit::TABLE))`
/// (`None` for a program with exit codes of its own); see [`assert_current`].
#[macro_export]
macro_rules! docs_are_current {
    ($cli:ty, $exit_table:expr) => {
        /// The committed man pages and completions (tools/packaging) are
        /// what this command line generates (tools/packaging/gen-docs.sh
        /// rewrites them).
        #[test]
        fn man_pages_and_completions_are_current() {
            $crate::assert_current(<$cli as clap::CommandFactory>::command(), $exit_table);
        }
    };
}

/// The first entry of the easyconfig's `checksums`: the project's own
/// tarball, which cannot name its own checksum (see the easyconfig).
const MAIN_CHECKSUM: &str =
    "None,  # %(name)s-%(version)s.tar.gz: the release's SHA-256 goes here (see above)";

/// The easyconfig for the workspace's version exists, says that version, and
/// its `crates` and `checksums` lists are Cargo.lock's crates.io packages.
/// With `HPCS_WRITE_DOCS=1` it rewrites the two lists instead.
///
/// # Panics
/// When the easyconfig is missing or stale, saying what to do.
pub fn assert_easyconfig_current() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).expect("reading Cargo.lock");
    let (crates, version) =
        easyconfig::locked_crates(&lock, "hpcs").unwrap_or_else(|e| panic!("{e}"));
    let path = packaging_dir().join(format!("easybuild/hpcs-{version}.eb"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the workspace is at version {version}: rename the easyconfig to this name \
             and set its version",
            path.display()
        )
    });
    assert_eq!(
        easyconfig::version_of(&text),
        Some(version.as_str()),
        "{}: `version = '...'` must be the workspace's",
        path.display()
    );
    let want = easyconfig::with_crates(&text, &crates, MAIN_CHECKSUM)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if write_mode() {
        let tmp = path.with_extension("eb.tmp");
        std::fs::write(&tmp, &want).expect("writing the easyconfig");
        std::fs::rename(&tmp, &path).expect("renaming the easyconfig into place");
        return;
    }
    assert!(
        text == want,
        "{}: its crate list differs from Cargo.lock; regenerate it with {REGENERATE} and commit the result",
        path.display()
    );
}
