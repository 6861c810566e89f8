//! `hpcs-pack inspect`: the header facts anyone can read, and with an
//! identity the sealed recipient list and the file tree; as text, or as one
//! line of JSON (`--json`, fields in the order of [`Report`]).

use std::io::Write;

use serde::Serialize;

use hpcs::crypto::header::{STANZA_AGE, STANZA_RECIPIENTS, STANZA_VAULT};
use hpcs::crypto::index::Kind;
use hpcs::crypto::{Archive, FileSource, Header};
use hpcs::exit::{self, Fail};
use hpcs::keys::stanzas::recipients_note;

use crate::cli;

/// `inspect --json`: one object; `recipients` and `entries` only with -i.
#[derive(Serialize)]
struct Report<'a> {
    archive: String,
    format_version: u32,
    cipher: &'static str,
    chunk_size: u32,
    archive_id: String,
    pin: String,
    data_len: u64,
    index_len: u64,
    archive_len: u64,
    stanzas: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    recipients: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<Vec<Entry>>,
}

/// One entry of the tree (the root is left out).
#[derive(Serialize)]
struct Entry {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: u16,
    size: u64,
    mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

fn stanza_name(kind: u16) -> String {
    match kind {
        STANZA_AGE => "age".to_string(),
        STANZA_RECIPIENTS => "recipient-list (sealed)".to_string(),
        STANZA_VAULT => "vault".to_string(),
        k => format!("unknown type {k}"),
    }
}

pub fn inspect(a: cli::InspectArgs) -> Result<(), Fail> {
    let sealed = crate::open_sealed(&a.archive)?;
    let h = sealed.header().clone();
    let stanza_names: Vec<String> = h.stanzas.iter().map(|s| stanza_name(s.kind)).collect();
    let unlocked = if a.id.identities.is_empty() {
        None
    } else {
        let key = crate::load_key(&a.archive, &sealed, &a.id.identities)?;
        let recips = recipients_note(&key, &h);
        let archive = sealed
            .unlock(&key)
            .map_err(|e| crate::archive_fail(&a.archive, &e))?;
        Some((archive, recips))
    };
    let mut out = std::io::stdout().lock();
    let res = if a.json {
        let report = Report {
            archive: a.archive.display().to_string(),
            format_version: 1,
            cipher: h.suite.name(),
            chunk_size: h.chunk_size,
            archive_id: h.archive_id_hex(),
            pin: h.pin().to_string(),
            data_len: h.data_len,
            index_len: h.index_len,
            archive_len: h.archive_len(),
            stanzas: &stanza_names,
            recipients: unlocked.as_ref().map(|(_, r)| r.as_slice()),
            entries: unlocked.as_ref().map(|(archive, _)| entries(archive)),
        };
        serde_json::to_string(&report)
            .map_err(std::io::Error::other)
            .and_then(|j| writeln!(out, "{j}"))
    } else {
        text(&mut out, &a, &h, &stanza_names, unlocked.as_ref())
    };
    res.map_err(|e| Fail::new(exit::OUTPUT, format!("cannot write to stdout: {e}")))
}

fn entries(archive: &Archive<FileSource>) -> Vec<Entry> {
    let t = archive.tree();
    (1..t.len() as u32)
        .map(|id| {
            let n = t.node(id).expect("id < len");
            Entry {
                path: String::from_utf8_lossy(&t.path(id)).into_owned(),
                kind: match n.kind {
                    Kind::Dir { .. } => "dir",
                    Kind::File { .. } => "file",
                    Kind::Symlink { .. } => "symlink",
                },
                mode: n.mode,
                size: n.size(),
                mtime: n.mtime,
                target: t
                    .symlink_target(id)
                    .map(|s| String::from_utf8_lossy(s).into_owned()),
            }
        })
        .collect()
}

fn text(
    out: &mut impl Write,
    a: &cli::InspectArgs,
    h: &Header,
    stanza_names: &[String],
    unlocked: Option<&(Archive<FileSource>, Vec<String>)>,
) -> std::io::Result<()> {
    let archive_len = h.archive_len();
    let overhead = if h.data_len > 0 {
        (archive_len as f64 - h.data_len as f64) / h.data_len as f64 * 100.0
    } else {
        0.0
    };
    writeln!(out, "archive:      {}", a.archive.display())?;
    writeln!(out, "format:       hpcs archive v1")?;
    writeln!(out, "cipher:       {}", h.suite.name())?;
    writeln!(out, "chunk size:   {} bytes", h.chunk_size)?;
    writeln!(out, "archive id:   {}", h.archive_id_hex())?;
    writeln!(out, "pin:          {}", h.pin())?;
    writeln!(out, "data:         {} bytes", h.data_len)?;
    writeln!(out, "index:        {} bytes (encrypted)", h.index_len)?;
    writeln!(
        out,
        "archive size: {} bytes ({:.3}% over the data)",
        archive_len, overhead
    )?;
    writeln!(out, "key stanzas:  {}", stanza_names.join(", "))?;
    let Some((archive, recips)) = unlocked else {
        return writeln!(
            out,
            "(pass -i IDENTITY to see the recipients and the file tree)"
        );
    };
    writeln!(out, "recipients:   {}", recips.len())?;
    for r in recips {
        writeln!(out, "  {r}")?;
    }
    let t = archive.tree();
    writeln!(
        out,
        "entries:      {} ({} files)",
        t.len() - 1,
        t.file_count()
    )?;
    for id in 1..t.len() as u32 {
        let n = t.node(id).expect("id < len");
        let path = String::from_utf8_lossy(&t.path(id)).into_owned();
        let extra = match t.symlink_target(id) {
            Some(target) => format!(" -> {}", String::from_utf8_lossy(target)),
            None => String::new(),
        };
        writeln!(
            out,
            "{} {:>12} {} {}{}",
            mode_string(&n.kind, n.mode),
            n.size(),
            utc_time(n.mtime),
            path,
            extra
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, no time-zone database needed).
pub fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn mode_string(kind: &Kind, mode: u16) -> String {
    let t = match kind {
        Kind::Dir { .. } => 'd',
        Kind::File { .. } => '-',
        Kind::Symlink { .. } => 'l',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if mode & 0o1000 != 0 {
        s.pop();
        s.push('t');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc() {
        assert_eq!(utc_time(0), "1970-01-01 00:00");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_time(1_795_332_137), "2026-11-22 07:22");
        assert_eq!(utc_time(-60), "1969-12-31 23:59");
    }

    #[test]
    fn json_field_order_and_optional_fields() {
        let names = vec!["age".to_string(), "vault".to_string()];
        let recips = vec!["age1x".to_string()];
        let mut r = Report {
            archive: "a \"b\".hpcs".into(),
            format_version: 1,
            cipher: "aes-256-gcm",
            chunk_size: 65536,
            archive_id: "ab".into(),
            pin: "hpcspin1-x".into(),
            data_len: 3,
            index_len: 4,
            archive_len: 5,
            stanzas: &names,
            recipients: None,
            entries: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"archive":"a \"b\".hpcs","format_version":1,"cipher":"aes-256-gcm","chunk_size":65536,"archive_id":"ab","pin":"hpcspin1-x","data_len":3,"index_len":4,"archive_len":5,"stanzas":["age","vault"]}"#
        );
        r.recipients = Some(&recips);
        r.entries = Some(vec![
            Entry {
                path: "d".into(),
                kind: "dir",
                mode: 0o755,
                size: 0,
                mtime: -1,
                target: None,
            },
            Entry {
                path: "d/l".into(),
                kind: "symlink",
                mode: 0o777,
                size: 3,
                mtime: 7,
                target: Some("../x".into()),
            },
        ]);
        let j = serde_json::to_string(&r).unwrap();
        assert!(
            j.ends_with(r#""stanzas":["age","vault"],"recipients":["age1x"],"entries":[{"path":"d","type":"dir","mode":493,"size":0,"mtime":-1},{"path":"d/l","type":"symlink","mode":511,"size":3,"mtime":7,"target":"../x"}]}"#),
            "{j}"
        );
    }

    #[test]
    fn modes() {
        let file = Kind::File {
            offset: 0,
            size: 0,
            inode: 1,
            nlink: 1,
        };
        assert_eq!(mode_string(&file, 0o640), "-rw-r-----");
        assert_eq!(
            mode_string(&Kind::Dir { first: 0, count: 0 }, 0o1777),
            "drwxrwxrwt"
        );
    }
}
