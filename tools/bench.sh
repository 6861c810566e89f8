#!/usr/bin/env bash
# One-command benchmark of hpcs-mount and hpcs-pack side by side with
# gocryptfs, squashfuse_ll, the page cache and decrypt-then-untar (issue 5),
# with every daemon's CPU per GB read (issue 14), and reads of a .c4gh file
# through a reference archive against crypt4ghfs and crypt4gh decrypt (issue 17).
#
#   tools/bench.sh [--quick|--full|--smoke] [--out DIR] [--workdir DIR] [--keep]
#                  [--no-install] [bench.py options: --reps N --big-size 4G ...]
#
#   --quick   (default) a few minutes on 2 cores; writes to $CARGO_TARGET_DIR/bench/quick
#   --full    ~45 minutes (2 cores); regenerates docs/benchmarks.md and docs/benchmarks.png
#   --smoke   tiny sizes, one repetition, seconds (tests/it/bench.rs); debug binaries allowed
#   --out DIR where benchmarks.md/.png/.json go (full mode: docs/)
#   --workdir DIR  scratch space is a new directory inside DIR (default /var/tmp); full
#             mode needs ~30 GiB (~34 GiB to also extract the 16 GiB tarball; with less it
#             measures age -d | tar -xO, a lower bound); removed at the end unless --keep
#
# Installs the Debian packages it needs (as root; fio gocryptfs squashfuse
# squashfs-tools gnuplot-nox age fuse3, libfuse3-dev for crypt4ghfs), the
# crypt4gh CLI and crypt4ghfs (a virtualenv at $HPCS_C4GHFS_VENV, default
# /opt/hpcs-bench/crypt4ghfs; the Crypt4GH phase leaves it out if missing), builds the release binaries into
# ${CARGO_TARGET_DIR:-target} (HPCS_NO_BUILD=1 reuses them; HPCS_MOUNT_BIN /
# HPCS_PACK_BIN name other binaries), then runs tools/bench/bench.py.
# hpcs-mount is built with the cargo feature bench-ceilings (the hidden
# --bench-null and --bench-nocrypt ceilings, HPCS_BENCH_BACKING_* shaping),
# which no binary for users may have: run `cargo build --release` (without
# it) again before installing target/release/hpcs-mount anywhere.
# Run it as root on a quiet machine: dropping caches between cold runs and
# raising the FUSE read-ahead need root. Every mount is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

mode=quick workroot=/var/tmp keep=0 install=1
pass=()
while (($#)); do
  case $1 in
    --quick | --full | --smoke) mode=${1#--}; pass+=("$1") ;;
    --workdir) workroot=$2; shift ;;
    --workdir=*) workroot=${1#*=} ;;
    --keep) keep=1 ;;
    --no-install) install=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done

# --- Debian packages (only what is missing; tools/setup.sh keeps the list)
if ((install)); then
  tools/setup.sh --bench
else
  tools/setup.sh --bench --no-install
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: not root: caches will not be dropped between cold runs and the FUSE" \
    "read-ahead stays at the kernel default; numbers are not comparable to docs/benchmarks.md" >&2
fi
[[ -e /dev/fuse ]] || { echo "bench: /dev/fuse is missing: FUSE mounts cannot work here" >&2; exit 1; }

# --- binaries
target=${CARGO_TARGET_DIR:-$repo/target}
mount_bin=${HPCS_MOUNT_BIN:-$target/release/hpcs-mount}
pack_bin=${HPCS_PACK_BIN:-$target/release/hpcs-pack}
if [[ -z ${HPCS_MOUNT_BIN:-} && -z ${HPCS_PACK_BIN:-} && ${HPCS_NO_BUILD:-0} != 1 ]]; then
  echo "bench: building release binaries into $target" >&2
  cargo build --release --locked -q -p hpcs -p hpcs-pack --features hpcs/bench-ceilings \
    --bin hpcs-mount --bin hpcs-pack
fi
for b in "$mount_bin" "$pack_bin"; do
  [[ -x $b ]] || { echo "bench: $b is missing (build it, or unset HPCS_NO_BUILD)" >&2; exit 1; }
done
# A build without the ceilings refuses the flag as an unknown argument.
if ! "$mount_bin" --bench-nocrypt --version >/dev/null 2>&1; then
  echo "bench: $mount_bin has no benchmark ceilings: build it with" \
    "'cargo build --release --features hpcs/bench-ceilings', or let this script" \
    "build it (unset HPCS_MOUNT_BIN and HPCS_NO_BUILD)" >&2
  exit 1
fi
build=release
if [[ $mount_bin == */debug/* || $pack_bin == */debug/* ]]; then
  build=debug
  if [[ $mode != smoke ]]; then
    echo "bench: debug binaries ($mount_bin) are only for --smoke; build release ones" >&2
    exit 1
  fi
fi

# --- scratch space, removed (and every mount under it detached) on every path
mkdir -p "$workroot"
work=$(mktemp -d "$workroot/hpcs-bench.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local mp
  # mount points under the work dir, deepest first (octal escapes kept: none are made here)
  while read -r mp; do
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  done < <(awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  if ((keep)); then
    echo "bench: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# bench.py runs in the background so that SIGINT/SIGTERM reach this script at
# once; they are forwarded as SIGTERM, on which bench.py unmounts and exits.
start=$SECONDS
python3 "$repo/tools/bench/bench.py" --workdir "$work" --hpcs-mount "$mount_bin" \
  --hpcs-pack "$pack_bin" --build "$build" "${pass[@]}" &
py=$!
interrupted=0
trap 'interrupted=1; kill -TERM "$py" 2>/dev/null || true' INT TERM HUP
rc=0
while :; do
  wait "$py" && rc=0 || rc=$?
  kill -0 "$py" 2>/dev/null || break
done
((interrupted)) && rc=130
echo "bench: $mode mode took $((SECONDS - start)) s (exit $rc)" >&2
exit "$rc"
