//! Where the Vault and SPIFFE settings come from, and in which order.
//!
//! Layers, lowest first; a later layer overrides only the fields it sets:
//!
//! 1. built-in defaults ([`DEFAULT_KV_MOUNT`] and friends);
//! 2. the archive's Vault stanza (what the packer used; mount side only);
//! 3. the system file `/etc/hpcs/config.toml`;
//! 4. the user's file `$HPCS_CONFIG`, else `$XDG_CONFIG_HOME/hpcs/config.toml`,
//!    else `~/.config/hpcs/config.toml`;
//! 5. the environment: `BAO_ADDR`/`VAULT_ADDR`, `BAO_CACERT`/`VAULT_CACERT`,
//!    `BAO_NAMESPACE`/`VAULT_NAMESPACE`, `SPIFFE_ENDPOINT_SOCKET`,
//!    `HPCS_VAULT_ALLOW_HTTP=1` (development only: allow plain `http://`);
//! 6. command-line flags.
//!
//! The site's files win over the archive because the site knows its own Vault
//! layout; the archive's stanza is a hint for archives packed at the same site.
//! This module owns parsing and checking only: no network, no secrets (tokens
//! are read by the login code in `vault/login.rs`, never from a config file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::vault::error::VaultError;
use super::vault::names::VaultRef;

/// Default KV v1 mount holding the key records.
pub const DEFAULT_KV_MOUNT: &str = "hpcs";
/// Default JWT auth mount (dedicated to hpcs; see docs/vault.md).
pub const DEFAULT_AUTH_MOUNT: &str = "hpcs-jwt";
/// Default JWT-SVID audience.
pub const DEFAULT_AUDIENCE: &str = "hpcs";
/// Default Vault address (the Vault/OpenBao CLI default).
pub const DEFAULT_ADDR: &str = "https://127.0.0.1:8200";
/// Default total time spent retrying transient failures.
pub const DEFAULT_RETRY_SECS: u64 = 30;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// The development switch that allows plain `http://` to Vault.
pub const ALLOW_HTTP_ENV: &str = "HPCS_VAULT_ALLOW_HTTP";
/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/hpcs/config.toml";

/// One layer of settings: every field optional; see the module doc for order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// Vault/OpenBao address (`https://host:8200`).
    pub addr: Option<String>,
    /// PEM file of CA certificates to trust for Vault's TLS certificate.
    pub ca_cert: Option<PathBuf>,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// KV v1 mount of the key records.
    pub kv_mount: Option<String>,
    /// JWT auth mount the workloads log in to.
    pub auth_mount: Option<String>,
    /// Audience of the JWT-SVID (the JWT role's `bound_audiences`).
    pub audience: Option<String>,
    /// Seconds to keep retrying transient failures (connection refused, 5xx, 429).
    pub retry_secs: Option<u64>,
    /// Seconds before one request times out.
    pub timeout_secs: Option<u64>,
    /// Workload API endpoint (`unix:///path`), as in `SPIFFE_ENDPOINT_SOCKET`.
    pub spiffe_socket: Option<String>,
    /// How a user logs in on the secure device: `token`, `userpass` or `ldap`.
    pub login: Option<String>,
    /// Auth mount of that login (default: the method's name).
    pub login_mount: Option<String>,
    /// User name for `userpass`/`ldap` logins.
    pub user: Option<String>,
    /// Allow plain `http://` to Vault, even on loopback (default false: a
    /// token or JWT-SVID sent in clear text goes to whoever holds the port).
    /// Development only; also set by `HPCS_VAULT_ALLOW_HTTP=1`.
    pub allow_insecure_http: Option<bool>,
}

macro_rules! merge_fields {
    ($low:ident, $high:ident; $($f:ident),*) => {
        Layer { $($f: $high.$f.or($low.$f)),* }
    };
}

impl Layer {
    /// `self` overridden by every field `higher` sets.
    pub fn under(self, higher: Layer) -> Layer {
        let low = self;
        let high = higher;
        merge_fields!(low, high; addr, ca_cert, namespace, kv_mount, auth_mount, audience,
            retry_secs, timeout_secs, spiffe_socket, login, login_mount, user, allow_insecure_http)
    }

    /// The settings an archive's Vault stanza names (its lowest layer).
    pub fn from_stanza(r: &VaultRef) -> Layer {
        Layer {
            kv_mount: Some(r.mount.clone()),
            auth_mount: Some(r.auth_mount.clone()),
            audience: Some(r.audience.clone()),
            ..Layer::default()
        }
    }

