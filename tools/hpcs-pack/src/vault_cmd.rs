//! hpcs-pack's Vault commands: `pack --vault`, `register`, `allow`, `revoke`
//! and `vault-setup`. Thin: turns flags into `hpcs::keys::config` layers,
//! obtains the user's Vault login (token, token helper, or a password read
//! from the terminal or a file, never from the command line), and calls
//! `hpcs::keys::vault`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hpcs::crypto::header::Header;
use hpcs::crypto::header::STANZA_VAULT;
use hpcs::crypto::{DataKey, Stanza};
use hpcs::exit::{self, Fail};
use hpcs::keys::config::{self, Layer, Settings};
use hpcs::keys::vault::{
    self, Current, Dataset, JwtTrust, Registrar, SetupOptions, Status, UserLogin, VaultError,
    VaultRef,
};
use hpcs::pack::TempOut;
use hpcs::util::hex;

use super::cli_vault::{AllowArgs, PackVaultArgs, RegisterArgs, RevokeArgs, SetupArgs, VaultArgs};
use super::secret_input;

fn flags_layer(v: &VaultArgs) -> Layer {
    Layer {
        addr: v.vault_addr.clone(),
        ca_cert: v.vault_cacert.clone(),
        namespace: v.vault_namespace.clone(),
        kv_mount: v.vault_mount.clone(),
        auth_mount: v.vault_auth_mount.clone(),
        audience: v.audience.clone(),
        retry_secs: v.vault_retry_secs,
        login: v.vault_login.clone(),
        login_mount: v.vault_login_mount.clone(),
        user: v.vault_user.clone(),
        ..Layer::default()
    }
}

/// Checked settings: config files, environment, flags, over the stanza.
fn settings(v: &VaultArgs, stanza: Option<&VaultRef>) -> Result<Settings, Fail> {
    let mut s = config::load(flags_layer(v))?.resolve(stanza)?;
    s.notice = Some(Arc::new(|m: &str| eprintln!("hpcs-pack: {m}")));
    Ok(s)
}

/// The user's login: a password method if asked for, else the ambient token.
fn user_login(v: &VaultArgs, s: &Settings) -> Result<UserLogin, Fail> {
    let method = s.login.clone().unwrap_or_else(|| "token".into());
    if method == "token" {
        return vault::ambient_token().map(UserLogin::Token).ok_or_else(|| {
            VaultError::Login(
                "no Vault token: set VAULT_TOKEN, log in with `bao login` / `vault login` (token helper ~/.vault-token), or pass --vault-login userpass|ldap --vault-user NAME".into(),
            )
            .into()
        });
    }
    let user = s
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            Fail::new(
                exit::USAGE,
                "--vault-user NAME is required with --vault-login",
            )
        })?;
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(Fail::new(
            exit::USAGE,
            format!("invalid --vault-user {user:?}"),
        ));
    }
    let password = match &v.vault_password_file {
        Some(p) => secret_input::first_line(p, "password file")?,
        None => secret_input::prompt(
            &format!("Vault {method} password for {user}: "),
            exit::VAULT_LOGIN,
            "no terminal to ask for the Vault password: use --vault-password-file FILE or a token (VAULT_TOKEN)",
        )?,
    };
    Ok(UserLogin::Password {
        mount: s.login_mount.clone().unwrap_or_else(|| method.clone()),
        method,
        user,
        password,
    })
}

fn login(v: &VaultArgs, stanza: Option<&VaultRef>) -> Result<(Settings, Registrar), Fail> {
    let s = settings(v, stanza)?;
    let l = user_login(v, &s)?;
    let r = Registrar::login(&s, l)?;
    Ok((s, r))
}

/// Default dataset name: the archive's file name without `.hpcs`.
fn default_name(archive: &Path) -> Result<String, Fail> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".hpcs").unwrap_or(&name).to_string();
    if stem.is_empty()
        || stem.starts_with('.')
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(Fail::new(
            exit::USAGE,
            format!("cannot use {name:?} as a dataset name: pass --dataset NAME"),
        ));
    }
    Ok(stem)
}

fn print_status(st: &Status) {
    if st.revoked {
        eprintln!("dataset {}: REVOKED (key destroyed in Vault)", st.dataset);
        return;
    }
    eprintln!(
        "dataset {}: current archive id {}…; {} SPIFFE ID(s) allowed:",
        st.dataset,
        st.archive_id.chars().take(16).collect::<String>(),
        st.allowed.len()
    );
    for id in &st.allowed {
        eprintln!("  {id}");
    }
}

// ---------------------------------------------------------------- pack --vault

/// A Vault registration prepared before packing, committed after.
pub struct PackVault {
    reg: Registrar,
    ds: Dataset,
    vref: VaultRef,
    allowed: Vec<String>,
    replace: bool,
}

