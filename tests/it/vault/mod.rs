//! Integration tests: keys from Vault via SPIFFE, against a real OpenBao.
//!
//! Each test starts its own `bao server -dev` on a free loopback port (with a
//! declarative file audit device), the real dev Workload API agent
//! (`hpcs-spiffe-agent`), runs `hpcs-pack vault-setup` as the administrator and
//! `hpcs-pack pack --vault` as the data owner `alice` (userpass login), then
//! releases the key as a job would (the library's `release_key`, and
//! `hpcs-mount` in exec mode). Without `bao` on PATH the tests
//! print SKIP, unless `HPCS_REQUIRE_BAO=1` (CI), which makes them fail.
//!
//! One module per side: `setup` (the administrator), `owner` (registering,
//! allowing and revoking), `rekey` (re-encryption with the record replaced), `release` (the job), `retry` (Vault unavailable);
//! `harness` holds the site and the shared checks, `servers` OpenBao and the
//! dev agent.

mod harness;
mod owner;
mod rekey;
mod release;
mod retry;
mod servers;
mod setup;
