//! Secrets typed by the user: a passphrase or password read from the first
//! line of a file, or from the terminal with echo off (never from the
//! command line, where other users could see it). Shared by the Vault login
//! and the Crypt4GH secret key.

use std::io::{BufRead, Write};
use std::path::Path;

use hpcs::exit::{self, Fail};
use hpcs::keys::vault::Secret;

/// The first line of `p` (without its line end); `what` names the file in
/// errors ("password file").
pub fn first_line(p: &Path, what: &str) -> Result<Secret, Fail> {
    let unreadable = |e: std::io::Error| {
        Fail::new(
            exit::INPUT,
            format!("cannot read {what} {}: {e}", p.display()),
        )
    };
    let f = std::fs::File::open(p).map_err(unreadable)?;
    let mut line = String::new();
    std::io::BufReader::new(f)
        .read_line(&mut line)
        .map_err(unreadable)?;
    let s = Secret::new(line.trim_end_matches(['\n', '\r']).to_string());
    zero(&mut line);
    Ok(s)
}

fn zero(s: &mut str) {
    // SAFETY: writing zero bytes keeps the String valid UTF-8.
    unsafe { s.as_bytes_mut().fill(0) };
}

/// Reads a secret from the controlling terminal with echo off, after
/// `prompt`. Without a terminal: `code` and `no_tty` (which says what to do
/// instead).
pub fn prompt(prompt: &str, code: u8, no_tty: &str) -> Result<Secret, Fail> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| Fail::new(code, no_tty))?;
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid open fd.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal for the lifetime of `tty`.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have_termios {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above; `quiet` is a valid termios copied from the terminal.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut w = &tty;
    let _ = w.write_all(prompt.as_bytes());
    let _ = w.flush();
    let mut line = String::new();
    let res = std::io::BufReader::new(&tty).read_line(&mut line);
    if have_termios {
        // SAFETY: restores the settings read above on the same fd.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    res.map_err(|e| Fail::new(code, format!("cannot read from the terminal: {e}")))?;
    let s = Secret::new(line.trim_end_matches(['\n', '\r']).to_string());
    zero(&mut line);
    Ok(s)
}
