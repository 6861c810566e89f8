#!/usr/bin/env bash
# Regenerates the generated packaging files under tools/packaging/: the man
# pages (man/) and shell completions (completions/) from the binaries' clap
# definitions, and the crates and checksums lists of the easyconfig
# (easybuild/hpcs-VERSION.eb) from Cargo.lock. It runs the tests that check
# them with HPCS_WRITE_DOCS=1, which makes them write the files instead of
# comparing (without it, as in every `cargo test`, they fail when a committed
# file is stale). Same packages and features as tools/test.sh, so the debug
# build is shared. Commit what this changes.
# After merging a branch that changes a command line (clap), src/exit.rs's
# table or Cargo.lock, run this and commit; if the merge conflicts in these
# generated files, take either side (git checkout --theirs -- tools/packaging/man
# tools/packaging/completions tools/packaging/easybuild), then run this.
set -euo pipefail
cd "$(dirname "$0")/../.."
HPCS_WRITE_DOCS=1 cargo test --workspace --features hpcs/rustcrypto --locked -q --lib --bins --tests \
  -- man_pages_and_completions_are_current easyconfig_crates_are_current
git status --short -- tools/packaging
