//! Shell quoting for values written into the generated bash script. Every
//! interpolated value goes through [`quote`], which single-quotes it (the only
//! bash quoting with no special characters inside), so no value can run code.

/// `s` as one bash word: `'...'` with each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A bash array literal `(w1 w2 ...)` of quoted words.
pub fn array<S: AsRef<str>>(words: &[S]) -> String {
    let inner: Vec<String> = words.iter().map(|w| quote(w.as_ref())).collect();
    format!("({})", inner.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Each string survives a round trip through bash unchanged.
    #[test]
    fn round_trips_through_bash() {
        let cases = [
            "",
            "plain",
            "two words",
            "it's",
            "'",
            "''",
            "$(touch /tmp/x)",
            "`id`",
            "a\nb",
            "back\\slash",
            "*",
            "~",
            "-n",
            "%j {root}",
            "\"dq\"",
            "!hist",
            "tab\there",
        ];
        for c in cases {
            let script = format!("printf '%s' {}", quote(c));
            let out = Command::new("bash")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("bash runs");
            assert!(out.status.success(), "{script}");
            assert_eq!(
                String::from_utf8(out.stdout).expect("utf-8"),
                c,
                "case {c:?}"
            );
        }
    }

    #[test]
    fn arrays_keep_word_boundaries() {
        let words = ["a b", "", "c'd"];
        let script = format!(
            "x={}; printf '<%s>' \"${{x[@]}}\"; echo \" ${{#x[@]}}\"",
            array(&words)
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert_eq!(
            String::from_utf8(out.stdout).expect("utf-8"),
            "<a b><><c'd> 3\n"
        );
    }

    #[test]
    fn quote_table() {
        assert_eq!(quote("a"), "'a'");
        assert_eq!(quote("a'b"), "'a'\\''b'");
        assert_eq!(array::<&str>(&[]), "()");
    }
}
