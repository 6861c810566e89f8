#!/usr/bin/env bash
# The demo (README). By default it runs the full story with the key released
# by OpenBao to a SPIFFE workload identity (tools/demo-vault.sh). With --age it
# runs the plain age-identity path: on a fresh machine, set up, build, then
#   1. generate a sample dataset (small files and large files),
#   2. pack it with hpcs-pack for a fresh age identity,
#   3. inspect and verify the archive,
#   4. mount it with hpcs-mount in exec mode and let a "job" read every file,
#   5. compare the job's checksum with the source's.
# Everything lives in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --age) ;;
  "" | --vault) exec tools/demo-vault.sh ;;
  *) echo "usage: tools/demo.sh [--vault | --age]" >&2; exit 2 ;;
esac
tools/setup.sh
cargo build --workspace --quiet
bin=${HPCS_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/debug}

work=$(mktemp -d "${TMPDIR:-/tmp}/hpcs-demo.XXXXXX")
cleanup() {
  if mountpoint -q "$work/sd-container/dataset" 2>/dev/null; then
    fusermount3 -u "$work/sd-container/dataset" 2>/dev/null || umount -l "$work/sd-container/dataset" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "generating a sample dataset in $work/dataset"
mkdir -p "$work/dataset/samples" "$work/dataset/reference"
for i in $(seq -w 1 300); do
  printf 'sample %s\tpatient-%s\tvalue=%s\n' "$i" "$((RANDOM % 1000))" "$RANDOM" > "$work/dataset/samples/s$i.tsv"
done
head -c $((48 << 20)) /dev/urandom > "$work/dataset/reference/genome.bin"
head -c $((3 << 20)) /dev/urandom > "$work/dataset/reference/index.bin"
ln -s reference/genome.bin "$work/dataset/latest"
src_sum=$(cd "$work/dataset" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)

say "creating an age identity (on the researcher's secure device)"
"$(command -v age-keygen)" -o "$work/id.txt" 2> "$work/id.pub"
recipient=$(grep -o 'age1[0-9a-z]*' "$work/id.pub")
echo "recipient: $recipient"

say "hpcs-pack pack"
"$bin/hpcs-pack" pack "$work/dataset" -o "$work/dataset.hpcs" -r "$recipient"

say "hpcs-pack inspect (no key: nothing about the files is visible)"
"$bin/hpcs-pack" inspect "$work/dataset.hpcs"

say "hpcs-pack verify"
"$bin/hpcs-pack" verify "$work/dataset.hpcs" -i "$work/id.txt"

say "hpcs-mount in exec mode: the job reads every file through the mount (decrypted in RAM only)"
mkdir -p "$work/sd-container/dataset"
job_sum=$("$bin/hpcs-mount" "$work/dataset.hpcs" "$work/sd-container/dataset" -i "$work/id.txt" -- \
  sh -c 'cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d" " -f1' job "$work/sd-container/dataset")
echo "checksum of what the job read: $job_sum"
echo "checksum of the source:        $src_sum"
if mountpoint -q "$work/sd-container/dataset"; then
  echo "demo: FAILED: the mount is still there after the job" >&2
  exit 1
fi
if [[ "$job_sum" != "$src_sum" ]]; then
  echo "demo: FAILED: checksums differ" >&2
  exit 1
fi
say "demo: OK (the job read exactly the packed data; the mount is gone)"
