#!/usr/bin/env bash
# The test command (README): set up, then run every test of the workspace
# with both crypto backends, then the end-to-end Slurm workflow tests on a
# real single-node cluster (root only), then the benchmark-ceiling tests in a
# build with the feature bench-ceilings. Missing prerequisites fail instead of
# skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export HPCS_REQUIRE_FUSE=1 HPCS_REQUIRE_BAO=1 HPCS_REQUIRE_AGE=1 HPCS_REQUIRE_C4GH=1 HPCS_REQUIRE_BOTH_BACKENDS=1 HPCS_REQUIRE_SHELLCHECK=1
cargo fmt --all --check
cargo clippy --workspace --all-targets --features hpcs/rustcrypto --locked -- -D warnings
cargo clippy --workspace --all-targets --features hpcs/rustcrypto,hpcs/bench-ceilings --locked -- -D warnings
# --workspace includes fuzz/ (hpcs-fuzz): its smoke test runs every fuzz
# target on its committed corpus and 2000 mutations (at most 10 s) each;
# docs/fuzzing.md. The coverage-guided runs are tools/fuzz.sh, not run here.
cargo test --workspace --features hpcs/rustcrypto --locked "$@"
if [[ $(id -u) -eq 0 ]]; then
  HPCS_NO_BUILD=1 tools/slurm/test.sh
else
  echo "test: the Slurm workflow tests (tools/slurm/test.sh) need root; not run" >&2
fi
# The benchmark ceilings (feature bench-ceilings) are in no default build, so
# the tests above check that hpcs-mount lacks them; last (it rebuilds
# target/debug/hpcs-mount with them), the tests of the ceilings and of the
# bench harness that measures them.
cargo test --features hpcs/rustcrypto,hpcs/bench-ceilings --locked --test it -- bench:: mount::ceilings::
