//! Generated gRPC messages, server and client for the SPIFFE Workload API.
//!
//! `workload.rs` is produced from `proto/workload.proto` by the generator in
//! `codegen/` (protox + tonic-prost-build, no `protoc`) and checked in, so
//! building the agent needs no protobuf compiler. The server half is what
//! the agent serves; the client half lets the integration tests make raw
//! calls that the `spiffe` crate would never make (no security header,
//! empty audience). A unit test fails when the proto changes without the
//! code being regenerated.

#![allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]

include!("workload.rs");

#[cfg(test)]
mod tests {
    /// The proto this code was generated from is the one in `proto/`.
    #[test]
    fn generated_code_matches_the_proto() {
        let generated = include_str!("workload.rs");
        let recorded = generated
            .lines()
            .find_map(|l| l.strip_prefix("// proto-sha256: "))
            .expect("generated file records the proto's SHA-256");
        let proto = include_bytes!("../../proto/workload.proto");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, proto);
        let actual: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            recorded, actual,
            "proto/workload.proto changed: regenerate src/pb/workload.rs (see codegen/README.md)"
        );
    }
}
