//! Data keys kept in Vault/OpenBao and released to SPIFFE workloads.
//!
//! Three callers, three entry points, one blocking API (a current-thread tokio
//! runtime lives inside; do not call from async code):
//!
//! * the site administrator, once: [`setup`] enables a KV v1 mount, a JWT auth
//!   mount trusting the SPIFFE trust domain's JWT keys, and two templated
//!   policies;
//! * the data owner on the secure device: [`Registrar`] logs in with the
//!   user's own Vault login and registers, re-targets ([`Registrar::set_allowed`])
//!   and revokes (crypto-shreds) a dataset's key;
//! * the job on a compute node: [`release_key`] fetches a JWT-SVID, logs in to
//!   the JWT auth mount, reads the key copy registered for its own SPIFFE ID,
//!   checks the archive id pin, and revokes its Vault token.
//!
//! Storage (docs/vault.md "Design"): OpenBao and Vault refuse identity-template
//! values containing `/` in policy paths, so a SPIFFE ID can never name a path
//! itself. Each SPIFFE ID instead gets an *identity slot*: a JWT role named
//! [`slot_role`] (`spiffe-` + SHA-256 of the ID) bound to exactly that subject.
//! A login through it stamps the token's entity alias with `role=<slot>`, and
//! the workload policy grants read on `<kv>/ds/+/+/<slot>` only. Owners write
//! under `<kv>/ds/<their login name>/…` only. Nothing here logs a token or a
//! key; every type holding one redacts its `Debug`.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::config::Settings;
use crate::crypto::header::{Stanza, STANZA_VAULT};
use crate::crypto::DataKey;
use crate::util::{hex, now_secs, unhex_array};

/// Prefix of identity-slot role names.
pub const SLOT_PREFIX: &str = "spiffe-";
/// Current version of the stanza body and of the records.
pub const RECORD_VERSION: u32 = 1;

// ---------------------------------------------------------------- secrets

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

// ---------------------------------------------------------------- errors

/// Why a key could not be stored in or released from Vault. Each variant has
/// its own exit code (`crate::exit::for_vault`); messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Vault did not answer, or answered 5xx/429, for the whole retry budget.
    #[error("Vault at {addr} is unreachable: {why}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// Last failure.
        why: String,
    },
    /// Vault refused: permission denied, login refused, identity not trusted.
    #[error("Vault denied access: {0}")]
    Denied(String),
    /// The JWT-SVID had expired when Vault checked it.
    #[error("the JWT-SVID of {spiffe_id} has expired (Vault: {why}); check the node's clock and the SPIRE agent")]
    SvidExpired {
        /// Whose SVID.
        spiffe_id: String,
        /// Vault's words.
        why: String,
    },
    /// Vault's role expects another audience than the SVID carries.
    #[error("Vault rejected the JWT-SVID's audience {audience:?} ({why}); use the audience the site configured (--audience, or audience in the [vault] section of the config file)")]
    WrongAudience {
        /// Audience requested.
        audience: String,
        /// Vault's words.
        why: String,
    },
    /// No key is registered for this dataset (for this identity).
    #[error("{0}")]
    UnknownDataset(String),
    /// The owner revoked the dataset's key (or this identity's access).
    #[error("access to dataset {dataset} was revoked{at}: {reason}; the key has been destroyed in Vault, so this archive can no longer be opened through Vault")]
    Revoked {
        /// Dataset.
        dataset: String,
        /// " at <time>" or "".
        at: String,
        /// Why (revoked by owner / access removed for this identity).
        reason: String,
    },
    /// The archive is not the version Vault pins for the dataset.
    #[error("this archive is not the current version of dataset {dataset}: Vault pins archive id {current}, this archive is {archive}; fetch the current archive (an older copy is refused to prevent rollback)")]
    Rollback {
        /// Dataset.
        dataset: String,
        /// Archive id Vault pins (hex prefix).
        current: String,
        /// Archive id of this archive (hex prefix).
        archive: String,
    },
    /// The SPIFFE Workload API is missing, down, or has no identity for us.
    #[error("{0}")]
    SpiffeUnavailable(String),
    /// Bad configuration: config file, address, CA file, mount, stanza.
    #[error("Vault/SPIFFE configuration: {0}")]
    Config(String),
    /// The user on the secure device has no usable Vault login.
    #[error("Vault login: {0}")]
    Login(String),
    /// Registering would replace an existing dataset without `--replace`.
    #[error("dataset {0} is already registered in Vault; pass --replace to make this archive its current version (older archives will then be refused)")]
    DatasetExists(String),
}

/// A failed HTTP exchange, before it is given a meaning.
#[derive(Debug)]
enum CallErr {
    /// Vault answered with an error status.
    Api { code: u16, errors: Vec<String> },
    /// No answer (connection refused, reset, timeout).
    Unreachable(String),
    /// TLS failed (certificate not trusted): retrying will not help.
    Tls(String),
    /// Anything else (malformed answer, client-side error).
    Other(String),
}

impl CallErr {
    fn transient(&self) -> bool {
        match self {
            CallErr::Api { code, .. } => *code == 429 || (*code >= 500 && *code != 501),
            CallErr::Unreachable(_) => true,
            _ => false,
        }
    }
    fn text(&self) -> String {
        match self {
            CallErr::Api { code, errors } if errors.is_empty() => format!("HTTP {code}"),
            CallErr::Api { code, errors } => format!("HTTP {code}: {}", errors.join("; ")),
            CallErr::Unreachable(s) | CallErr::Tls(s) | CallErr::Other(s) => s.clone(),
        }
    }
    fn is(&self, want: u16) -> bool {
        matches!(self, CallErr::Api { code, .. } if *code == want)
    }
    fn says(&self, needle: &str) -> bool {
        matches!(self, CallErr::Api { errors, .. } if errors.iter().any(|e| e.contains(needle)))
    }
    /// The generic meaning, for calls with no more specific one.
    fn into_vault(self, addr: &str, what: &str) -> VaultError {
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

// ---------------------------------------------------------------- stanza

/// The Vault key stanza (type 2): where the data key is, never the key.
///
/// Body: a UTF-8 JSON object, e.g.
/// `{"v":1,"dataset":"alice/genome-2026","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}`.
/// Readers ignore unknown fields and refuse `v` other than 1. The stanza is
/// covered by the header MAC, which is checked only once the key is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRef {
    /// Body version (1).
    pub v: u32,
    /// Dataset name `owner/name`: the Vault records live under `<mount>/ds/<owner>/<name>`.
    pub dataset: String,
    /// KV v1 mount holding the records.
    pub mount: String,
    /// JWT auth mount the workloads log in to.
    pub auth_mount: String,
    /// JWT-SVID audience the JWT roles expect.
    pub audience: String,
}

impl VaultRef {
    /// A version-1 reference.
    pub fn new(dataset: &str, mount: &str, auth_mount: &str, audience: &str) -> VaultRef {
        VaultRef {
            v: RECORD_VERSION,
            dataset: dataset.into(),
            mount: mount.into(),
            auth_mount: auth_mount.into(),
            audience: audience.into(),
        }
    }

