#!/usr/bin/env bash
# The age demo against installed binaries only: whatever hpcs-pack and
# hpcs-mount are first on PATH (the Debian package's in a clean chroot, the
# EasyBuild module's after `module load hpcs`). Run as an unprivileged user
# so that the mount goes through fusermount3, as on a compute node. Needs
# age-keygen, and DIR (default: a new temporary directory) to be writable.
# Exits non-zero, saying what failed, unless every step behaves.
set -euo pipefail

dir=${1:-$(mktemp -d)}
cd "$dir"
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

for b in hpcs-pack hpcs-mount hpcs-job age-keygen fusermount3; do
  command -v "$b" >/dev/null || fail "$b is not on PATH"
done
echo "demo: $(hpcs-pack --version) from $(command -v hpcs-pack), $(hpcs-mount --version), $(hpcs-job --version)"

mkdir -p data/sub mnt
echo 'hello from an hpcs archive' > data/sub/greeting.txt
head -c 300000 /dev/urandom > data/blob.bin
age-keygen -o key.txt 2>/dev/null
age-keygen -o other.txt 2>/dev/null

hpcs-pack pack data -o data.hpcs -r "$(age-keygen -y key.txt)" -q
hpcs-pack verify data.hpcs -i key.txt -q
[[ $(hpcs-pack cat data.hpcs -i key.txt sub/greeting.txt) == 'hello from an hpcs archive' ]] \
  || fail "hpcs-pack cat does not give the packed file back"

# Exec mode: mount, run the command on the decrypted tree, unmount, exit with its code.
out=$(hpcs-mount data.hpcs mnt -i key.txt -- sh -c 'cat mnt/sub/greeting.txt && cmp mnt/blob.bin data/blob.bin && exit 7') && rc=0 || rc=$?
[[ $rc -eq 7 ]] || fail "hpcs-mount exec mode exited $rc, expected the command's 7"
[[ $out == 'hello from an hpcs archive' ]] || fail "read through the mount: got '$out'"
grep -q " $(pwd)/mnt " /proc/self/mountinfo && fail "mnt is still mounted after exec mode"
[[ -z $(ls -A mnt) ]] || fail "mnt is not empty after unmounting"

# A key the archive was not packed for: the documented exit code 12 (wrong key).
hpcs-mount data.hpcs mnt -i other.txt -- true 2>err.txt && rc=0 || rc=$?
[[ $rc -eq 12 ]] || fail "a wrong key gave exit $rc, expected 12: $(cat err.txt)"

how=$([[ $(id -u) -eq 0 ]] && echo "by root" || echo "through fusermount3 as $(id -un)")
echo "demo: ok (packed, verified, mounted $how, read, unmounted; a wrong key refused with 12)"