    /// Layer from the environment (`env` is `std::env::var` in production).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
        let pick = |a: &str, b: &str| env(a).or_else(|| env(b)).filter(|v| !v.is_empty());
        Layer {
            addr: pick("BAO_ADDR", "VAULT_ADDR"),
            ca_cert: pick("BAO_CACERT", "VAULT_CACERT").map(PathBuf::from),
            namespace: pick("BAO_NAMESPACE", "VAULT_NAMESPACE"),
            spiffe_socket: env("SPIFFE_ENDPOINT_SOCKET").filter(|v| !v.is_empty()),
            allow_insecure_http: env(ALLOW_HTTP_ENV).filter(|v| v == "1").map(|_| true),
            ..Layer::default()
        }
    }

    /// Parses one config file's text (`path` is for messages).
    pub fn parse_file(text: &str, path: &Path) -> Result<Layer, VaultError> {
        let f: FileConfig = toml::from_str(text)
            .map_err(|e| VaultError::Config(format!("{}: {}", path.display(), e.message())))?;
        let v = f.vault.unwrap_or_default();
        let s = f.spiffe.unwrap_or_default();
        Ok(Layer {
            addr: v.addr,
            ca_cert: v.ca_cert,
            namespace: v.namespace,
            kv_mount: v.kv_mount,
            auth_mount: v.auth_mount,
            audience: v.audience,
            retry_secs: v.retry_secs,
            timeout_secs: v.timeout_secs,
            spiffe_socket: s.endpoint_socket,
            login: v.login,
            login_mount: v.login_mount,
            user: v.user,
            allow_insecure_http: v.allow_insecure_http,
        })
    }

    /// Reads a config file; a missing file is an empty layer.
    pub fn read_file(path: &Path) -> Result<Layer, VaultError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Layer::parse_file(&t, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layer::default()),
            Err(e) => Err(VaultError::Config(format!(
                "cannot read config file {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The user's config file: `$HPCS_CONFIG`, else `$XDG_CONFIG_HOME/hpcs/config.toml`,
/// else `$HOME/.config/hpcs/config.toml`.
pub fn user_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = env("HPCS_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|v| v.starts_with('/')) {
        return Some(Path::new(&x).join("hpcs/config.toml"));
    }
    env("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| Path::new(&h).join(".config/hpcs/config.toml"))
}

/// Files, then environment, then `flags`: everything except the archive's
/// stanza, which [`Layer::resolve`] puts underneath.
pub fn load(flags: Layer) -> Result<Layer, VaultError> {
    let env = |k: &str| std::env::var(k).ok();
    let system = Layer::read_file(Path::new(SYSTEM_CONFIG))?;
    let user = match user_config_path(&env) {
        Some(p) => Layer::read_file(&p)?,
        None => Layer::default(),
    };
    Ok(system.under(user).under(Layer::from_env(&env)).under(flags))
}

/// Called with a one-line notice when an operation is being retried.
pub type Notice = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Checked settings for talking to Vault and the Workload API.
#[derive(Clone)]
pub struct Settings {
    /// Vault address, checked: `https://…` (`http://` only with the development switch).
    pub addr: String,
    /// Extra CA certificates (PEM file) for Vault's TLS certificate.
    pub ca_cert: Option<PathBuf>,
    /// Namespace header, if any.
    pub namespace: Option<String>,
    /// KV v1 mount of the key records.
    pub kv_mount: String,
    /// JWT auth mount.
    pub auth_mount: String,
    /// JWT-SVID audience.
    pub audience: String,
    /// Total retry budget for transient failures.
    pub retry: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Workload API endpoint; `None` means `SPIFFE_ENDPOINT_SOCKET`.
    pub spiffe_socket: Option<String>,
    /// Login method name for users (`token`, `userpass`, `ldap`).
    pub login: Option<String>,
    /// Auth mount of the user login.
    pub login_mount: Option<String>,
    /// User name for password logins.
    pub user: Option<String>,
    /// Where retry notices go (stderr in the binaries; nowhere by default).
    pub notice: Option<Notice>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing here is secret, but keep the callback out.
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("ca_cert", &self.ca_cert)
            .field("namespace", &self.namespace)
            .field("kv_mount", &self.kv_mount)
            .field("auth_mount", &self.auth_mount)
            .field("audience", &self.audience)
            .field("retry", &self.retry)
            .field("spiffe_socket", &self.spiffe_socket)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Sends a retry notice, if anyone listens.
    pub fn notify(&self, msg: &str) {
        if let Some(n) = &self.notice {
            n(msg)
        }
    }
}

impl Layer {
    /// Checks the merged layer (with the archive's stanza, if any, underneath)
    /// and fills in defaults.
    pub fn resolve(self, stanza: Option<&VaultRef>) -> Result<Settings, VaultError> {
        let l = match stanza {
            Some(r) => Layer::from_stanza(r).under(self),
            None => self,
        };
        let addr = l.addr.unwrap_or_else(|| DEFAULT_ADDR.to_string());
        check_addr(&addr, l.allow_insecure_http.unwrap_or(false))?;
        let kv_mount = l.kv_mount.unwrap_or_else(|| DEFAULT_KV_MOUNT.into());
        let auth_mount = l.auth_mount.unwrap_or_else(|| DEFAULT_AUTH_MOUNT.into());
        for (what, m) in [("KV mount", &kv_mount), ("auth mount", &auth_mount)] {
            if !valid_mount(m) {
                return Err(VaultError::Config(format!(
                    "invalid {what} {m:?}: use letters, digits, '-', '_', '.' and inner '/'"
                )));
            }
        }
        let audience = l.audience.unwrap_or_else(|| DEFAULT_AUDIENCE.into());
        if audience.is_empty() || audience.contains(['*', ',']) || audience.len() > 256 {
            return Err(VaultError::Config(format!("invalid audience {audience:?}")));
        }
        if let Some(ns) = &l.namespace {
            if ns.contains(char::is_control) {
                return Err(VaultError::Config("invalid namespace".into()));
            }
        }
        if let Some(l) = &l.login {
            if !["token", "userpass", "ldap"].contains(&l.as_str()) {
                return Err(VaultError::Config(format!(
                    "unknown login method {l:?}: use token, userpass or ldap"
                )));
            }
        }
        Ok(Settings {
            addr: addr.trim_end_matches('/').to_string(),
            ca_cert: l.ca_cert,
            namespace: l.namespace,
            kv_mount,
            auth_mount,
            audience,
            retry: Duration::from_secs(l.retry_secs.unwrap_or(DEFAULT_RETRY_SECS).min(3600)),
            timeout: Duration::from_secs(
                l.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).clamp(1, 600),
            ),
            spiffe_socket: l.spiffe_socket,
            login: l.login,
            login_mount: l.login_mount,
            user: l.user,
            notice: None,
        })
    }
}

fn valid_mount(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 128
        && !m.starts_with('/')
        && !m.ends_with('/')
        && !m.contains("//")
        && m.split('/').all(|s| s != "." && s != "..")
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn check_addr(addr: &str, allow_http: bool) -> Result<(), VaultError> {
    let url = reqwest::Url::parse(addr)
        .map_err(|e| VaultError::Config(format!("invalid Vault address {addr:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(VaultError::Config(format!(
                "refusing plain http to {addr}: whoever holds that port (on loopback, any other user on this node who binds it first) or watches the network receives this process's JWT-SVID or token and can replay it while it is valid; use https:// (with ca_cert or BAO_CACERT for a private CA), or for development only set {ALLOW_HTTP_ENV}=1 (or allow_insecure_http = true in the [vault] section of the config file)"
            )))
        }
        s => {
            return Err(VaultError::Config(format!(
                "invalid Vault address {addr:?}: scheme {s:?} (use https://host:8200)"
            )))
        }
    }
    if url.host().is_none() || !url.path().trim_matches('/').is_empty() || url.query().is_some() {
        return Err(VaultError::Config(format!(
            "invalid Vault address {addr:?}: give only scheme, host and port"
        )));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    vault: Option<FileVault>,
    spiffe: Option<FileSpiffe>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileVault {
    addr: Option<String>,
    ca_cert: Option<PathBuf>,
    namespace: Option<String>,
    kv_mount: Option<String>,
    auth_mount: Option<String>,
    audience: Option<String>,
    retry_secs: Option<u64>,
    timeout_secs: Option<u64>,
    login: Option<String>,
    login_mount: Option<String>,
    user: Option<String>,
    allow_insecure_http: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSpiffe {
    endpoint_socket: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn layers_override_in_order() {
        let file = Layer::parse_file(
            "[vault]\naddr = \"https://file:8200\"\naudience = \"site\"\n[spiffe]\nendpoint_socket = \"unix:///f\"\n",
            Path::new("x"),
        )
        .unwrap();
        let env = Layer::from_env(&env_of(&[
            ("VAULT_ADDR", "https://env:8200"),
            ("SPIFFE_ENDPOINT_SOCKET", "unix:///e"),
        ]));
        let flags = Layer {
            addr: Some("https://flag:8200".into()),
            ..Layer::default()
        };
        let stanza = VaultRef::new("alice/x", "kvs", "jwts", "packer-aud");
        let s = file
            .clone()
            .under(env.clone())
            .under(flags)
            .resolve(Some(&stanza))
            .unwrap();
        assert_eq!(s.addr, "https://flag:8200");
        assert_eq!(
            s.audience, "site",
            "the site's file beats the archive's stanza"
        );
        assert_eq!(s.kv_mount, "kvs", "the stanza beats the built-in default");
        assert_eq!(s.spiffe_socket.as_deref(), Some("unix:///e"));
        let s = file.under(env).resolve(None).unwrap();
        assert_eq!(s.addr, "https://env:8200");
        assert_eq!(s.kv_mount, DEFAULT_KV_MOUNT);
    }

    #[test]
    fn bao_variables_win_over_vault_ones() {
        let l = Layer::from_env(&env_of(&[
            ("VAULT_ADDR", "https://v:1"),
            ("BAO_ADDR", "https://b:1"),
            ("VAULT_CACERT", "/v.pem"),
        ]));
        assert_eq!(l.addr.as_deref(), Some("https://b:1"));
        assert_eq!(l.ca_cert.as_deref(), Some(Path::new("/v.pem")));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Layer::parse_file("[vault]\nadress = \"x\"\n", Path::new("c")).is_err());
        assert!(Layer::parse_file("[vaults]\n", Path::new("c")).is_err());
        let bad = |addr: &str| {
            Layer {
                addr: Some(addr.into()),
                ..Layer::default()
            }
            .resolve(None)
            .is_err()
        };
        assert!(
            bad("http://vault.example.org:8200"),
            "plain http off loopback"
        );
        assert!(bad("http://127.0.0.1:8200"), "plain http on loopback");
        assert!(bad("http://localhost:8200"), "plain http on loopback");
        assert!(!bad("https://vault.example.org:8200/"));
        assert!(bad("ftp://x"));
        assert!(bad("https://vault.example.org/v1/secret"));
        let mount = Layer {
            kv_mount: Some("../sys".into()),
            ..Layer::default()
        };
        assert!(mount.resolve(None).is_err());
    }

    #[test]
    fn plain_http_needs_the_development_switch() {
        let resolve = |env: &'static [(&'static str, &'static str)]| {
            Layer {
                addr: Some("http://127.0.0.1:8200".into()),
                ..Layer::default()
            }
            .under(Layer::from_env(&env_of(env)))
            .resolve(None)
        };
        let e = resolve(&[]).expect_err("http without the switch");
        let msg = e.to_string();
        assert!(
            msg.contains(ALLOW_HTTP_ENV) && msg.contains("JWT-SVID"),
            "{msg}"
        );
        assert!(resolve(&[(ALLOW_HTTP_ENV, "0")]).is_err());
        assert!(resolve(&[(ALLOW_HTTP_ENV, "yes")]).is_err());
        assert!(resolve(&[(ALLOW_HTTP_ENV, "1")]).is_ok());
        let file = Layer::parse_file("[vault]\nallow_insecure_http = true\n", Path::new("c"));
        let file = file.expect("parses");
        assert!(Layer {
            addr: Some("http://127.0.0.1:8200".into()),
            ..file
        }
        .resolve(None)
        .is_ok());
    }

    #[test]
    fn user_config_path_order() {
        assert_eq!(
            user_config_path(&env_of(&[("HPCS_CONFIG", "/c.toml"), ("HOME", "/h")])),
            Some(PathBuf::from("/c.toml"))
        );
        assert_eq!(
            user_config_path(&env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/hpcs/config.toml"))
        );
        assert_eq!(
            user_config_path(&env_of(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/hpcs/config.toml"))
        );
    }
}