    /// The stanza to put in the header.
    pub fn to_stanza(&self) -> Stanza {
        Stanza {
            kind: STANZA_VAULT,
            body: serde_json::to_vec(self).expect("plain struct serialises"),
        }
    }

    /// Parses a stanza body.
    pub fn from_stanza(s: &Stanza) -> Result<VaultRef, VaultError> {
        let bad = |why: String| {
            VaultError::Config(format!("the archive's Vault stanza is unusable: {why}"))
        };
        let r: VaultRef = serde_json::from_slice(&s.body).map_err(|e| bad(e.to_string()))?;
        if r.v != RECORD_VERSION {
            return Err(bad(format!(
                "version {} (this hpcs reads version 1; upgrade hpcs)",
                r.v
            )));
        }
        Dataset::parse(&r.dataset).map_err(|e| bad(e.to_string()))?;
        Ok(r)
    }

    /// The first Vault stanza among `stanzas`, parsed; `None` if there is none.
    pub fn find(stanzas: &[Stanza]) -> Option<Result<VaultRef, VaultError>> {
        stanzas
            .iter()
            .find(|s| s.kind == STANZA_VAULT)
            .map(VaultRef::from_stanza)
    }
}

// ---------------------------------------------------------------- names

/// A dataset name `owner/name`; both parts are path-safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The owner's Vault login name (their entity alias name).
    pub owner: String,
    /// The dataset's name within the owner's space.
    pub name: String,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

impl Dataset {
    /// Parses `owner/name`.
    pub fn parse(s: &str) -> Result<Dataset, VaultError> {
        match s.split_once('/') {
            Some((o, n)) if valid_segment(o) && valid_segment(n) => Ok(Dataset {
                owner: o.into(),
                name: n.into(),
            }),
            _ => Err(VaultError::Config(format!(
                "invalid dataset name {s:?}: use OWNER/NAME, each 1-128 of letters, digits, '-', '_', '.', '@' (not starting with '.')"
            ))),
        }
    }

    fn meta_path(&self) -> String {
        format!("ds/{}/{}", self.owner, self.name)
    }

