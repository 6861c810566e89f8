//! Integration tests: the real `hpcs-spiffe-agent` binary as a child
//! process, driven by real clients (the `spiffe` crate, a raw tonic client)
//! and, when the `bao` binary is available, a real OpenBao dev server.

mod lifecycle;
mod openbao;
mod util;
mod workload_api;
