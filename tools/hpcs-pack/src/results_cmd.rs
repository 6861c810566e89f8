//! `hpcs-pack results verify|decrypt`: checks a job's encrypted results
//! (RESULTS.md) and decrypts the complete, authentic ones.

use hpcs::exit::{self, Fail};
use hpcs::keys;
use hpcs::results::{
    self, DirReport, FileReport, Placing, ReadError, ResultKeys, RunReport, Status,
};

use crate::cli::ResultsCommand;

pub fn run(c: ResultsCommand) -> Result<(), Fail> {
    let (a, dest, as_c4gh) = match c {
        ResultsCommand::Verify(a) => (a, None, false),
        ResultsCommand::Decrypt(d) => (d.common, Some(d.output), d.as_c4gh),
    };
    let archive = crate::unlock(&a.archive, &a.id.identities)?;
    let mut ids = keys::load_identities(&a.id.identities[0])?;
    for p in &a.id.identities[1..] {
        ids.extend(keys::load_identities(p)?);
    }
    let c4gh = match &a.c4gh.sk {
        Some(_) => Some(crate::c4gh_cmd::load_secret_key(&a.c4gh)?),
        None => None,
    };
    let keys = ResultKeys { age: ids, c4gh };
    let dir = &a.dir;
    if !dir.is_dir() {
        return Err(Fail::new(
            exit::INPUT,
            format!(
                "{}: not a directory (give the results directory the job wrote into)",
                dir.display()
            ),
        ));
    }
    let placing = match (&dest, as_c4gh) {
        (None, _) => Placing::Nothing,
        (Some(d), false) => Placing::Decrypted(d),
        (Some(d), true) => Placing::Crypt4gh(d),
    };
    let report = results::check_dir(
        dir,
        &keys,
        archive.results_key(),
        &archive.header().archive_id,
        placing,
    )
    .map_err(|e| match e {
        e @ ReadError::NoCrypt4ghKey => Fail::new(
            exit::BAD_IDENTITY,
            format!("{}: {e}", dir.display()),
        ),
        ReadError::NoIdentity => Fail::new(
            exit::WRONG_KEY,
            format!(
                "{}: none of the given identities decrypts these results; give the identity whose recipient the job used (--output-recipient)",
                dir.display()
            ),
        ),
        e @ ReadError::WrongArchive { .. } => Fail::new(
            exit::WRONG_KEY,
            format!(
                "{}: {e}; give with --archive the archive the job mounted first",
                dir.display()
            ),
        ),
        ReadError::Io(e) => Fail::new(
            if dest.is_some() { exit::OUTPUT } else { exit::INPUT },
            format!("{}: {e}", dir.display()),
        ),
        ReadError::Bad(why) => Fail::new(exit::RESULTS_TAMPERED, why),
    })?;
    print_report(&report, a.quiet);
    if report.runs.is_empty() && report.unattributed.is_empty() {
        return Err(Fail::new(
            exit::RESULTS_INCOMPLETE,
            format!("{}: no results in this directory", dir.display()),
        ));
    }
    if report.tampered() {
        return Err(Fail::new(
            exit::RESULTS_TAMPERED,
            "some results failed authentication or contradict their manifest (listed above); do not trust them",
        ));
    }
    if report.incomplete() {
        return Err(Fail::new(
            exit::RESULTS_INCOMPLETE,
            "the results are incomplete (listed above): the job or its node was interrupted, or files were removed",
        ));
    }
    let exists = report
        .runs
        .iter()
        .flat_map(|r| &r.files)
        .any(|f| matches!(&f.status, Status::Exists(_)));
    if exists {
        return Err(Fail::new(
            exit::OUTPUT_EXISTS,
            "some results were not written because the file exists (listed above)",
        ));
    }
    Ok(())
}

fn show_path(f: &FileReport) -> String {
    f.path.as_deref().map_or_else(
        || f.object.clone(),
        |p| String::from_utf8_lossy(p).into_owned(),
    )
}

fn print_report(r: &DirReport, quiet: bool) {
    for run in &r.runs {
        print_run(run, quiet);
    }
    for f in &r.unattributed {
        print_file(f, quiet);
    }
    if !quiet && !r.other.is_empty() {
        println!("ignored (not results): {}", r.other.join(", "));
    }
}

fn print_run(run: &RunReport, quiet: bool) {
    let id = hpcs::util::hex(&run.run);
    let complete = run
        .files
        .iter()
        .filter(|f| f.status == Status::Complete)
        .count();
    match &run.manifest {
        Some(Ok(m)) if !quiet => println!(
            "run {id} on {} (job {}, {} to {} UTC): manifest authentic, {complete} of {} result(s) complete",
            m.info.host,
            m.info.job,
            crate::inspect::utc_time(m.info.started as i64),
            crate::inspect::utc_time(m.finished as i64),
            m.body.files.len() + m.body.open.len(),
        ),
        Some(Ok(_)) => {}
        Some(Err(why)) => println!("run {id}: MANIFEST TAMPERED: {why}"),
        None => println!(
            "run {id}: NO MANIFEST: the mount did not end cleanly (job or node interrupted); the {complete} complete result(s) below are authentic, but others may be missing"
        ),
    }
    for f in &run.files {
        print_file(f, quiet);
    }
}

fn print_file(f: &FileReport, quiet: bool) {
    let p = show_path(f);
    match &f.status {
        Status::Complete if quiet => {}
        Status::Complete => {
            let size = f.size.map_or(String::new(), |s| format!(" ({s} bytes)"));
            match &f.written {
                Some(w) => println!("  ok          {p}{size} -> {}", w.display()),
                None => println!("  ok          {p}{size}"),
            }
        }
        Status::Incomplete(why) => println!("  INCOMPLETE  {p}: {why}"),
        Status::Tampered(why) => println!("  TAMPERED    {p} ({}): {why}", f.object),
        Status::Missing => println!(
            "  MISSING     {p}: listed in the manifest, but {} is gone",
            f.object
        ),
        Status::Exists(to) => println!(
            "  EXISTS      {p}: not written, {} already exists (never overwritten)",
            to.display()
        ),
        Status::Unlisted => println!(
            "  unlisted    {p} ({}): authentic but not in the manifest (deleted by the job, or put back); ignored",
            f.object
        ),
    }
}
