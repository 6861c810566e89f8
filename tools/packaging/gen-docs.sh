#!/usr/bin/env bash
# Regenerates the generated packaging files under tools/packaging/: the man
# pages (man/) and shell completions (completions/) from the binaries' clap
# definitions, and the crates and checksums lists of the easyconfig
# (easybuild/hpcs-VERSION.eb) from Cargo.lock. It runs the tests that check
# them with HPCS_WRITE_DOCS=1, which makes them write the files instead of
# comparing (without it, as in every `cargo test`, they fail when a committed
# file is stale). Same packages and features as tools/test.sh, so the debug
# build is shared. Commit what this changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
HPCS_WRITE_DOCS=1 cargo test --workspace --features hpcs/rustcrypto --locked -q --lib --bins --tests \
  -- man_pages_and_completions_are_current easyconfig_crates_are_current
git status --short -- tools/packaging