    fn slot_path(&self, slot: &str) -> String {
        format!("ds/{}/{}/{}", self.owner, self.name, slot)
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// Checks a SPIFFE ID (`spiffe://trust-domain/path`, canonical form).
pub fn check_spiffe_id(id: &str) -> Result<(), VaultError> {
    let parsed: spiffe::SpiffeId = id
        .parse()
        .map_err(|e| VaultError::Config(format!("invalid SPIFFE ID {id:?}: {e}")))?;
    if parsed.to_string() != id {
        return Err(VaultError::Config(format!(
            "SPIFFE ID {id:?} is not in canonical form (expected {parsed})"
        )));
    }
    Ok(())
}

/// The identity-slot role of a SPIFFE ID: `spiffe-` + hex SHA-256 of the ID.
pub fn slot_role(spiffe_id: &str) -> String {
    format!(
        "{SLOT_PREFIX}{}",
        hex(&Sha256::digest(spiffe_id.as_bytes()))
    )
}

// ---------------------------------------------------------------- records

/// The owner's record at `<kv>/ds/<owner>/<name>`: the key, the pinned archive
/// id and the allowed SPIFFE IDs; after revocation, a tombstone without key.
#[derive(Serialize, Deserialize, Default)]
struct MetaRecord {
    v: u32,
    dataset: String,
    #[serde(default)]
    archive_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_hex: Option<HexKey>,
    #[serde(default)]
    allowed: Vec<String>,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    updated: u64,
    #[serde(default)]
    revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<u64>,
}

/// One identity's copy at `<kv>/ds/<owner>/<name>/<slot>`; or a tombstone.
#[derive(Serialize, Deserialize, Default)]
struct SlotRecord {
    v: u32,
    dataset: String,
    spiffe_id: String,
    #[serde(default)]
    archive_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_hex: Option<HexKey>,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A data key in hex as stored in a record; wiped on drop.
#[derive(Serialize, Deserialize, Clone)]
#[serde(transparent)]
struct HexKey(String);

impl HexKey {
    fn of(key: &DataKey) -> HexKey {
        HexKey(hex(key.expose()))
    }
}

impl Drop for HexKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn key_of(hex_key: &Option<HexKey>) -> Option<DataKey> {
    let mut raw = unhex_array::<32>(&hex_key.as_ref()?.0)?;
    let k = DataKey::from_bytes(raw);
    raw.zeroize();
    Some(k)
}

// ---------------------------------------------------------------- connection

/// A Vault client with its runtime and retry policy.
struct Conn {
    rt: tokio::runtime::Runtime,
    client: vaultrs::client::VaultClient,
    s: Settings,
    token: Option<Secret>,
}

impl Conn {
    fn new(s: &Settings) -> Result<Conn, VaultError> {
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

    fn set_token(&mut self, t: Secret) {
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
        let v: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
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

    fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, CallErr> {
        self.retry(what, || self.raw(method.clone(), path, body.as_ref()))
    }

    fn get(&self, what: &str, path: &str) -> Result<Option<Value>, CallErr> {
        self.call(what, reqwest::Method::GET, path, None)
    }

    fn post(&self, what: &str, path: &str, body: Value) -> Result<Option<Value>, CallErr> {
        self.call(what, reqwest::Method::POST, path, Some(body))
    }

    fn fail(&self, what: &str) -> impl Fn(CallErr) -> VaultError + '_ {
        let what = what.to_string();
        move |e| e.into_vault(&self.s.addr, &what)
    }

    /// Reads a KV v1 record; `Ok(None)` if there is none.
    fn kv_read<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, CallErr> {
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
    fn kv_write<T: Serialize>(&self, path: &str, rec: &T) -> Result<(), CallErr> {
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
    fn kv_list(&self, path: &str) -> Result<Vec<String>, CallErr> {
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
    fn revoke_self(&mut self) -> Result<(), CallErr> {
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

// ---------------------------------------------------------------- setup

/// How the JWT auth mount learns the trust domain's signing keys.
#[derive(Clone, Debug)]
pub enum JwtTrust {
    /// A JWKS URL (SPIRE OIDC discovery provider `/keys`, or a bundle endpoint
    /// serving JWKS), with an optional PEM CA bundle for its TLS.
    JwksUrl {
        /// URL.
        url: String,
        /// CA PEM text for that URL's TLS, if private.
        ca_pem: Option<String>,
    },
    /// An OIDC discovery URL (`https://oidc.example.org`), SPIRE's OIDC
    /// discovery provider; optional CA PEM text.
    OidcDiscovery {
        /// URL.
        url: String,
        /// CA PEM text.
        ca_pem: Option<String>,
    },
    /// Static public keys (PEM), e.g. from `hpcs-spiffe-agent --jwks-pem-out`.
    /// They must be updated when the trust domain rotates its JWT keys.
    PublicKeys(Vec<String>),
}

/// What [`setup`] does.
#[derive(Clone, Debug)]
pub struct SetupOptions {
    /// Trust for JWT-SVIDs.
    pub trust: JwtTrust,
    /// Required `iss` claim, if the SVIDs carry one (SPIRE with `jwt_issuer`).
    pub bound_issuer: Option<String>,
    /// Auth mounts (paths) users log in with on the secure device; the user
    /// policy gives each of their alias names its own dataset space.
    pub user_auth_mounts: Vec<String>,
    /// Enable `userpass` at each listed mount that does not exist yet.
    pub enable_userpass: bool,
    /// Lifetime of a workload's Vault token (it revokes it sooner).
    pub workload_token_ttl: String,
}

/// What [`setup`] found and did, one line each, for the administrator.
#[derive(Debug, Default)]
pub struct SetupReport {
    /// Human-readable lines.
    pub lines: Vec<String>,
    /// Name of the policy to give the data owners (users).
    pub user_policy: String,
    /// Name of the policy the identity slots grant.
    pub workload_policy: String,
}

/// Policy names for a KV mount (`hpcs` → `hpcs-user`, `hpcs-workload`).
pub fn policy_names(kv_mount: &str) -> (String, String) {
    let base = kv_mount.replace('/', "-");
    (format!("{base}-user"), format!("{base}-workload"))
}

/// The workload policy: read the copies registered for the caller's own slot.
pub fn workload_policy(kv_mount: &str, jwt_accessor: &str) -> String {
    format!(
        "# hpcs (generated by `hpcs-pack vault-setup`): a SPIFFE workload logged in through its\n\
         # identity slot (JWT role {SLOT_PREFIX}<sha256 of its SPIFFE ID>) reads only the key copies\n\
         # registered for that slot. Slots are bound to exactly one subject.\n\
         path \"{kv_mount}/ds/+/+/{{{{identity.entity.aliases.{jwt_accessor}.metadata.role}}}}\" {{\n  capabilities = [\"read\"]\n}}\n"
    )
}

/// The user policy: write only under one's own login name; create (never
/// change) identity slots whose every parameter is pinned except the subject.
/// (No `required_parameters`: OpenBao applies them to reads too. A slot with a
/// missing or wrong subject is caught by [`Registrar::ensure_slot`]'s check
/// before any key is written to it.)
pub fn user_policy(
    kv_mount: &str,
    auth_mount: &str,
    audience: &str,
    workload_policy: &str,
    user_accessors: &[String],
) -> String {
    let mut p = String::from(
        "# hpcs (generated by `hpcs-pack vault-setup`): data owners register datasets under\n\
         # their own login name and create identity slots for the SPIFFE IDs they allow.\n",
    );
    for acc in user_accessors {
        p.push_str(&format!(
            "path \"{kv_mount}/ds/{{{{identity.entity.aliases.{acc}.name}}}}/*\" {{\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n}}\n"
        ));
    }
    p.push_str(&format!(
        "path \"auth/{auth_mount}/role/{SLOT_PREFIX}*\" {{\n  capabilities = [\"create\", \"read\"]\n  allowed_parameters = {{\n    \"role_type\" = [\"jwt\"]\n    \"user_claim\" = [\"sub\"]\n    \"bound_subject\" = []\n    \"bound_audiences\" = [\"{audience}\"]\n    \"token_policies\" = [\"{workload_policy}\"]\n  }}\n}}\n"
    ));
    p
}

/// Prepares a Vault once (idempotent): KV v1 mount, JWT auth mount and its
/// trust, token TTLs, and the two policies. Needs an administrator's token.
pub fn setup(
    s: &Settings,
    admin: UserLogin,
    opts: &SetupOptions,
) -> Result<SetupReport, VaultError> {
    let mut c = Conn::new(s)?;
    let owned = matches!(admin, UserLogin::Password { .. });
    let token = login_user(&c, admin)?;
    c.set_token(token);
    let mut rep = SetupReport::default();
    let (user_pol, wl_pol) = policy_names(&s.kv_mount);

    // 1. KV v1 mount.
    let mounts = c
        .get("list secrets engines", "sys/mounts")
        .map_err(c.fail("list secrets engines (needs an administrator token)"))?
        .unwrap_or_default();
    let mounts = mounts.get("data").cloned().unwrap_or(mounts);
    match mounts.get(format!("{}/", s.kv_mount)) {
        Some(m) => {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
            let ver = m
                .pointer("/options/version")
                .and_then(Value::as_str)
                .unwrap_or("1");
            if ty != "kv" || ver != "1" {
                return Err(VaultError::Config(format!(
                    "{}/ is already mounted as {ty} (version {ver}); hpcs needs KV version 1 there (overwrites leave no old key versions): choose another mount with --vault-mount",
                    s.kv_mount
                )));
            }
            rep.lines
                .push(format!("KV v1 mount {}/: already there", s.kv_mount));
        }
        None => {
            c.post(
                "enable KV",
                &format!("sys/mounts/{}", s.kv_mount),
                json!({"type": "kv", "options": {"version": "1"},
                       "description": "hpcs dataset keys (one record per dataset and identity)"}),
            )
            .map_err(c.fail("enable the KV v1 mount"))?;
            rep.lines
                .push(format!("KV v1 mount {}/: enabled", s.kv_mount));
        }
    }

    // 2. Auth mounts.
    let auths = |c: &Conn| -> Result<Value, VaultError> {
        let v = c
            .get("list auth methods", "sys/auth")
            .map_err(c.fail("list auth methods"))?
            .unwrap_or_default();
        Ok(v.get("data").cloned().unwrap_or(v))
    };
    let mut all = auths(&c)?;
    match all.get(format!("{}/", s.auth_mount)) {
        Some(m) => {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
            if ty != "jwt" && ty != "oidc" {
                return Err(VaultError::Config(format!(
                    "auth/{}/ is a {ty} auth mount, not jwt; choose another with --vault-auth-mount",
                    s.auth_mount
                )));
            }
            rep.lines.push(format!(
                "JWT auth mount auth/{}/: already there",
                s.auth_mount
            ));
        }
        None => {
            c.post(
                "enable JWT auth",
                &format!("sys/auth/{}", s.auth_mount),
                json!({"type": "jwt", "description": "hpcs: SPIFFE JWT-SVIDs of jobs (identity slots only)"}),
            )
            .map_err(c.fail("enable the JWT auth mount"))?;
            rep.lines
                .push(format!("JWT auth mount auth/{}/: enabled", s.auth_mount));
        }
    }
    for m in &opts.user_auth_mounts {
        if all.get(format!("{m}/")).is_none() {
            if !opts.enable_userpass {
                return Err(VaultError::Config(format!(
                    "user auth mount auth/{m}/ does not exist: enable your site's login method there first (e.g. ldap), or pass --enable-userpass"
                )));
            }
            c.post(
                "enable userpass",
                &format!("sys/auth/{m}"),
                json!({"type": "userpass", "description": "hpcs data owners"}),
            )
            .map_err(c.fail("enable userpass"))?;
            rep.lines
                .push(format!("userpass auth mount auth/{m}/: enabled"));
        }
    }
    all = auths(&c)?;
    let accessor = |m: &str| -> Result<String, VaultError> {
        all.get(format!("{m}/"))
            .and_then(|v| v.get("accessor"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| VaultError::Config(format!("auth/{m}/ has no accessor")))
    };
    let jwt_acc = accessor(&s.auth_mount)?;
    let user_accs = opts
        .user_auth_mounts
        .iter()
        .map(|m| accessor(m))
        .collect::<Result<Vec<_>, _>>()?;

    // 3. Trust and token lifetime.
    let mut cfg = json!({
        "jwks_url": "", "jwt_validation_pubkeys": [], "oidc_discovery_url": "",
        "jwks_ca_pem": "", "oidc_discovery_ca_pem": "",
        "bound_issuer": opts.bound_issuer.clone().unwrap_or_default(),
    });
    let what = match &opts.trust {
        JwtTrust::JwksUrl { url, ca_pem } => {
            cfg["jwks_url"] = json!(url);
            cfg["jwks_ca_pem"] = json!(ca_pem.clone().unwrap_or_default());
            format!("JWKS URL {url}")
        }
        JwtTrust::OidcDiscovery { url, ca_pem } => {
            cfg["oidc_discovery_url"] = json!(url);
            cfg["oidc_discovery_ca_pem"] = json!(ca_pem.clone().unwrap_or_default());
            format!("OIDC discovery URL {url}")
        }
        JwtTrust::PublicKeys(keys) => {
            cfg["jwt_validation_pubkeys"] = json!(keys);
            format!("{} static public key(s)", keys.len())
        }
    };
    // Vault rejects more than one source at once; send only the one in use.
    if let Value::Object(m) = &mut cfg {
        m.retain(|k, v| {
            k == "bound_issuer"
                || !(v.as_str() == Some("") || v.as_array().is_some_and(|a| a.is_empty()))
        });
    }
    c.post(
        "configure JWT auth",
        &format!("auth/{}/config", s.auth_mount),
        cfg,
    )
    .map_err(c.fail("configure the JWT auth mount's trust"))?;
    rep.lines.push(format!("JWT auth trusts: {what}"));
    c.post(
        "tune JWT auth",
        &format!("sys/auth/{}/tune", s.auth_mount),
        json!({"default_lease_ttl": opts.workload_token_ttl, "max_lease_ttl": opts.workload_token_ttl}),
    )
    .map_err(c.fail("set the workload token TTL"))?;
    rep.lines.push(format!(
        "workload tokens live at most {}",
        opts.workload_token_ttl
    ));

    // 4. Policies.
    let put_policy = |name: &str, text: String| -> Result<(), VaultError> {
        c.post(
            "write policy",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": text }),
        )
        .map(|_| ())
        .map_err(c.fail("write a policy"))
    };
    put_policy(&wl_pol, workload_policy(&s.kv_mount, &jwt_acc))?;
    put_policy(
        &user_pol,
        user_policy(&s.kv_mount, &s.auth_mount, &s.audience, &wl_pol, &user_accs),
    )?;
    rep.lines.push(format!(
        "policies {wl_pol} (workloads) and {user_pol} (data owners on {}) written",
        opts.user_auth_mounts.join(", ")
    ));
    rep.user_policy = user_pol;
    rep.workload_policy = wl_pol;
    if owned {
        let _ = c.revoke_self();
    }
    Ok(rep)
}

// ---------------------------------------------------------------- user login

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

fn login_user(c: &Conn, login: UserLogin) -> Result<Secret, VaultError> {
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
                Ok(Some(v)) => v
                    .pointer("/auth/client_token")
                    .and_then(Value::as_str)
                    .map(|t| Secret::new(t.to_string()))
                    .ok_or_else(|| {
                        VaultError::Login(format!("{method} login as {user} returned no token"))
                    }),
                Ok(None) => Err(VaultError::Login(format!(
                    "{method} login as {user} returned no token"
                ))),
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

// ---------------------------------------------------------------- registrar

/// A dataset's state as Vault records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Dataset.
    pub dataset: String,
    /// Pinned archive id (hex); empty if revoked before any.
    pub archive_id: String,
    /// SPIFFE IDs that can read the key.
    pub allowed: Vec<String>,
    /// Whether the key was destroyed.
    pub revoked: bool,
}

/// The data owner's Vault session on the secure device.
pub struct Registrar {
    c: Conn,
    owner: Option<String>,
    logged_in: bool,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("addr", &self.c.s.addr)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        // A token we created by logging in is ours to revoke; one the user
        // brought (VAULT_TOKEN, token helper) is not.
        if self.logged_in {
            let _ = self.c.revoke_self();
        }
    }
}

impl Registrar {
    /// Logs in (or takes the token) and finds out who the user is.
    pub fn login(s: &Settings, login: UserLogin) -> Result<Registrar, VaultError> {
        let mut c = Conn::new(s)?;
        let logged_in = matches!(login, UserLogin::Password { .. });
        let token = login_user(&c, login)?;
        c.set_token(token);
        let me = match c.get("look up own token", "auth/token/lookup-self") {
            Ok(v) => v.unwrap_or_default(),
            Err(e @ CallErr::Api { code: 400 | 401 | 403, .. }) => {
                return Err(VaultError::Login(format!(
                    "Vault refused the token ({}); it may have expired: log in again (`bao login`, or --vault-login userpass|ldap)",
                    e.text()
                )))
            }
            Err(e) => return Err(e.into_vault(&s.addr, "look up own token")),
        };
        let owner = me
            .pointer("/data/meta/username")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Registrar {
            c,
            owner,
            logged_in,
        })
    }

    /// The user's login name (the owner part of their datasets), if Vault says.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// `name` as a dataset: `owner/name` as given, or `name` in the user's space.
    pub fn dataset(&self, name: &str) -> Result<Dataset, VaultError> {
        if name.contains('/') {
            return Dataset::parse(name);
        }
        match &self.owner {
            Some(o) => Dataset::parse(&format!("{o}/{name}")),
            None => Err(VaultError::Config(format!(
                "cannot tell your Vault login name from this token: name the dataset OWNER/{name}"
            ))),
        }
    }

    fn read_meta(&self, ds: &Dataset) -> Result<Option<MetaRecord>, VaultError> {
        self.c
            .kv_read::<MetaRecord>(&ds.meta_path())
            .map_err(|e| self.denied_or(e, ds, "read the dataset record"))
    }

    fn denied_or(&self, e: CallErr, ds: &Dataset, what: &str) -> VaultError {
        if e.is(403) {
            VaultError::Denied(format!(
                "you may not {what} of {ds}: owners may only touch datasets under their own Vault login name{} (and need the {} policy)",
                self.owner.as_ref().map(|o| format!(" ({o}/…)")).unwrap_or_default(),
                policy_names(&self.c.s.kv_mount).0
            ))
        } else {
            e.into_vault(&self.c.s.addr, what)
        }
    }

    /// Makes sure `spiffe_id`'s identity slot exists and is bound to exactly
    /// that ID with the expected settings; creates it if missing.
    pub fn ensure_slot(&self, spiffe_id: &str) -> Result<String, VaultError> {
        check_spiffe_id(spiffe_id)?;
        let role = slot_role(spiffe_id);
        let path = format!("auth/{}/role/{role}", self.c.s.auth_mount);
        let wl_pol = policy_names(&self.c.s.kv_mount).1;
        let deny = |e: CallErr, what: &str| {
            if e.is(403) {
                VaultError::Denied(format!(
                    "you may not {what} identity slots ({path}): the site must give you the {} policy (hpcs-pack vault-setup)",
                    policy_names(&self.c.s.kv_mount).0
                ))
            } else {
                e.into_vault(&self.c.s.addr, what)
            }
        };
        let existing = match self.c.get("read identity slot", &path) {
            Ok(v) => v,
            Err(e) if e.is(404) => None,
            Err(e) => return Err(deny(e, "read")),
        };
        let role_data = match existing {
            Some(v) => v.get("data").cloned().unwrap_or_default(),
            None => {
                self.c
                    .post(
                        "create identity slot",
                        &path,
                        json!({
                            "role_type": "jwt",
                            "user_claim": "sub",
                            "bound_subject": spiffe_id,
                            // Plain strings: `allowed_parameters` in the
                            // user policy matches whole values, and a JSON
                            // array never equals the allowed string.
                            "bound_audiences": self.c.s.audience,
                            "token_policies": wl_pol,
                        }),
                    )
                    .map_err(|e| deny(e, "create"))?;
                self.c
                    .get("read identity slot", &path)
                    .map_err(|e| deny(e, "read"))?
                    .and_then(|v| v.get("data").cloned())
                    .unwrap_or_default()
            }
        };
        // Slots are create-only for users, so a correct slot stays correct.
        // A wrong one (created first by someone else) must never receive keys.
        let s = |k: &str| role_data.get(k).and_then(Value::as_str).unwrap_or("");
        let list = |k: &str| -> Vec<String> {
            role_data
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let empty = |k: &str| {
            role_data
                .get(k)
                .is_none_or(|v| v.is_null() || v.as_object().is_some_and(|o| o.is_empty()))
        };
        let mut wrong = Vec::new();
        if s("bound_subject") != spiffe_id {
            wrong.push(format!("bound to subject {:?}", s("bound_subject")));
        }
        if s("user_claim") != "sub" || s("role_type") != "jwt" {
            wrong.push("not a plain sub-claim jwt role".to_string());
        }
        if list("bound_audiences") != [self.c.s.audience.clone()] {
            wrong.push(format!("audiences {:?}", list("bound_audiences")));
        }
        if list("token_policies") != [wl_pol.clone()] {
            wrong.push(format!("policies {:?}", list("token_policies")));
        }
        if !empty("bound_claims") || !empty("claim_mappings") {
            wrong.push("extra claim bindings or mappings".to_string());
        }
        if !wrong.is_empty() {
            return Err(VaultError::Denied(format!(
                "the identity slot {path} for {spiffe_id} is not what hpcs expects ({}); no key was stored for it. Ask the Vault administrator to delete that role and retry",
                wrong.join(", ")
            )));
        }
        Ok(role)
    }

    /// Checks before packing that `ds` can be registered for `allowed`:
    /// the name is free (or `replace`), and every identity slot is sound.
    pub fn preflight(
        &self,
        ds: &Dataset,
        allowed: &[String],
        replace: bool,
    ) -> Result<(), VaultError> {
        if allowed.is_empty() {
            return Err(VaultError::Config(
                "no SPIFFE ID allowed: give at least one --allow spiffe://…".into(),
            ));
        }
        if let Some(m) = self.read_meta(ds)? {
            if !replace {
                return Err(VaultError::DatasetExists(m.dataset.clone()));
            }
        }
        for id in allowed {
            self.ensure_slot(id)?;
        }
        Ok(())
    }

    /// Stores `key` for `allowed` as the current version of `ds` (pinning
    /// `archive_id`); with `replace`, supersedes the previous version and
    /// tombstones identities no longer allowed.
    pub fn register(
        &self,
        ds: &Dataset,
        key: &DataKey,
        archive_id: &[u8; 32],
        allowed: &[String],
        replace: bool,
    ) -> Result<Status, VaultError> {
        let allowed = dedup(allowed);
        self.preflight(ds, &allowed, replace)?;
        let old = self.read_meta(ds)?;
        let created = old.as_ref().map(|m| m.created).unwrap_or_else(now_secs);
        let aid = hex(archive_id);
        for id in &allowed {
            self.write_slot(ds, id, key, &aid)?;
        }
        if let Some(old) = &old {
            for id in old.allowed.iter().filter(|i| !allowed.contains(i)) {
                self.tombstone_slot(ds, id, "access removed for this identity by the owner")?;
            }
        }
        let meta = MetaRecord {
            v: RECORD_VERSION,
            dataset: ds.to_string(),
            archive_id: aid.clone(),
            key_hex: Some(HexKey::of(key)),
            allowed: allowed.clone(),
            created,
            updated: now_secs(),
            ..MetaRecord::default()
        };
        self.c
            .kv_write(&ds.meta_path(), &meta)
            .map_err(|e| self.denied_or(e, ds, "write the dataset record"))?;
        Ok(Status {
            dataset: ds.to_string(),
            archive_id: aid,
            allowed,
            revoked: false,
        })
    }

    fn write_slot(
        &self,
        ds: &Dataset,
        id: &str,
        key: &DataKey,
        aid: &str,
    ) -> Result<(), VaultError> {
        let role = self.ensure_slot(id)?;
        let rec = SlotRecord {
            v: RECORD_VERSION,
            dataset: ds.to_string(),
            spiffe_id: id.to_string(),
            archive_id: aid.to_string(),
            key_hex: Some(HexKey::of(key)),
            created: now_secs(),
            ..SlotRecord::default()
        };
        self.c
            .kv_write(&ds.slot_path(&role), &rec)
            .map_err(|e| self.denied_or(e, ds, "write a key copy"))
    }

    fn tombstone_slot(&self, ds: &Dataset, id: &str, reason: &str) -> Result<(), VaultError> {
        let rec = SlotRecord {
            v: RECORD_VERSION,
            dataset: ds.to_string(),
            spiffe_id: id.to_string(),
            revoked: true,
            revoked_at: Some(now_secs()),
            reason: Some(reason.to_string()),
            ..SlotRecord::default()
        };
        self.c
            .kv_write(&ds.slot_path(&slot_role(id)), &rec)
            .map_err(|e| self.denied_or(e, ds, "write a tombstone"))
    }

    /// The dataset's state.
    pub fn status(&self, ds: &Dataset) -> Result<Status, VaultError> {
        let m = self.read_meta(ds)?.ok_or_else(|| {
            VaultError::UnknownDataset(format!("dataset {ds} is not registered in Vault"))
        })?;
        Ok(Status {
            dataset: ds.to_string(),
            archive_id: m.archive_id.clone(),
            allowed: m.allowed.clone(),
            revoked: m.revoked,
        })
    }

    /// Adds and removes allowed SPIFFE IDs; touches only Vault.
    pub fn set_allowed(
        &self,
        ds: &Dataset,
        add: &[String],
        remove: &[String],
    ) -> Result<Status, VaultError> {
        let m = self.read_meta(ds)?.ok_or_else(|| {
            VaultError::UnknownDataset(format!("dataset {ds} is not registered in Vault"))
        })?;
        if m.revoked {
            return Err(VaultError::Revoked {
                dataset: ds.to_string(),
                at: m
                    .revoked_at
                    .map(|t| format!(" at unix time {t}"))
                    .unwrap_or_default(),
                reason: "revoked by the owner; register the archive again to restore access".into(),
            });
        }
        let key = key_of(&m.key_hex).ok_or_else(|| {
            VaultError::Config(format!("the record of {ds} in Vault holds no valid key"))
        })?;
        for id in add.iter().chain(remove) {
            check_spiffe_id(id)?;
        }
        for id in remove {
            if !m.allowed.contains(id) {
                return Err(VaultError::Config(format!("{id} is not allowed for {ds}")));
            }
        }
        let mut allowed: Vec<String> = m
            .allowed
            .iter()
            .filter(|i| !remove.contains(i))
            .cloned()
            .collect();
        for id in dedup(add) {
            if !allowed.contains(&id) {
                allowed.push(id);
            }
        }
        for id in &allowed {
            if !m.allowed.contains(id) {
                self.write_slot(ds, id, &key, &m.archive_id)?;
            }
        }
        for id in remove {
            self.tombstone_slot(ds, id, "access removed for this identity by the owner")?;
        }
        let meta = MetaRecord {
            v: RECORD_VERSION,
            dataset: m.dataset.clone(),
            archive_id: m.archive_id.clone(),
            key_hex: m.key_hex.clone(),
            allowed: allowed.clone(),
            created: m.created,
            updated: now_secs(),
            ..MetaRecord::default()
        };
        self.c
            .kv_write(&ds.meta_path(), &meta)
            .map_err(|e| self.denied_or(e, ds, "write the dataset record"))?;
        Ok(Status {
            dataset: ds.to_string(),
            archive_id: m.archive_id.clone(),
            allowed,
            revoked: false,
        })
    }

    /// Crypto-shreds the dataset: every key copy (found by listing, so stray
    /// copies go too) and the owner's record are overwritten by tombstones.
    /// KV v1 keeps no older versions; backups of Vault's storage still do.
    pub fn revoke(&self, ds: &Dataset) -> Result<Status, VaultError> {
        let m = self.read_meta(ds)?.ok_or_else(|| {
            VaultError::UnknownDataset(format!("dataset {ds} is not registered in Vault"))
        })?;
        let slots = self
            .c
            .kv_list(&format!("{}/", ds.meta_path()))
            .map_err(|e| self.denied_or(e, ds, "list the key copies"))?;
        let at = now_secs();
        for slot in slots.iter().filter(|k| !k.ends_with('/')) {
            let path = ds.slot_path(slot);
            let old: Option<SlotRecord> = self
                .c
                .kv_read(&path)
                .map_err(|e| self.denied_or(e, ds, "read a key copy"))?;
            let rec = SlotRecord {
                v: RECORD_VERSION,
                dataset: ds.to_string(),
                spiffe_id: old
                    .as_ref()
                    .map(|o| o.spiffe_id.clone())
                    .unwrap_or_default(),
                revoked: true,
                revoked_at: Some(at),
                reason: Some("the owner revoked the dataset's key".into()),
                ..SlotRecord::default()
            };
            self.c
                .kv_write(&path, &rec)
                .map_err(|e| self.denied_or(e, ds, "destroy a key copy"))?;
        }
        let tomb = MetaRecord {
            v: RECORD_VERSION,
            dataset: ds.to_string(),
            archive_id: m.archive_id.clone(),
            allowed: m.allowed.clone(),
            created: m.created,
            updated: at,
            revoked: true,
            revoked_at: Some(at),
            ..MetaRecord::default()
        };
        self.c
            .kv_write(&ds.meta_path(), &tomb)
            .map_err(|e| self.denied_or(e, ds, "destroy the dataset record"))?;
        Ok(Status {
            dataset: ds.to_string(),
            archive_id: m.archive_id.clone(),
            allowed: m.allowed.clone(),
            revoked: true,
        })
    }
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter()
        .filter(|i| seen.insert(i.to_string()))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------- release

/// Everything [`release_key`] learnt besides the key.
#[derive(Debug, Clone)]
pub struct Released {
    /// The SPIFFE ID the key was released to.
    pub spiffe_id: String,
    /// Whether the Vault token was revoked (false: it expires by itself).
    pub token_revoked: bool,
}

/// Mount side: SVID → JWT login through the identity slot → read the key copy
/// → archive-id pin check → revoke the Vault token. The caller must still
/// check the key against the header (`Header::authenticate`).
pub fn release_key(
    s: &Settings,
    vref: &VaultRef,
    archive_id: &[u8; 32],
) -> Result<DataKey, VaultError> {
    release_key_with(s, vref, archive_id).map(|(k, _)| k)
}

/// [`release_key`], also saying to whom the key was released.
pub fn release_key_with(
    s: &Settings,
    vref: &VaultRef,
    archive_id: &[u8; 32],
) -> Result<(DataKey, Released), VaultError> {
    let ds = Dataset::parse(&vref.dataset)?;
    let mut c = Conn::new(s)?;
    let svid = super::spiffe::fetch_jwt_svid(&c.rt, s)?;
    let role = slot_role(&svid.spiffe_id);
    let login = c.post(
        "JWT login",
        &format!("auth/{}/login", s.auth_mount),
        json!({ "role": role, "jwt": svid.token.expose() }),
    );
    let token = match login {
        Ok(v) => v
            .as_ref()
            .and_then(|v| v.pointer("/auth/client_token"))
            .and_then(Value::as_str)
            .map(|t| Secret::new(t.to_string()))
            .ok_or_else(|| VaultError::Config("Vault's JWT login returned no token".into()))?,
        Err(e) => return Err(login_error(e, s, &svid.spiffe_id, &ds)),
    };
    drop(svid.token);
    c.set_token(token);
    let result = read_copy(&c, &ds, &role, &svid.spiffe_id, archive_id);
    let token_revoked = match c.revoke_self() {
        Ok(()) => true,
        Err(e) => {
            s.notify(&format!(
                "could not revoke the Vault token ({}); it expires by itself",
                e.text()
            ));
            false
        }
    };
    result.map(|k| {
        (
            k,
            Released {
                spiffe_id: svid.spiffe_id,
                token_revoked,
            },
        )
    })
}

fn login_error(e: CallErr, s: &Settings, spiffe_id: &str, ds: &Dataset) -> VaultError {
    if e.says("expired") {
        VaultError::SvidExpired {
            spiffe_id: spiffe_id.to_string(),
            why: e.text(),
        }
    } else if e.says("audience") || e.says("aud claim") {
        VaultError::WrongAudience {
            audience: s.audience.clone(),
            why: e.text(),
        }
    } else if e.says("could not be found") || e.says("role not found") {
        VaultError::UnknownDataset(format!(
            "no dataset has ever been registered in Vault for {spiffe_id} (no identity slot {} at auth/{}/); ask the owner of {ds} to allow this identity (hpcs-pack allow)",
            slot_role(spiffe_id),
            s.auth_mount
        ))
    } else if e.says("subject") {
        VaultError::Denied(format!(
            "Vault's identity slot for {spiffe_id} is bound to another SPIFFE ID ({}); ask the Vault administrator to fix it",
            e.text()
        ))
    } else if matches!(
        e,
        CallErr::Api {
            code: 400 | 401 | 403,
            ..
        }
    ) {
        VaultError::Denied(format!(
            "Vault refused the JWT-SVID of {spiffe_id} ({}); does the JWT auth mount auth/{}/ trust this SPIFFE trust domain's keys?",
            e.text(),
            s.auth_mount
        ))
    } else {
        e.into_vault(&s.addr, "JWT login")
    }
}

fn read_copy(
    c: &Conn,
    ds: &Dataset,
    role: &str,
    spiffe_id: &str,
    archive_id: &[u8; 32],
) -> Result<DataKey, VaultError> {
    let rec = match c.kv_read::<SlotRecord>(&ds.slot_path(role)) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(VaultError::UnknownDataset(format!(
                "no key for dataset {ds} is registered in Vault for {spiffe_id}: the dataset is unknown, or its owner has not allowed this identity (hpcs-pack allow {ds} --add {spiffe_id})"
            )))
        }
        Err(e) if e.is(403) => {
            return Err(VaultError::Denied(format!(
                "{spiffe_id} may not read the key of {ds} (HTTP 403 on {}/{})",
                c.s.kv_mount,
                ds.slot_path(role)
            )))
        }
        Err(e) => return Err(e.into_vault(&c.s.addr, "read the key")),
    };
    if rec.revoked {
        return Err(VaultError::Revoked {
            dataset: ds.to_string(),
            at: rec
                .revoked_at
                .map(|t| format!(" at unix time {t}"))
                .unwrap_or_default(),
            reason: rec
                .reason
                .clone()
                .unwrap_or_else(|| "revoked by the owner".into()),
        });
    }
    if rec.spiffe_id != spiffe_id || rec.dataset != ds.to_string() {
        return Err(VaultError::Config(format!(
            "the key copy at {}/{} is for {} / {}, not {spiffe_id} / {ds}",
            c.s.kv_mount,
            ds.slot_path(role),
            rec.spiffe_id,
            rec.dataset
        )));
    }
    let mine = hex(archive_id);
    if !crate::crypto::keys::ct_eq(rec.archive_id.as_bytes(), mine.as_bytes()) {
        return Err(VaultError::Rollback {
            dataset: ds.to_string(),
            current: rec.archive_id.chars().take(16).collect(),
            archive: mine.chars().take(16).collect(),
        });
    }
    key_of(&rec.key_hex)
        .ok_or_else(|| VaultError::Config(format!("the key copy of {ds} in Vault is malformed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_round_trip_and_checks() {
        let r = VaultRef::new("alice/genome-2026", "hpcs", "hpcs-jwt", "hpcs");
        let s = r.to_stanza();
        assert_eq!(s.kind, STANZA_VAULT);
        assert_eq!(
            std::str::from_utf8(&s.body).unwrap(),
            r#"{"v":1,"dataset":"alice/genome-2026","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}"#
        );
        assert_eq!(VaultRef::from_stanza(&s).unwrap(), r);
        let bad = |body: &str| {
            VaultRef::from_stanza(&Stanza {
                kind: STANZA_VAULT,
                body: body.as_bytes().to_vec(),
            })
            .is_err()
        };
        assert!(bad(
            r#"{"v":2,"dataset":"a/b","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad(
            r#"{"v":1,"dataset":"../b","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad(
            r#"{"v":1,"dataset":"a/b/c","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad("not json"));
        assert!(!bad(
            r#"{"v":1,"dataset":"a/b","mount":"m","auth_mount":"j","audience":"a","later":1}"#
        ));
    }

    #[test]
    fn dataset_names() {
        assert!(Dataset::parse("alice/genome-2026").is_ok());
        assert!(Dataset::parse("a.b@site/x_y").is_ok());
        for bad in [
            "alice", "/x", "a/", "a/b/c", "a/.x", "a/x*", "a/x+", "a/ x", "a/{{x}}",
        ] {
            assert!(Dataset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slots_are_path_safe_and_distinct() {
        let a = slot_role("spiffe://example.org/job/a");
        let b = slot_role("spiffe://example.org/job/b");
        assert_ne!(a, b);
        assert!(a.starts_with(SLOT_PREFIX) && a.len() == SLOT_PREFIX.len() + 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn spiffe_ids_are_checked() {
        assert!(check_spiffe_id("spiffe://example.org/job/a").is_ok());
        assert!(check_spiffe_id("spiffe://Example.org/job/a").is_err());
        assert!(check_spiffe_id("https://example.org/x").is_err());
        assert!(check_spiffe_id("spiffe://example.org/a//b").is_err());
    }

    #[test]
    fn hex_round_trip() {
        let k = [0xa5u8; 32];
        assert_eq!(unhex_array::<32>(&hex(&k)), Some(k));
        assert_eq!(unhex_array::<32>("zz"), None);
        assert_eq!(unhex_array::<32>(&"g".repeat(64)), None);
    }

    #[test]
    fn login_errors_get_their_own_meaning() {
        let s = crate::keys::config::Layer::default().resolve(None).unwrap();
        let ds = Dataset::parse("a/b").unwrap();
        let api = |m: &str| CallErr::Api {
            code: 400,
            errors: vec![m.to_string()],
        };
        // The messages OpenBao 2.7 sends (seen against `bao server -dev`).
        assert!(matches!(
            login_error(
                api("error validating token: token is expired"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::SvidExpired { .. }
        ));
        assert!(matches!(
            login_error(api("error validating token: invalid audience (aud) claim: audience claim does not match any expected audience"), &s, "spiffe://t/x", &ds),
            VaultError::WrongAudience { .. }
        ));
        assert!(matches!(
            login_error(
                api("role \"spiffe-00\" could not be found"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::UnknownDataset(_)
        ));
        assert!(matches!(
            login_error(
                api("error validating token: invalid subject (sub) claim"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::Denied(_)
        ));
        assert!(matches!(
            login_error(
                CallErr::Api {
                    code: 503,
                    errors: vec!["Vault is sealed".into()]
                },
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::Unreachable { .. }
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
    fn secrets_do_not_print() {
        let s = Secret::new("s.hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let l = UserLogin::Password {
            method: "userpass".into(),
            mount: "userpass".into(),
            user: "alice".into(),
            password: Secret::new("hunter2".into()),
        };
        assert!(!format!("{l:?}").contains("hunter2"));
    }

    #[test]
    fn policies_never_template_a_spiffe_id() {
        let w = workload_policy("hpcs", "auth_jwt_1");
        assert!(
            w.contains("path \"hpcs/ds/+/+/{{identity.entity.aliases.auth_jwt_1.metadata.role}}\"")
        );
        let u = user_policy(
            "hpcs",
            "hpcs-jwt",
            "hpcs",
            "hpcs-workload",
            &["auth_userpass_1".into()],
        );
        assert!(u.contains("path \"hpcs/ds/{{identity.entity.aliases.auth_userpass_1.name}}/*\""));
        assert!(u.contains("\"token_policies\" = [\"hpcs-workload\"]"));
        assert!(
            u.contains("capabilities = [\"create\", \"read\"]"),
            "slots are create-only"
        );
    }
}
