//! `hpcs-pack results verify|decrypt`: checks a job's encrypted results
//! (RESULTS.md) and decrypts the complete, authentic ones.

use hpcs::exit::{self, Fail};
use hpcs::keys;
use hpcs::results::{self, DirReport, FileReport, ReadError, RunReport, Status};

use crate::cli::ResultsCommand;

pub fn run(c: ResultsCommand) -> Result<(), Fail> {
    let (a, dest) = match c {
        ResultsCommand::Verify(a) => (a, None),
        ResultsCommand::Decrypt(d) => (d.common, Some(d.output)),
    };
    let mut expected = Vec::new();
    for r in &a.expect_run {
        expected.push(hpcs::util::unhex_array::<16>(r).ok_or_else(|| {
            Fail::new(
                exit::USAGE,
                format!(
                    "--expect-run {r:?}: give a run id of 32 hex digits, as hpcs-job printed it"
                ),
            )
        })?);
    }
    let archive = crate::unlock(&a.archive, &a.id.identities)?;
    let mut ids = keys::load_identities(&a.id.identities[0])?;
    for p in &a.id.identities[1..] {
        ids.extend(keys::load_identities(p)?);
    }
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
    let check = |dest: Option<&std::path::Path>| {
        results::check_dir(
            dir,
            &ids,
            archive.results_key(),
            &archive.header().archive_id,
            dest,
        )
        .map_err(|e| read_fail(dir, dest.is_some(), e))
    };
    // With expected runs, check them before anything is written.
    if !expected.is_empty() {
        let seen = check(None)?;
        if let Err(f) = unexpected_runs(&seen, &expected) {
            print_report(&seen, a.quiet);
            return Err(f);
        }
    }
    let report = check(dest.as_deref())?;
    print_report(&report, a.quiet);
    if report.runs.is_empty() && report.unattributed.is_empty() {
        return Err(Fail::new(
            exit::RESULTS_INCOMPLETE,
            format!("{}: no results in this directory", dir.display()),
        ));
    }
    verdict(&report)
}

/// Refuses results of a run that was not expected, and expected runs that
/// left nothing in the directory (exit 19).
fn unexpected_runs(report: &DirReport, expected: &[[u8; 16]]) -> Result<(), Fail> {
    let hex = hpcs::util::hex;
    let extra: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !expected.contains(&r.run))
        .map(|r| hex(&r.run))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|e| !report.runs.iter().any(|r| &r.run == *e))
        .map(|e| hex(e))
        .collect();
    if extra.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let mut msg = String::new();
    if !extra.is_empty() {
        msg.push_str(&format!(
            "results of unexpected run(s) {}: not written by the job you expected (another job, an older run, or forged by someone holding the archive key)",
            extra.join(", ")
        ));
    }
    if !missing.is_empty() {
        if !msg.is_empty() {
            msg.push_str("; ");
        }
        msg.push_str(&format!(
            "no results of expected run(s) {} (the job did not run, or its results were removed)",
            missing.join(", ")
        ));
    }
    msg.push_str("; nothing was decrypted");
    Err(Fail::new(exit::UNEXPECTED_RUN, msg))
}

fn read_fail(dir: &std::path::Path, writing: bool, e: ReadError) -> Fail {
    match e {
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
            if writing { exit::OUTPUT } else { exit::INPUT },
            format!("{}: {e}", dir.display()),
        ),
        ReadError::Bad(why) => Fail::new(exit::RESULTS_TAMPERED, why),
    }
}

/// The exit code of a checked directory.
fn verdict(report: &DirReport) -> Result<(), Fail> {
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
