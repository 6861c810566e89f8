//! The connection to Vault: [`Conn`] (a vaultrs client, its current-thread
//! runtime, the token, and bounded retries of transient failures) and
//! [`CallErr`], a failed exchange before the caller gives it a meaning
//! ([`CallErr::into_vault`] is the generic one). Every request of the other
//! `vault` modules goes through here.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::error::VaultError;
use super::secret::Secret;
use crate::keys::config::Settings;

/// A failed HTTP exchange, before it is given a meaning.
#[derive(Debug)]
pub(super) enum CallErr {
    /// Vault answered with an error status.
    Api { code: u16, errors: Vec<String> },
    /// No answer (connection refused, reset, timeout).
    Unreachable(String),
    /// TLS failed (certificate not trusted): retrying will not help.
    Tls(String),
    /// Anything else (malformed answer, client-side error).
    Other(String),
}

/// The meaning of a reply with status `code` and body `bytes` (no I/O, so
/// the fuzz targets reach it): a 2xx is its JSON body (`None` when empty or
/// not JSON); anything else is [`CallErr::Api`] with the `errors` it lists.
pub(super) fn parse_reply(code: u16, bytes: &[u8]) -> Result<Option<Value>, CallErr> {
    let v: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(bytes).ok()
    };
    if (200..300).contains(&code) {
        return Ok(v);
    }
    let errors = v
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().replace("\n\t* ", " ").replace('\n', " "))
                .collect()
        })
        .unwrap_or_default();
    Err(CallErr::Api { code, errors })
}

/// The token a login reply carries (`auth.client_token`).
pub(super) fn client_token(reply: Option<&Value>) -> Option<Secret> {
    reply?
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .map(|t| Secret::new(t.to_string()))
}

