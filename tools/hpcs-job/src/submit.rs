//! Writing the generated script to a file (mode 0700, replaced atomically)
//! and submitting it with `sbatch --parsable` ($HPCS_SBATCH or `sbatch`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::Error;

/// Writes `text` to `path` through a temporary file in the same directory.
pub fn write_script(path: &Path, text: &str) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::Write(format!("cannot write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Write(format!("{}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Submits the script (the file if given, else `text` on stdin) and returns
/// the job id printed by `sbatch --parsable`.
pub fn sbatch(file: Option<&Path>, text: &str) -> Result<String, Error> {
    let prog = std::env::var_os("HPCS_SBATCH").unwrap_or_else(|| "sbatch".into());
    let shown = prog.to_string_lossy().into_owned();
    let mut cmd = Command::new(&prog);
    cmd.arg("--parsable")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match file {
        Some(f) => {
            cmd.arg(f).stdin(Stdio::null());
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::Submit(format!(
            "cannot run {shown}: {e} (is Slurm installed here? set HPCS_SBATCH)"
        ))
    })?;
    if file.is_none() {
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| Error::Submit(format!("cannot send the script to {shown}: {e}")))?;
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Submit(format!("{shown} failed: {e}")))?;
    if !out.status.success() {
        return Err(Error::Submit(format!(
            "{shown} refused the job ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job = id.split(';').next().unwrap_or_default();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Err(Error::Submit(format!(
            "{shown} printed no job id (got {id:?})"
        )));
    }
    Ok(job.to_string())
}