/// Checks everything that can fail in Vault before any byte is packed:
/// login, dataset name free (or --replace), identity slots sound.
pub fn pack_prepare(a: &PackVaultArgs, output: &Path) -> Result<Option<PackVault>, Fail> {
    if !a.vault {
        return Ok(None);
    }
    if a.allow.is_empty() {
        return Err(Fail::new(
            exit::USAGE,
            "--vault needs at least one --allow SPIFFE_ID (the jobs that may fetch the key)",
        ));
    }
    let (s, reg) = login(&a.v, None)?;
    let name = match &a.dataset {
        Some(d) => d.clone(),
        None => default_name(output)?,
    };
    let ds = reg.dataset(&name)?;
    reg.preflight(&ds, &a.allow, a.replace)?;
    let vref = VaultRef::new(&ds.to_string(), &s.kv_mount, &s.auth_mount, &s.audience);
    Ok(Some(PackVault {
        reg,
        ds,
        vref,
        allowed: a.allow.clone(),
        replace: a.replace,
    }))
}

impl PackVault {
    /// The Vault stanza for the new header.
    pub fn stanza(&self) -> Stanza {
        self.vref.to_stanza()
    }

    /// Stores the key after the archive is written. If that fails and nothing
    /// else can open the archive, the archive is removed again.
    pub fn commit(
        self,
        key: &DataKey,
        archive_id: &[u8; 32],
        output: &Path,
        has_age: bool,
        quiet: bool,
    ) -> Result<(), Fail> {
        match self
            .reg
            .register(&self.ds, key, archive_id, &self.allowed, self.replace)
        {
            Ok(st) => {
                if !quiet {
                    eprintln!(
                        "registered the key of {} in Vault (pinned archive id {}…)",
                        output.display(),
                        hex(&archive_id[..8])
                    );
                    print_status(&st);
                }
                Ok(())
            }
            Err(e) => {
                let mut f: Fail = e.into();
                if has_age {
                    f.msg.push_str(&format!(
                        "; {} was written and opens with its age identities; register it later with `hpcs-pack register`",
                        output.display()
                    ));
                } else {
                    let _ = std::fs::remove_file(output);
                    f.msg.push_str(&format!(
                        "; {} was removed (nothing else could open it)",
                        output.display()
                    ));
                }
                Err(f)
            }
        }
    }
}

// ---------------------------------------------------------------- register

/// Adds (or replaces) the Vault stanza of an existing archive and registers
/// its key. Rewrites only the header (temp file + rename), like rewrap.
pub fn register(a: RegisterArgs) -> Result<(), Fail> {
    super::install_signal_handlers();
    let sealed = super::open_sealed(&a.archive)?;
    let key = super::load_key(&a.archive, &sealed, &a.identities)?;
    let h = sealed.header().clone();
    sealed
        .unlock(&key)
        .map_err(|e| super::archive_fail(&a.archive, &e))?;
    let old_ref = VaultRef::find(&h.stanzas).and_then(Result::ok);
    let (s, reg) = login(&a.v, None)?;
    let name = match (&a.dataset, &old_ref) {
        (Some(d), _) => d.clone(),
        (None, Some(r)) => r.dataset.clone(),
        (None, None) => default_name(&a.archive)?,
    };
    let ds = reg.dataset(&name)?;
    reg.preflight(&ds, &a.allow, a.replace)?;
    let vref = VaultRef::new(&ds.to_string(), &s.kv_mount, &s.auth_mount, &s.audience);
    if old_ref.as_ref() != Some(&vref) {
        let mut stanzas: Vec<Stanza> = h
            .stanzas
            .iter()
            .filter(|s| s.kind != STANZA_VAULT)
            .cloned()
            .collect();
        stanzas.push(vref.to_stanza());
        let new_header = h
            .with_stanzas(&key, stanzas)
            .map_err(|e| super::archive_fail(&a.archive, &e))?;
        let p = &a.archive;
        hpcs::rewrap::write_with_header(p, &h, &new_header, p, true, &key, &super::STOP)
            .map_err(crate::rewrap_cmd::rewrite_fail)?;
    }
    let st = reg.register(&ds, &key, &h.archive_id, &a.allow, a.replace)?;
    if !a.quiet {
        eprintln!(
            "registered {} in Vault as {} (data region unchanged; archive id {}…)",
            a.archive.display(),
            ds,
            hex(&h.archive_id[..8])
        );
        print_status(&st);
    }
    Ok(())
}

// ---------------------------------------------------------------- rekey

/// `rekey` of an archive whose key is in Vault: the dataset's record,
/// checked before anything is re-encrypted, replaced after.
pub struct RekeyVault {
    reg: Registrar,
    ds: Dataset,
    current: Current,
    stanza: Stanza,
}