impl CallErr {
    pub(super) fn transient(&self) -> bool {
        match self {
            CallErr::Api { code, .. } => *code == 429 || (*code >= 500 && *code != 501),
            CallErr::Unreachable(_) => true,
            _ => false,
        }
    }
    pub(super) fn text(&self) -> String {
        match self {
            CallErr::Api { code, errors } if errors.is_empty() => format!("HTTP {code}"),
            CallErr::Api { code, errors } => format!("HTTP {code}: {}", errors.join("; ")),
            CallErr::Unreachable(s) | CallErr::Tls(s) | CallErr::Other(s) => s.clone(),
        }
    }
    pub(super) fn is(&self, want: u16) -> bool {
        matches!(self, CallErr::Api { code, .. } if *code == want)
    }
    pub(super) fn says(&self, needle: &str) -> bool {
        matches!(self, CallErr::Api { errors, .. } if errors.iter().any(|e| e.contains(needle)))
    }
    /// The generic meaning, for calls with no more specific one.
    pub(super) fn into_vault(self, addr: &str, what: &str) -> VaultError {
        match self {
            e if e.transient() => VaultError::Unreachable {
                addr: addr.to_string(),
                why: format!("{what}: {}", e.text()),
            },
            CallErr::Tls(s) => VaultError::Config(format!(
                "TLS to {addr} failed ({s}); if Vault uses a private CA, point VAULT_CACERT (or ca_cert in the config file) at it"
            )),
            e @ CallErr::Api { code: 401 | 403, .. } => {
                VaultError::Denied(format!("{what}: {}", e.text()))
            }
            e @ CallErr::Api { .. } => VaultError::Denied(format!("{what}: {}", e.text())),
            CallErr::Unreachable(s) => VaultError::Unreachable {
                addr: addr.to_string(),
                why: s,
            },
            CallErr::Other(s) => {
                VaultError::Config(format!("unexpected answer from Vault at {addr} ({what}): {s}"))
            }
        }
    }
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn from_reqwest(e: &reqwest::Error) -> CallErr {
    let transport = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
    classify_transport(chain_text(e), transport)
}

/// What a failed request means: a certificate the client refuses, or a TLS
/// alert from the server, will fail again (`Tls`); any other failure to get
/// an answer, including a connection the server closed in the middle of the
/// TLS exchange (a Vault node stopped, an HA leader failing over), is worth
/// retrying (`Unreachable`).
fn classify_transport(text: String, transport: bool) -> CallErr {
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("alert") {
        CallErr::Tls(text)
    } else if transport {
        CallErr::Unreachable(text)
    } else if lower.contains("tls") || lower.contains("handshake") {
        CallErr::Tls(text)
    } else {
        CallErr::Other(text)
    }
}

impl From<vaultrs::error::ClientError> for CallErr {
    fn from(e: vaultrs::error::ClientError) -> CallErr {
        use vaultrs::error::ClientError as C;
        match e {
            C::APIError { code, errors } => CallErr::Api { code, errors },
            e => {
                // Find the transport error underneath rustify's wrapper.
                let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(c) = cur {
                    if let Some(r) = c.downcast_ref::<reqwest::Error>() {
                        return from_reqwest(r);
                    }
                    cur = c.source();
                }
                CallErr::Other(chain_text(&e))
            }
        }
    }
}

/// A Vault client with its runtime and retry policy.
pub(super) struct Conn {
    pub(super) rt: tokio::runtime::Runtime,
    client: vaultrs::client::VaultClient,
    pub(super) s: Settings,
    token: Option<Secret>,
}

impl Conn {
    pub(super) fn new(s: &Settings) -> Result<Conn, VaultError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VaultError::Config(format!("cannot start the async runtime: {e}")))?;
        let mut b = vaultrs::client::VaultClientSettingsBuilder::default();
        // Set everything explicitly: vaultrs would otherwise read VAULT_TOKEN,
        // VAULT_SKIP_VERIFY and VAULT_CAPATH on its own.
        b.address(&s.addr)
            .token("")
            .verify(true)
            .timeout(Some(s.timeout))
            .namespace(s.namespace.clone())
            .ca_certs(s.ca_cert.iter().map(|p| p.display().to_string()).collect());
        if let Some(p) = &s.ca_cert {
            std::fs::metadata(p).map_err(|e| {
                VaultError::Config(format!(
                    "cannot read CA certificate file {}: {e}",
                    p.display()
                ))
            })?;
        }
        let settings = b
            .build()
            .map_err(|e| VaultError::Config(format!("Vault client settings: {e}")))?;
        let client = vaultrs::client::VaultClient::new(settings).map_err(|e| {
            VaultError::Config(format!(
                "cannot set up the Vault client: {}",
                chain_text(&e)
            ))
        })?;
        Ok(Conn {
            rt,
            client,
            s: s.clone(),
            token: None,
        })
    }

    pub(super) fn set_token(&mut self, t: Secret) {
        use vaultrs::client::Client;
        self.client.set_token(t.expose());
        self.token = Some(t);
    }

    fn clear_token(&mut self) {
        use vaultrs::client::Client;
        self.client.set_token("");
        self.token = None;
    }

    /// Runs `f` until it succeeds, fails for good, or the retry budget is
    /// spent (bounded exponential backoff: 0.25 s doubling to 4 s).
    fn retry<T, Fut>(&self, what: &str, mut f: impl FnMut() -> Fut) -> Result<T, CallErr>
    where
        Fut: Future<Output = Result<T, CallErr>>,
    {
        let start = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match self.rt.block_on(f()) {
                Err(e) if e.transient() && start.elapsed() + delay <= self.s.retry => {
                    self.s.notify(&format!(
                        "Vault at {} unavailable ({what}: {}); retrying in {:.1}s",
                        self.s.addr,
                        e.text(),
                        delay.as_secs_f64()
                    ));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
                r => return r,
            }
        }
    }

    /// One raw request: `path` is below `/v1/`; returns the JSON body, if any.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, CallErr> {
        let url = format!("{}/v1/{}", self.s.addr, path);
        let mut req = self
            .client
            .http
            .http
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t.expose());
        }
        if let Some(ns) = &self.s.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(b).map_err(|e| CallErr::Other(e.to_string()))?);
        }
        let resp = req.send().await.map_err(|e| from_reqwest(&e))?;
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| from_reqwest(&e))?;
        parse_reply(code, &bytes)
    }

    fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, CallErr> {
        self.retry(what, || self.raw(method.clone(), path, body.as_ref()))
    }

    pub(super) fn get(&self, what: &str, path: &str) -> Result<Option<Value>, CallErr> {
        self.call(what, reqwest::Method::GET, path, None)
    }

    pub(super) fn post(
        &self,
        what: &str,
        path: &str,
        body: Value,
    ) -> Result<Option<Value>, CallErr> {
        self.call(what, reqwest::Method::POST, path, Some(body))
    }

    pub(super) fn fail(&self, what: &str) -> impl Fn(CallErr) -> VaultError + '_ {
        let what = what.to_string();
        move |e| e.into_vault(&self.s.addr, &what)
    }

    /// Reads a KV v1 record; `Ok(None)` if there is none.
    pub(super) fn kv_read<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, CallErr> {
        let mount = self.s.kv_mount.as_str();
        let r = self.retry("read", || async move {
            vaultrs::kv1::get_raw(&self.client, mount, path)
                .await
                .map_err(CallErr::from)
        });
        match r {
            Ok(resp) => serde_json::from_value(resp.data)
                .map(Some)
                .map_err(|e| CallErr::Other(format!("record {mount}/{path} is malformed: {e}"))),
            Err(e) if e.is(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a KV v1 record (replacing it: KV v1 keeps no old versions).
    pub(super) fn kv_write<T: Serialize>(&self, path: &str, rec: &T) -> Result<(), CallErr> {
        let v = serde_json::to_value(rec).map_err(|e| CallErr::Other(e.to_string()))?;
        let r = self.call(
            "write",
            reqwest::Method::POST,
            &format!("{}/{}", self.s.kv_mount, path),
            Some(v),
        );
        r.map(|_| ())
    }

    /// Lists the keys under a KV v1 folder; empty if there is none.
    pub(super) fn kv_list(&self, path: &str) -> Result<Vec<String>, CallErr> {
        let mount = self.s.kv_mount.as_str();
        match self.retry("list", || async move {
            vaultrs::kv1::list(&self.client, mount, path)
                .await
                .map_err(CallErr::from)
        }) {
            Ok(r) => Ok(r.data.keys),
            Err(e) if e.is(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Revokes the current token (best effort is the caller's choice).
    pub(super) fn revoke_self(&mut self) -> Result<(), CallErr> {
        if self.token.is_none() {
            return Ok(());
        }
        let r = self.retry("revoke token", || async {
            vaultrs::token::revoke_self(&self.client)
                .await
                .map_err(CallErr::from)
        });
        if r.is_ok() {
            self.clear_token();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_mean_what_vault_says() {
        // 2xx: the JSON body, or nothing for an empty or non-JSON body.
        let v = parse_reply(200, br#"{"auth":{"client_token":"s.x"}}"#).unwrap();
        assert_eq!(client_token(v.as_ref()).unwrap().expose(), "s.x");
        assert!(parse_reply(204, b" \n").unwrap().is_none());
        assert!(parse_reply(200, b"<html>").unwrap().is_none());
        assert!(client_token(
            parse_reply(200, br#"{"auth":{"client_token":7}}"#)
                .unwrap()
                .as_ref()
        )
        .is_none());
        // Anything else is an error carrying Vault's words, one line each.
        let e = parse_reply(
            403,
            b"{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\"]}",
        )
        .unwrap_err();
        assert_eq!(e.text(), "HTTP 403: 1 error occurred: permission denied");
        assert_eq!(
            parse_reply(502, b"bad gateway").unwrap_err().text(),
            "HTTP 502"
        );
        assert_eq!(
            parse_reply(404, br#"{"errors":[1,"x"]}"#)
                .unwrap_err()
                .text(),
            "HTTP 404: x"
        );
    }

    #[test]
    fn a_connection_closed_mid_tls_is_retried_a_refused_certificate_is_not() {
        // What reqwest/rustls said when an HA leader was killed mid-request.
        let closed = "error sending request for url (https://vault-ha:8200/v1/auth/hpcs-jwt/login): \
            client error (SendRequest): connection error: peer closed connection without sending TLS close_notify";
        assert!(classify_transport(closed.into(), true).transient());
        assert!(classify_transport("tls handshake eof".into(), true).transient());
        let bad_ca = "error sending request: invalid peer certificate: UnknownIssuer";
        assert!(matches!(
            classify_transport(bad_ca.into(), true),
            CallErr::Tls(_)
        ));
        let alert = "received fatal alert: HandshakeFailure";
        assert!(matches!(
            classify_transport(alert.into(), true),
            CallErr::Tls(_)
        ));
        assert!(matches!(
            classify_transport("tls: bad record".into(), false),
            CallErr::Tls(_)
        ));
        assert!(matches!(
            classify_transport("bad json".into(), false),
            CallErr::Other(_)
        ));
    }

    #[test]
    fn transient_failures_are_the_retryable_ones() {
        let api = |code| CallErr::Api {
            code,
            errors: vec![],
        };
        assert!(api(503).transient() && api(500).transient() && api(429).transient());
        assert!(!api(403).transient() && !api(400).transient() && !api(404).transient());
        assert!(CallErr::Unreachable("refused".into()).transient());
        assert!(!CallErr::Tls("bad cert".into()).transient());
    }
}
