# ---- runtime (fixed text from hpcs-job; it reads only the settings above) ----
set -u -o pipefail
umask 077
shopt -u patsub_replacement 2>/dev/null || true

hpcs_log() { printf 'hpcs-job: %s\n' "$*" >&2; }
hpcs_die() {
    local rc=$1
    shift
    printf 'hpcs-job: ERROR: %s\n' "$*" >&2
    exit "$rc"
}

HPCS_T0=$(date +%s%N)
HPCS_JOBID=${SLURM_JOB_ID:-$$}
HPCS_USER=$(id -un) || hpcs_die 200 "cannot determine the user name"
HPCS_MOUNT_ROOT=${HPCS_ROOT_TEMPLATE//%j/"$HPCS_JOBID"}
HPCS_MOUNT_ROOT=${HPCS_MOUNT_ROOT//%u/"$HPCS_USER"}
export HPCS_MOUNT_ROOT
HPCS_RESULTS_DIR=
if [ -n "$HPCS_RESULTS_TEMPLATE" ]; then
    HPCS_RESULTS_DIR=${HPCS_RESULTS_TEMPLATE//%j/"$HPCS_JOBID"}
    HPCS_RESULTS_DIR=${HPCS_RESULTS_DIR//%u/"$HPCS_USER"}
fi
# The scratch directory: DIR[:SIZE] for hpcs-mount; DIR for each node to create.
HPCS_SCRATCH_SPEC=
if [ -n "$HPCS_SCRATCH_TEMPLATE" ]; then
    HPCS_SCRATCH_SPEC=${HPCS_SCRATCH_TEMPLATE//%j/"$HPCS_JOBID"}
    HPCS_SCRATCH_SPEC=${HPCS_SCRATCH_SPEC//%u/"$HPCS_USER"}
fi
export HPCS_SCRATCH_MKDIR=${HPCS_SCRATCH_SPEC%%:*}
HPCS_STATE=
HPCS_HOLDER_PID=
HPCS_APP_PID=
HPCS_MP=
HPCS_NODES=1
HPCS_OUT=()

# Sets HPCS_OUT to the arguments with every {root} replaced by the mount root.
hpcs_expand() {
    local a pat='{root}'
    HPCS_OUT=()
    for a in "$@"; do
        HPCS_OUT+=("${a//"$pat"/"$HPCS_MOUNT_ROOT"}")
    done
}

# True if something is mounted exactly at $1 (on this node).
hpcs_mounted() {
    awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# Per-node wrapper around the hpcs-mount process (runs on every node).
# Creates the private mount root itself: a new directory, or an existing one
# only if it is a real directory (not a symbolic link) owned by the job's user
# with mode 0700, in a parent directory no other user can rename it in;
# anything else stops with 200 (another user could have planted it). Then
# creates the mountpoint if needed (an existing one must be an empty
# directory) and the scratch directory ($HPCS_SCRATCH_MKDIR, from the
# environment: a new directory, or an existing one owned by the job's user
# that is not a symbolic link and nobody else can write), runs hpcs-mount, forwards SIGTERM/SIGINT to it (it then stops
# its command and unmounts), detaches the mount if hpcs-mount died without
# unmounting (SIGKILL, OOM killer), removes the directories it created and
# reports `hpcs-exit NODE STEP STATUS` on stdout, next to the holder's
# `hpcs-ready NODE STEP`.
# Arguments: MOUNT_ROOT MOUNTPOINT CMD...
read -r -d '' HPCS_NODE <<'HPCS_NODE_EOF' || true
set -u
root=$1 mp=$2
shift 2
node=$(uname -n)
step=${SLURM_STEP_ID:-none}
me=$(id -u)
made=()
# SIGTERM/SIGINT before hpcs-mount runs: stop after the checks; after: pass
# it on (hpcs-mount then stops its command and unmounts).
child=
stop=0
trap 'stop=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT
hpcs_rmdirs() { local d; for d in "${made[@]}"; do rmdir -- "$d" 2>/dev/null; done; }
hpcs_fail() {
    local rc=$1
    shift
    # (a signal to the whole step also makes the checks' commands fail)
    if [ "$stop" = 1 ]; then
        rc=143
    else
        printf 'hpcs-job: ERROR: on %s: %s\n' "$node" "$*" >&2
    fi
    hpcs_rmdirs
    printf 'hpcs-exit %s %s %s\n' "$node" "$step" "$rc"
    exit "$rc"
}
err=$(mkdir -m 0700 -- "$root" 2>&1) && made=("$root")
# stat does not follow a symbolic link in the last component.
st=$(stat -c '%u %a %F' -- "$root" 2>/dev/null) ||
    hpcs_fail 200 "cannot create the mount root $root: ${err#mkdir: }"
read -r uid mode kind <<<"$st"
if [ "$kind" != directory ]; then
    hpcs_fail 200 "the mount root $root exists and is a $kind, not a directory the job created; another user may have planted it. Remove it or choose another --mount-root"
fi
if [ "$uid" != "$me" ]; then
    hpcs_fail 200 "the mount root $root exists and belongs to uid $uid, not to you (uid $me); another user may have planted it. Remove it or choose another --mount-root"
fi
# (a set-group-ID bit inherited from the parent is harmless)
if [ $((8#$mode & ~8#2000)) != $((8#700)) ]; then
    hpcs_fail 200 "the mount root $root exists with mode $mode; it must be private (0700). Remove it or choose another --mount-root"
fi
# The parent must not let anybody else rename or replace the mount root.
pst=$(stat -L -c '%u %a' -- "$root/..") || hpcs_fail 200 "cannot inspect the parent directory of $root"
read -r puid pmode <<<"$pst"
if { [ "$puid" != 0 ] && [ "$puid" != "$me" ]; } ||
    { [ $((8#$pmode & 8#022)) != 0 ] && [ $((8#$pmode & 8#1000)) = 0 ]; }; then
    hpcs_fail 200 "the parent directory of the mount root $root (owner uid $puid, mode $pmode) lets other users rename or replace it; use a directory only you and root can write, or a sticky one such as /tmp"
fi
if [ "$mp" != "$root" ] && [ ! -e "$mp" ]; then
    mkdir -m 0700 -- "$mp" || hpcs_fail 200 "cannot create $mp"
    made=("$mp" "${made[@]}")
fi
if [ ! -d "$mp" ] || [ -n "$(ls -A -- "$mp" 2>&1)" ]; then
    hpcs_fail 200 "the mountpoint $mp is not an empty directory (another job, or a stale mount?)"
fi
sc=${HPCS_SCRATCH_MKDIR:-}
if [ -n "$sc" ]; then
    if [ ! -e "$sc" ] && [ ! -L "$sc" ]; then
        mkdir -p -- "$(dirname -- "$sc")" && mkdir -m 0700 -- "$sc" ||
            hpcs_fail 200 "cannot create the scratch directory $sc"
        made=("$sc" "${made[@]}")
    fi
    st=$(stat -c '%u %a %F' -- "$sc" 2>/dev/null) || hpcs_fail 200 "cannot inspect the scratch directory $sc"
    read -r uid mode kind <<<"$st"
    if [ "$kind" != directory ] || [ "$uid" != "$me" ] || [ $((8#$mode & 8#022)) != 0 ]; then
        hpcs_fail 200 "the scratch directory $sc exists as a $kind of uid $uid with mode $mode; it must be a directory of yours that nobody else can write. Remove it or choose another --scratch"
    fi
fi
[ "$stop" = 0 ] || hpcs_fail 143 stopped
# The results run id fixed by hpcs-job for this node (one per node).
if [ -n "${HPCS_RUN_LIST:-}" ]; then
    read -ra runs <<<"$HPCS_RUN_LIST"
    args=()
    for a in "$@"; do
        [ "$a" != "{run}" ] || a=${runs[${SLURM_NODEID:-0}]}
        args+=("$a")
    done
    set -- "${args[@]}"
fi
"$@" &
child=$!
[ "$stop" = 0 ] || kill -TERM "$child" 2>/dev/null
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
if awk -v p="$mp" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; then
    printf 'hpcs-job: WARNING: on %s: %s is still mounted (hpcs-mount ended with status %s); detaching it\n' "$node" "$mp" "$rc" >&2
    fusermount3 -u -z "$mp" 2>/dev/null || fusermount -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
        printf 'hpcs-job: ERROR: on %s: could not detach %s\n' "$node" "$mp" >&2
fi
hpcs_rmdirs
printf 'hpcs-exit %s %s %s\n' "$node" "$step" "$rc"
exit "$rc"
HPCS_NODE_EOF

# Waits until process $1 has ended, at most $2 tenths of a second; false if
# it still runs.
hpcs_wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}

# The mount step's ready file: in the state directory, or, once the cleanup
# has removed that, through the descriptor it kept open (the mount step may
# still be writing to it).
HPCS_READY_FD=
hpcs_ready_file() {
    if [ -n "$HPCS_READY_FD" ]; then
        printf '/dev/fd/%s\n' "$HPCS_READY_FD"
    else
        printf '%s/ready\n' "$HPCS_STATE"
    fi
}

# The id of the mount step (from its first ready or exit line), if known.
hpcs_mount_step() {
    awk '$1 == "hpcs-ready" || $1 == "hpcs-exit" { print $3; exit }' "$(hpcs_ready_file)" 2>/dev/null
}

# Stops the application if it still runs, bounded, then SIGKILL: on one node
# SIGTERM to its process group; under srun SIGTERM to the job's other steps
# through scancel (a signal to srun itself would make it SIGKILL the tasks).
hpcs_stop_app() {
    local s sent=0 mstep
    [ -n "$HPCS_APP_PID" ] || return 0
    if kill -0 "$HPCS_APP_PID" 2>/dev/null; then
        if [ "$HPCS_SRUN" = 1 ]; then
            mstep=$(hpcs_mount_step)
            for s in $(squeue -h -s -j "$SLURM_JOB_ID" -o %i 2>/dev/null); do
                case ${s#*.} in
                    "$mstep" | *[!0-9]*) ;;
                    *) scancel --signal=TERM "$s" 2>/dev/null && sent=1 ;;
                esac
            done
            [ "$sent" = 1 ] || kill -TERM "$HPCS_APP_PID" 2>/dev/null
        else
            kill -TERM -- "-$HPCS_APP_PID" 2>/dev/null || kill -TERM "$HPCS_APP_PID" 2>/dev/null
        fi
        if ! hpcs_wait_gone "$HPCS_APP_PID" 100; then
            hpcs_log "WARNING: the application did not stop within 10 s; killing it"
            kill -KILL -- "-$HPCS_APP_PID" 2>/dev/null || kill -KILL "$HPCS_APP_PID" 2>/dev/null
        fi
    fi
    wait "$HPCS_APP_PID" 2>/dev/null
    HPCS_APP_PID=
}

# Stops the mount chain (bounded), then makes sure nothing stays mounted here.
# Several nodes: SIGTERM to the mount step through scancel (killing srun
# would make Slurm SIGKILL the tasks and leave dead mounts behind).
hpcs_stop_mounts() {
    local step
    [ -n "$HPCS_HOLDER_PID" ] || return 0
    if kill -0 "$HPCS_HOLDER_PID" 2>/dev/null; then
        step=
        [ "$HPCS_SRUN" = 0 ] || step=$(hpcs_mount_step)
        if [ -n "$step" ] && [ "$step" != none ]; then
            # scancel fails for nodes whose task has already ended, but
            # signals the others; only without scancel is srun signalled.
            scancel --signal=TERM "$SLURM_JOB_ID.$step" 2>/dev/null
            [ $? != 127 ] || kill -TERM "$HPCS_HOLDER_PID" 2>/dev/null
        else
            kill -TERM "$HPCS_HOLDER_PID" 2>/dev/null
        fi
        if ! hpcs_wait_gone "$HPCS_HOLDER_PID" 600; then
            hpcs_log "WARNING: the mount process did not stop within 60 s; killing it"
            kill -KILL "$HPCS_HOLDER_PID" 2>/dev/null
        fi
    fi
    wait "$HPCS_HOLDER_PID" 2>/dev/null
    HPCS_HOLDER_PID=
    if hpcs_mounted "$HPCS_MP"; then
        hpcs_log "WARNING: $HPCS_MP is still mounted; detaching it"
        fusermount3 -u -z "$HPCS_MP" 2>/dev/null ||
            fusermount -u -z "$HPCS_MP" 2>/dev/null ||
            umount -l "$HPCS_MP" 2>/dev/null ||
            hpcs_log "ERROR: could not detach $HPCS_MP"
        # The wrapper could not remove the directories under the dead mount.
        [ "$HPCS_MP" = "$HPCS_MOUNT_ROOT" ] || rmdir -- "$HPCS_MP" 2>/dev/null
        case $HPCS_ROOT_TEMPLATE in *%j*) rmdir -- "$HPCS_MOUNT_ROOT" 2>/dev/null ;; esac
    fi
    return 0
}

# The first `hpcs-exit NODE STEP STATUS` line of the mount step, if any.
hpcs_first_exit() {
    awk '$1 == "hpcs-exit" { print $2, $4; exit }' "$(hpcs_ready_file)" 2>/dev/null
}

hpcs_cleanup() {
    local rc=$?
    trap '' TERM INT
    trap - EXIT
    # Remove the state directory first, keeping its ready file open for the
    # stop: a cleanup cut short by Slurm's SIGKILL (KillWait after scancel)
    # then leaves no state directory on the node.
    if [ -n "$HPCS_STATE" ]; then
        if [ -f "$HPCS_STATE/ready" ]; then
            { exec {HPCS_READY_FD}<"$HPCS_STATE/ready"; } 2>/dev/null || HPCS_READY_FD=
        fi
        rm -rf -- "$HPCS_STATE"
    fi
    hpcs_stop_app
    hpcs_stop_mounts
    if [ -n "$HPCS_RESULTS_DIR" ]; then
        hpcs_log "encrypted results: $HPCS_RESULTS_DIR (on your secure device: hpcs-pack results decrypt DIR -o DEST --archive ${HPCS_ARCHIVES[0]} -i IDENTITY$(printf ' --expect-run %s' "${HPCS_RUN_IDS[@]}"))"
    fi
    exit "$rc"
}

hpcs_on_signal() {
    hpcs_log "stopped by a signal (scancel or time limit); unmounting"
    exit 143
}

trap hpcs_cleanup EXIT
trap hpcs_on_signal TERM INT

HPCS_STATE=$(mktemp -d "${TMPDIR:-/tmp}/hpcs-job.XXXXXXXX") ||
    hpcs_die 200 "cannot create a private state directory under ${TMPDIR:-/tmp}"

# One hpcs-mount in exec mode serves every archive as MOUNT_ROOT/NAME (one
# archive: ARCHIVE mounted at MOUNT_ROOT/NAME; several: --archive NAME=ARCHIVE
# ... at MOUNT_ROOT, which hpcs-mount shows as one directory per name). Its
# command, the holder, reports readiness on stdout once the mount is up, then
# waits to be stopped (and, through setpriv --pdeathsig, dies with hpcs-mount
# if that is killed, instead of being orphaned).
# With encrypted results, the results directory sits next to the archives
# under MOUNT_ROOT (hpcs-mount --output), so the archives are named too.
# (umask 077: the directories it creates are private.)
if [ -n "$HPCS_RESULTS_DIR" ]; then
    mkdir -p -- "$HPCS_RESULTS_DIR" ||
        hpcs_die 200 "cannot create the results directory $HPCS_RESULTS_DIR"
    hpcs_log "results are encrypted into $HPCS_RESULTS_DIR"
fi
if [ -n "$HPCS_SCRATCH_SPEC" ]; then
    hpcs_log "scratch files are encrypted into $HPCS_SCRATCH_MKDIR on each node (key in memory only)"
fi
# Every archive carries its pin (--pin) and, with --vault, its dataset
# (--vault-dataset): hpcs-mount refuses any other archive with 18.
HPCS_CMD=("$HPCS_MOUNT_BIN")
if [ "${#HPCS_ARCHIVES[@]}" = 1 ] && [ -z "$HPCS_RESULTS_DIR" ] && [ -z "$HPCS_SCRATCH_SPEC" ]; then
    HPCS_MP=$HPCS_MOUNT_ROOT/${HPCS_NAMES[0]}
    HPCS_CMD+=("${HPCS_ARCHIVES[0]}")
    HPCS_SEL=("")
else
    HPCS_MP=$HPCS_MOUNT_ROOT
    HPCS_SEL=()
    for ((i = 0; i < ${#HPCS_ARCHIVES[@]}; i++)); do
        HPCS_CMD+=(--archive "${HPCS_NAMES[i]}=${HPCS_ARCHIVES[i]}")
        HPCS_SEL+=("${HPCS_NAMES[i]}=")
    done
fi
HPCS_PIN_ARGS=()
for ((i = 0; i < ${#HPCS_ARCHIVES[@]}; i++)); do
    [ -z "${HPCS_PINS[i]}" ] || HPCS_PIN_ARGS+=(--pin "${HPCS_SEL[i]}${HPCS_PINS[i]}")
    [ -z "${HPCS_DATASETS[i]}" ] || HPCS_PIN_ARGS+=(--vault-dataset "${HPCS_SEL[i]}${HPCS_DATASETS[i]}")
done
if [ -n "$HPCS_RESULTS_DIR" ]; then
    HPCS_CMD+=(--output "results=$HPCS_RESULTS_DIR" "${HPCS_RESULTS_ARGS[@]}")
    export HPCS_RUN_LIST="${HPCS_RUN_IDS[*]}"
fi
if [ -n "$HPCS_SCRATCH_SPEC" ]; then
    HPCS_CMD+=(--scratch "scratch=$HPCS_SCRATCH_SPEC")
fi
HPCS_CMD+=("$HPCS_MP" "${HPCS_KEY_ARGS[@]}" "${HPCS_PIN_ARGS[@]}" "${HPCS_MOUNT_ARGS[@]}" --
    /bin/sh -c 'printf "hpcs-ready %s %s\n" "$(uname -n)" "${SLURM_STEP_ID:-none}"
        if command -v setpriv >/dev/null; then exec setpriv --pdeathsig TERM sleep infinity; fi
        exec sleep infinity')

if [ "$HPCS_SRUN" = 1 ]; then
    HPCS_NODES=${SLURM_JOB_NUM_NODES:-1}
    hpcs_log "mounting ${#HPCS_ARCHIVES[@]} archive(s) under $HPCS_MOUNT_ROOT on $HPCS_NODES node(s)"
    srun --overlap --nodes="$HPCS_NODES" --ntasks="$HPCS_NODES" --ntasks-per-node=1 \
        /bin/bash -c "$HPCS_NODE" hpcs-node "$HPCS_MOUNT_ROOT" "$HPCS_MP" "${HPCS_CMD[@]}" >"$HPCS_STATE/ready" &
else
    hpcs_log "mounting ${#HPCS_ARCHIVES[@]} archive(s) under $HPCS_MOUNT_ROOT"
    /bin/bash -c "$HPCS_NODE" hpcs-node "$HPCS_MOUNT_ROOT" "$HPCS_MP" "${HPCS_CMD[@]}" >"$HPCS_STATE/ready" &
fi
HPCS_HOLDER_PID=$!

# A node's mount step ended before the application could start: say where
# and why, and stop (the EXIT trap stops the other nodes' mounts).
hpcs_mount_failed() {
    if [ "$2" = 200 ]; then
        hpcs_die 200 "the mount root could not be set up on $1 (see the message above); the application was NOT started"
    fi
    if [ "$2" = 18 ]; then
        hpcs_die 201 "mounting failed on $1: an archive is not the one this job was pinned to (replaced, an older version, or someone else's; see hpcs-mount's message above); nothing was mounted and the application was NOT started"
    fi
    hpcs_die 201 "mounting failed on $1: hpcs-mount exited with status $2 before the job started (see its message above); the application was NOT started"
}

# Wait (bounded) for a ready line from every node; any node's failure ends
# the wait at once.
HPCS_DEADLINE=$((SECONDS + HPCS_MOUNT_TIMEOUT))
while :; do
    HPCS_READY=$(awk '$1 == "hpcs-ready" && !seen[$2]++ { n++ } END { print n + 0 }' "$HPCS_STATE/ready" 2>/dev/null) ||
        HPCS_READY=0
    [ "$HPCS_READY" -ge "$HPCS_NODES" ] && break
    HPCS_ALIVE=1
    kill -0 "$HPCS_HOLDER_PID" 2>/dev/null || HPCS_ALIVE=0
    HPCS_EXIT=$(hpcs_first_exit)
    if [ -n "$HPCS_EXIT" ]; then
        # shellcheck disable=SC2086 # NODE STATUS
        hpcs_mount_failed $HPCS_EXIT
    fi
    if [ "$HPCS_ALIVE" = 0 ]; then
        wait "$HPCS_HOLDER_PID"
        rc=$?
        HPCS_HOLDER_PID=
        hpcs_die 201 "mounting failed: the mount process exited with status $rc before the job started (see its message above)"
    fi
    [ "$SECONDS" -lt "$HPCS_DEADLINE" ] ||
        hpcs_die 201 "the archives were not mounted on all $HPCS_NODES node(s) within ${HPCS_MOUNT_TIMEOUT}s ($HPCS_READY ready)"
    sleep 0.1
done
hpcs_mounted "$HPCS_MP" || hpcs_die 201 "$HPCS_MP is not mounted on $(uname -n)"
HPCS_T1=$(date +%s%N)
hpcs_log "mounted on $HPCS_READY node(s) in $(((HPCS_T1 - HPCS_T0) / 1000000)) ms since the job started"

if [ -n "$HPCS_RESULTS_DIR" ]; then
    export HPCS_RESULTS=$HPCS_MOUNT_ROOT/results
fi
if [ -n "$HPCS_SCRATCH_SPEC" ]; then
    # Temporary files of the job's tools go to the encrypted scratch too.
    export HPCS_SCRATCH=$HPCS_MOUNT_ROOT/scratch
    export TMPDIR=$HPCS_SCRATCH
fi
for ((i = 0; i < ${#HPCS_ENV_NAMES[@]}; i++)); do
    hpcs_expand "${HPCS_ENV_VALUES[i]}"
    export "${HPCS_ENV_NAMES[i]}=${HPCS_OUT[0]}"
done

if [ -n "$HPCS_SECRET_ENTRY" ]; then
    hpcs_expand "$HPCS_SECRET_ENTRY"
    if [ ! -f "${HPCS_OUT[0]}" ] || [ ! -x "${HPCS_OUT[0]}" ]; then
        hpcs_die 204 "the secret job script ${HPCS_OUT[0]} is missing or not executable in its archive"
    fi
fi

hpcs_expand "${HPCS_VERIFY_IN[@]}"
for s in "${HPCS_OUT[@]}"; do
    hpcs_log "input verification: $s"
    "$s" "$HPCS_MOUNT_ROOT"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        hpcs_die 202 "input verification FAILED: $s exited with status $rc; the application was NOT started"
    fi
done

# The application runs in the background (srun, or its own process group on
# one node) so that the job notices at once when a node's mount ends under it
# (hpcs-mount killed, out of memory): then the application is stopped and
# the job ends with 205 instead of running on with a dead mount.
hpcs_expand "${HPCS_APP[@]}"
HPCS_APP_X=("${HPCS_OUT[@]}")
hpcs_log "running the application: ${HPCS_APP_X[0]}"
if [ "$HPCS_SRUN" = 1 ]; then
    srun "${HPCS_APP_X[@]}" &
elif command -v setsid >/dev/null; then
    setsid "${HPCS_APP_X[@]}" &
else
    "${HPCS_APP_X[@]}" &
fi
HPCS_APP_PID=$!
while kill -0 "$HPCS_APP_PID" 2>/dev/null; do
    HPCS_EXIT=$(hpcs_first_exit)
    if [ -n "$HPCS_EXIT" ]; then
        read -r HPCS_NODE_X rc <<<"$HPCS_EXIT"
        hpcs_log "the mount on $HPCS_NODE_X ended while the application was running; stopping the application"
        hpcs_stop_app
        hpcs_die 205 "the archives' mount on $HPCS_NODE_X ended before the application finished (hpcs-mount exited with status $rc: killed, or out of memory?); the application was stopped and its results are incomplete"
    fi
    sleep 0.2
done
wait "$HPCS_APP_PID"
rc=$?
HPCS_APP_PID=
if [ "$rc" -ne 0 ]; then
    hpcs_log "the application exited with status $rc; output verification skipped"
    exit "$rc"
fi

# Outputs built in scratch (written with seeks) go into the results directory,
# which encrypts them as they are copied (sequentially).
for k in "${HPCS_SCRATCH_KEEP[@]}"; do
    hpcs_log "keeping $k: copying it from the scratch directory into the encrypted results"
    if ! { mkdir -p -- "$(dirname -- "$HPCS_RESULTS/$k")" && cp -R -- "$HPCS_SCRATCH/$k" "$HPCS_RESULTS/$k"; }; then
        hpcs_die 206 "copying $HPCS_SCRATCH/$k into the results directory failed (see the message above)"
    fi
done

hpcs_expand "${HPCS_VERIFY_OUT[@]}"
for s in "${HPCS_OUT[@]}"; do
    hpcs_log "output verification: $s"
    "$s" "$HPCS_MOUNT_ROOT"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        hpcs_die 203 "output verification FAILED: $s exited with status $rc"
    fi
done

hpcs_log "job finished successfully"
exit 0