/// Logs in as the dataset's owner and checks that `h` is the dataset's
/// current version (rekeying an older copy would roll the dataset back) and
/// that its identity slots are sound. None for an archive without a Vault
/// stanza.
pub fn rekey_prepare(
    v: &VaultArgs,
    archive: &Path,
    h: &Header,
) -> Result<Option<RekeyVault>, Fail> {
    let Some(r) = VaultRef::find(&h.stanzas) else {
        return Ok(None);
    };
    let r = r?;
    let stanza = h
        .stanzas
        .iter()
        .find(|s| s.kind == STANZA_VAULT)
        .cloned()
        .expect("VaultRef::find found it");
    let (_, reg) = login(v, Some(&r))?;
    let ds = reg.dataset(&r.dataset)?;
    let current = reg.current(&ds).map_err(|e| {
        let mut f: Fail = e.into();
        f.msg = format!("{}: {}", archive.display(), f.msg);
        f
    })?;
    if current.archive_id != h.archive_id {
        return Err(VaultError::Rollback {
            dataset: ds.to_string(),
            current: hex(&current.archive_id[..8]),
            archive: hex(&h.archive_id[..8]),
        }
        .into());
    }
    reg.preflight(&ds, &current.allowed, true)?;
    Ok(Some(RekeyVault {
        reg,
        ds,
        current,
        stanza,
    }))
}

impl RekeyVault {
    /// The dataset's current data key (it opens the archive: the archive
    /// ids matched, and unlocking checks the key commitment).
    pub fn key(&self) -> &DataKey {
        &self.current.key
    }

    /// The archive's Vault stanza, kept as it is (same dataset and mounts).
    pub fn stanza(&self) -> Stanza {
        self.stanza.clone()
    }

    /// Replaces the dataset's record with `key` and `archive_id` for the
    /// same SPIFFE IDs, then renames `tmp` (synced and checked by the
    /// caller) onto `out`. The record is read again first: if it changed
    /// while the archive was re-encrypted (`allow`, `revoke`, `pack --vault
    /// --replace` meanwhile), nothing is replaced. If the rename fails, the
    /// old record is put back (unless the record changed meanwhile again),
    /// so the old archive keeps working; if that fails too, the rekeyed
    /// archive is kept at its temporary name, which the message gives.
    pub fn commit(
        self,
        key: &DataKey,
        archive_id: &[u8; 32],
        tmp: TempOut,
        out: &Path,
        replace: bool,
    ) -> Result<Status, Fail> {
        let ds = &self.ds;
        let allowed = &self.current.allowed;
        // KV v1 has no check-and-set: this narrows the window to the time
        // between this read and the write below (docs/vault.md "Rollback").
        let now = self.reg.current(ds).map_err(|e| {
            let mut f: Fail = e.into();
            f.msg.push_str("; found when about to replace the record, after re-encrypting: nothing was replaced");
            f
        })?;
        if now.archive_id != self.current.archive_id || now.allowed != *allowed {
            return Err(Fail::new(
                exit::ROLLBACK,
                format!(
                    "the Vault record of {ds} changed while the archive was re-encrypted (allow, revoke or pack --replace meanwhile?): nothing was replaced; run rekey again"
                ),
            ));
        }
        let status = match self.reg.register(ds, key, archive_id, allowed, true) {
            Ok(st) => st,
            Err(e) => {
                let f: Fail = e.into();
                return Err(self.put_back(f, archive_id, "the archive was not replaced", tmp));
            }
        };
        match tmp.rename(out, replace) {
            Ok(()) => Ok(status),
            Err((tmp, e)) => {
                let f = Fail::new(exit::OUTPUT, format!("cannot write {}: {e}", out.display()));
                Err(self.put_back(f, archive_id, "the rekeyed archive was not placed", tmp))
            }
        }
    }

    /// After a failed rekey: the old key and archive id back in the record
    /// (a record written halfway, some key copies new and the owner's record
    /// old, is put back whole), unless someone changed it since we wrote it.
    fn put_back(&self, mut f: Fail, new_id: &[u8; 32], what: &str, tmp: TempOut) -> Fail {
        let ds = &self.ds;
        let c = &self.current;
        let ours = match self.reg.current(ds) {
            Ok(now) => now.archive_id == *new_id || now.archive_id == c.archive_id,
            // revoked meanwhile: leave it so
            Err(VaultError::Revoked { .. }) => false,
            Err(_) => true,
        };
        if !ours {
            f.msg.push_str(&format!(
                "; {what}, and the Vault record of {ds} was changed by someone else meanwhile: left as it is"
            ));
            return f;
        }
        match self
            .reg
            .register(ds, &c.key, &c.archive_id, &c.allowed, true)
        {
            Ok(_) => f.msg.push_str(&format!(
                "; {what}, and the Vault record of {ds} is as it was (the old archive still opens)"
            )),
            Err(e) => {
                let kept = tmp.keep();
                f.msg.push_str(&format!(
                    "; {what}, and putting back the old Vault record of {ds} failed too ({e}): the record may now hold the new key, which opens only the rekeyed archive kept at {} (rename it over the old archive; `hpcs-pack inspect` shows its pin)",
                    kept.display()
                ));
            }
        }
        f
    }

