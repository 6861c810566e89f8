//! `hpcs-pack c4gh-ref`: a reference archive over `.c4gh` files
//! (`hpcs::reference`), keyed like any archive (`pack_cmd::Keying`); and
//! loading the user's Crypt4GH secret key, shared with `results`.

use hpcs::crypt4gh::{Error as C4ghError, SecretKey};
use hpcs::crypto::{Suite, WriteOptions};
use hpcs::exit::{self, Fail};
use hpcs::reference::Placement;

use crate::cli::{C4ghKeyArgs, C4ghRefArgs};
use crate::pack_cmd::Keying;
use crate::{install_signal_handlers, secret_input, STOP};

/// Loads the Crypt4GH secret key of `a` (`--sk`, required here), asking
/// for its passphrase only when it has one: from --passphrase-file, else
/// $C4GH_PASSPHRASE, else the terminal.
pub fn load_secret_key(a: &C4ghKeyArgs) -> Result<SecretKey, Fail> {
    let path = a.sk.as_ref().ok_or_else(|| {
        Fail::new(
            exit::USAGE,
            "give your Crypt4GH secret key with --sk KEY (the key the .c4gh files are encrypted to)",
        )
    })?;
    let fail = |e: C4ghError| match e {
        C4ghError::Io(e) => Fail::new(
            exit::INPUT,
            format!("cannot read Crypt4GH secret key {}: {e}", path.display()),
        ),
        e => Fail::new(
            exit::C4GH_KEY,
            format!("Crypt4GH secret key {}: {e}", path.display()),
        ),
    };
    match SecretKey::read_file(path, None) {
        Err(C4ghError::PassphraseRequired) => {}
        r => return r.map_err(fail),
    }
    let pass = match (&a.passphrase_file, std::env::var("C4GH_PASSPHRASE")) {
        (Some(f), _) => secret_input::first_line(f, "passphrase file")?,
        (None, Ok(p)) => hpcs::keys::vault::Secret::new(p),
        (None, Err(_)) => secret_input::prompt(
            &format!("Passphrase for {}: ", path.display()),
            exit::C4GH_KEY,
            "the Crypt4GH secret key has a passphrase and there is no terminal to ask for it: use --passphrase-file FILE or set C4GH_PASSPHRASE",
        )?,
    };
    SecretKey::read_file(path, Some(pass.expose().as_bytes())).map_err(fail)
}

pub fn c4gh_ref(a: C4ghRefArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let suite = Suite::from_name(&a.cipher)
        .ok_or_else(|| Fail::new(exit::USAGE, format!("unknown cipher {:?}", a.cipher)))?;
    let opts = WriteOptions {
        suite,
        ..WriteOptions::default()
    };
    let keying = Keying::prepare(&a.new, &a.output, suite)?;
    let placement = if a.absolute {
        Placement::Absolute
    } else {
        Placement::Relative
    };
    let scan = {
        let sk = load_secret_key(&a.c4gh)?;
        hpcs::reference::scan(&a.inputs, &a.output, &sk, placement)?
    };
    for w in &scan.warnings {
        hpcs::warn!("{}", w.0);
    }
    let (packed, secs) = keying.write(
        a.new.quiet,
        scan.data_len,
        "authenticating",
        |k, id, st, p| {
            hpcs::reference::write(&scan, &a.output, a.new.force, &opts, k, id, st, p, &STOP)
        },
    )?;
    if !a.new.quiet {
        eprintln!(
            "referenced {} Crypt4GH files ({} bytes to show; every segment of {} bytes authenticated) in {} ({} bytes, {}) in {:.2}s, {:.0} MB/s",
            scan.files(),
            scan.shown_bytes,
            scan.c4gh_bytes,
            a.output.display(),
            packed.archive_len,
            suite.name(),
            secs,
            scan.c4gh_bytes as f64 / secs / 1e6
        );
        eprintln!(
            "pin: {} (mount it with hpcs-mount --pin PIN, or give hpcs-job ARCHIVE@PIN)",
            packed.header.pin()
        );
        if !a.absolute {
            eprintln!(
                "the archive names the files relative to its own directory: keep them together, or pack with --absolute"
            );
        }
    }
    keying.commit(&a.output, a.new.quiet)
}
