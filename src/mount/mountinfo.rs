//! The mount table as this process sees it (`/proc/self/mountinfo`): which
//! paths are mount points, of what type and from what source. Used to refuse
//! a mount point that is already mounted on and to check that `--unmount`
//! only ever touches an hpcs mount.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One line of the mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (octal escapes undone).
    pub point: PathBuf,
    /// Filesystem type (`fuse.hpcs`, `ext4`, ...).
    pub fstype: String,
    /// Mount source (`hpcs`, `/dev/sda1`, ...).
    pub source: String,
}

impl Mount {
    /// True for a mount served by hpcs-mount: type `fuse.hpcs`, or plain
    /// `fuse` with source `hpcs` (as some fusermount3 versions record it).
    pub fn is_hpcs(&self) -> bool {
        self.fstype == "fuse.hpcs" || (self.fstype == "fuse" && self.source == "hpcs")
    }
}

/// The mount table of this process, in mount order (empty if unreadable).
pub fn mounts() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Parses mountinfo text; lines that do not have its shape are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let source = r.next().unwrap_or("").to_string();
            Some(Mount {
                point: PathBuf::from(unescape(mp)),
                fstype,
                source,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (\040 space, \011 tab, \012, \134).
pub fn unescape(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsStr::from_bytes(&out).to_os_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/mnt/a\040b"), OsString::from("/mnt/a b"));
        assert_eq!(unescape(r"/x\011y\012z"), OsString::from("/x\ty\nz"));
        assert_eq!(unescape(r"/back\134slash"), OsString::from(r"/back\slash"));
        // Non-ASCII bytes come back as bytes, not as UTF-8 text.
        assert_eq!(unescape(r"/\303\251").as_bytes(), "/é".as_bytes());
    }

    #[test]
    fn unescape_leaves_what_is_not_an_escape() {
        assert_eq!(unescape(r"/a\08b"), OsString::from(r"/a\08b"));
        assert_eq!(unescape(r"/a\"), OsString::from(r"/a\"));
        assert_eq!(unescape(r"/a\04"), OsString::from(r"/a\04"));
        assert_eq!(unescape("/plain"), OsString::from("/plain"));
    }

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /proc rw,nosuid - proc proc rw
97 22 0:55 / /scratch/my\\040data rw,nosuid,nodev,relatime shared:50 - fuse.hpcs hpcs ro,user_id=0
98 22 0:56 / /mnt/old rw - fuse hpcs ro
99 22 0:57 / /mnt/other rw - fuse.sshfs host:/x rw
not a mountinfo line
";

    #[test]
    fn parse_sample() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[0],
            Mount {
                point: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/sda1".into()
            }
        );
        assert_eq!(m[2].point, Path::new("/scratch/my data"));
        assert_eq!(m[2].fstype, "fuse.hpcs");
        let hpcs: Vec<_> = m.iter().filter(|m| m.is_hpcs()).map(|m| &m.point).collect();
        assert_eq!(hpcs, [Path::new("/scratch/my data"), Path::new("/mnt/old")]);
    }

    #[test]
    fn optional_fields_before_the_separator_do_not_move_the_point() {
        let m = parse("1 2 0:1 / /a rw shared:1 master:2 propagate_from:3 - tmpfs none rw");
        assert_eq!(m[0].point, Path::new("/a"));
        assert_eq!(
            (m[0].fstype.as_str(), m[0].source.as_str()),
            ("tmpfs", "none")
        );
    }

    #[test]
    fn this_process_sees_its_root() {
        assert!(mounts().iter().any(|m| m.point == Path::new("/")));
    }
}