    /// Prints the dataset's state after commit.
    pub fn print(st: &Status) {
        print_status(st);
    }
}

// ---------------------------------------------------------------- allow / revoke

/// The dataset a TARGET names: an archive file's Vault stanza, or a name.
fn target(t: &str) -> Result<(Option<VaultRef>, String), Fail> {
    let p = PathBuf::from(t);
    if p.is_file() {
        let sealed = super::open_sealed(&p)?;
        let r = VaultRef::find(&sealed.header().stanzas).ok_or_else(|| {
            Fail::new(
                exit::UNKNOWN_DATASET,
                format!("{t} has no Vault stanza: register it first (hpcs-pack register)"),
            )
        })??;
        let name = r.dataset.clone();
        return Ok((Some(r), name));
    }
    Ok((None, t.to_string()))
}

/// `allow`: add/remove allowed SPIFFE IDs; prints the resulting state.
pub fn allow(a: AllowArgs) -> Result<(), Fail> {
    let (r, name) = target(&a.target)?;
    let (_, reg) = login(&a.v, r.as_ref())?;
    let ds = reg.dataset(&name)?;
    let st = if a.add.is_empty() && a.remove.is_empty() {
        reg.status(&ds)?
    } else {
        reg.set_allowed(&ds, &a.add, &a.remove)?
    };
    print_status(&st);
    Ok(())
}

/// `revoke`: crypto-shreds the dataset's key in Vault.
pub fn revoke(a: RevokeArgs) -> Result<(), Fail> {
    let (r, name) = target(&a.target)?;
    let (_, reg) = login(&a.v, r.as_ref())?;
    let ds = reg.dataset(&name)?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Fail::new(
                exit::USAGE,
                format!("revoking destroys the key of {ds} for good: pass --yes to confirm"),
            ));
        }
        eprint!("Destroy the key of {ds} in Vault? Every copy of its archives becomes unreadable through Vault. Type the dataset name to confirm: ");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if line.trim() != ds.to_string() {
            return Err(Fail::new(exit::USAGE, "not confirmed; nothing was revoked"));
        }
    }
    let st = reg.revoke(&ds)?;
    eprintln!(
        "revoked {}: the key and its {} identity copies were destroyed in Vault; new mounts fail from now on",
        st.dataset,
        st.allowed.len()
    );
    Ok(())
}

// ---------------------------------------------------------------- setup

/// `vault-setup`: the administrator's one-time, idempotent bootstrap.
pub fn setup(a: SetupArgs) -> Result<(), Fail> {
    let s = settings(&a.v, None)?;
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Fail::new(exit::INPUT, format!("cannot read {}: {e}", p.display())))
    };
    let ca = a.jwks_ca.as_deref().map(read).transpose()?;
    let trust = if let Some(u) = &a.jwks_url {
        JwtTrust::JwksUrl {
            url: u.clone(),
            ca_pem: ca,
        }
    } else if let Some(u) = &a.oidc_discovery_url {
        JwtTrust::OidcDiscovery {
            url: u.clone(),
            ca_pem: ca,
        }
    } else if !a.jwt_pubkeys.is_empty() {
        JwtTrust::PublicKeys(
            a.jwt_pubkeys
                .iter()
                .map(|p| read(p))
                .collect::<Result<_, _>>()?,
        )
    } else {
        return Err(Fail::new(
            exit::USAGE,
            "say how Vault learns the trust domain's JWT keys: --jwks-url URL, --oidc-discovery-url URL, or --jwt-pubkey PEM_FILE",
        ));
    };
    let admin = user_login(&a.v, &s)?;
    let opts = SetupOptions {
        trust,
        bound_issuer: a.bound_issuer.clone(),
        user_auth_mounts: if a.user_auth_mounts.is_empty() {
            vec!["userpass".into()]
        } else {
            a.user_auth_mounts.clone()
        },
        enable_userpass: a.enable_userpass,
        workload_token_ttl: a.workload_token_ttl.clone(),
    };
    let rep = vault::setup(&s, admin, &opts)?;
    for l in &rep.lines {
        println!("{l}");
    }
    println!(
        "done. Give data owners the policy {} (e.g. `bao write auth/userpass/users/NAME token_policies={}`, or attach it to an LDAP group); jobs need nothing per dataset.",
        rep.user_policy, rep.user_policy
    );
    Ok(())
}
