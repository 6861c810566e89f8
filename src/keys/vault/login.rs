//! How the data owner logs in on the secure device ([`UserLogin`]): a token
//! they already have ([`ambient_token`]: `BAO_TOKEN`, `VAULT_TOKEN`, the token
//! helper's file) or a password login (`userpass`, `ldap`). Passwords and
//! tokens stay in [`Secret`]s.

use serde_json::json;
use zeroize::Zeroize;

use super::conn::{client_token, CallErr, Conn};
use super::error::VaultError;
use super::secret::Secret;

/// How the data owner logs in on the secure device.
pub enum UserLogin {
    /// A token: `BAO_TOKEN`/`VAULT_TOKEN`, or the token helper file.
    Token(Secret),
    /// A password login (`userpass` or `ldap`): POST `auth/<mount>/login/<user>`.
    Password {
        /// Method name, for messages.
        method: String,
        /// Auth mount path.
        mount: String,
        /// User name.
        user: String,
        /// Password (read from a tty or a file, never from the command line).
        password: Secret,
    },
}

impl std::fmt::Debug for UserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserLogin::Token(_) => f.write_str("UserLogin::Token(<redacted>)"),
            UserLogin::Password {
                method,
                mount,
                user,
                ..
            } => f
                .debug_struct("UserLogin::Password")
                .field("method", method)
                .field("mount", mount)
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// The token the user already has: `BAO_TOKEN`, `VAULT_TOKEN`, else the
/// token helper's file `~/.vault-token` (written by `vault login`/`bao login`).
pub fn ambient_token() -> Option<Secret> {
    for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Some(Secret::new(t.trim().to_string()));
            }
        }
    }
    let home = std::env::var_os("HOME")?;
    let mut t = std::fs::read_to_string(std::path::Path::new(&home).join(".vault-token")).ok()?;
    let s = t.trim().to_string();
    t.zeroize();
    (!s.is_empty()).then(|| Secret::new(s))
}

/// The token for `login`: the one given, or a fresh one from a password login.
pub(super) fn login_user(c: &Conn, login: UserLogin) -> Result<Secret, VaultError> {
    match login {
        UserLogin::Token(t) => Ok(t),
        UserLogin::Password {
            method,
            mount,
            user,
            password,
        } => {
            let r = c.post(
                "log in",
                &format!("auth/{mount}/login/{user}"),
                json!({ "password": password.expose() }),
            );
            match r {
                Ok(v) => client_token(v.as_ref()).ok_or_else(|| {
                    VaultError::Login(format!("{method} login as {user} returned no token"))
                }),
                Err(
                    e @ CallErr::Api {
                        code: 400 | 401 | 403 | 404,
                        ..
                    },
                ) => Err(VaultError::Login(format!(
                    "{method} login as {user} at auth/{mount}/ refused ({})",
                    e.text()
                ))),
                Err(e) => Err(e.into_vault(&c.s.addr, "log in")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_print() {
        let l = UserLogin::Password {
            method: "userpass".into(),
            mount: "userpass".into(),
            user: "alice".into(),
            password: Secret::new("hunter2".into()),
        };
        assert!(!format!("{l:?}").contains("hunter2"));
    }
}
