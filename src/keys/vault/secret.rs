//! [`Secret`]: a token, password or JWT held in memory, wiped on drop and
//! never printed. A leaf: it imports nothing else of `crate::keys`.

use zeroize::Zeroize;

/// A token, password or JWT: wiped on drop, never printed.
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The secret, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("s.hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
