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

# Per-node wrapper around the hpcs-mount process: creates the mount root,
# mountpoint and scratch directory ($HPCS_SCRATCH_MKDIR, from the
# environment) if needed (an existing mountpoint must be an empty directory),
# forwards SIGTERM/SIGINT to hpcs-mount (which then stops its command and
# unmounts), waits for it and removes the directories it created.
# Arguments: MOUNT_ROOT MOUNTPOINT CMD...
read -r -d '' HPCS_NODE <<'HPCS_NODE_EOF' || true
set -u
root=$1 mp=$2
shift 2
made=()
hpcs_rmdirs() { local d; for d in "${made[@]}"; do rmdir -- "$d" 2>/dev/null; done; }
if [ ! -e "$root" ]; then
    mkdir -p -m 0700 -- "$root" || { echo "hpcs-job: ERROR: cannot create the mount root $root on $(uname -n)" >&2; exit 200; }
    made=("$root")
fi
if [ "$mp" != "$root" ] && [ ! -e "$mp" ]; then
    mkdir -m 0700 -- "$mp" || { echo "hpcs-job: ERROR: cannot create $mp on $(uname -n)" >&2; hpcs_rmdirs; exit 200; }
    made=("$mp" "${made[@]}")
fi
if [ -n "${HPCS_SCRATCH_MKDIR:-}" ] && [ ! -e "$HPCS_SCRATCH_MKDIR" ]; then
    mkdir -p -m 0700 -- "$HPCS_SCRATCH_MKDIR" || { echo "hpcs-job: ERROR: cannot create the scratch directory $HPCS_SCRATCH_MKDIR on $(uname -n)" >&2; hpcs_rmdirs; exit 200; }
    made=("$HPCS_SCRATCH_MKDIR" "${made[@]}")
fi
if [ ! -d "$mp" ] || [ -n "$(ls -A -- "$mp" 2>&1)" ]; then
    echo "hpcs-job: ERROR: the mountpoint $mp on $(uname -n) is not an empty directory (another job, or a stale mount?)" >&2
    hpcs_rmdirs
    exit 200
fi
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
hpcs_rmdirs
exit "$rc"
HPCS_NODE_EOF

# Stops the mount chain (bounded), then makes sure nothing stays mounted here.
hpcs_stop_mounts() {
    local step i
    [ -n "$HPCS_HOLDER_PID" ] || return 0
    if kill -0 "$HPCS_HOLDER_PID" 2>/dev/null; then
        step=
        if [ "$HPCS_SRUN" = 1 ] && [ -f "$HPCS_STATE/ready" ]; then
            step=$(awk '$1 == "hpcs-ready" { print $3; exit }' "$HPCS_STATE/ready")
        fi
        if [ -n "$step" ] && [ "$step" != none ]; then
            scancel --signal=TERM "$SLURM_JOB_ID.$step" 2>/dev/null || kill -TERM "$HPCS_HOLDER_PID" 2>/dev/null
        else
            kill -TERM "$HPCS_HOLDER_PID" 2>/dev/null
        fi
        for ((i = 0; i < 600; i++)); do
            kill -0 "$HPCS_HOLDER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$HPCS_HOLDER_PID" 2>/dev/null; then
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

hpcs_cleanup() {
    local rc=$?
    trap '' TERM INT
    trap - EXIT
    hpcs_stop_mounts
    if [ -n "$HPCS_RESULTS_DIR" ]; then
        hpcs_log "encrypted results: $HPCS_RESULTS_DIR (on your secure device: hpcs-pack results decrypt DIR -o DEST --archive ${HPCS_ARCHIVES[0]} -i IDENTITY)"
    fi
    if [ -n "$HPCS_STATE" ]; then
        rm -rf -- "$HPCS_STATE"
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
HPCS_CMD=("$HPCS_MOUNT_BIN")
if [ "${#HPCS_ARCHIVES[@]}" = 1 ] && [ -z "$HPCS_RESULTS_DIR" ] && [ -z "$HPCS_SCRATCH_SPEC" ]; then
    HPCS_MP=$HPCS_MOUNT_ROOT/${HPCS_NAMES[0]}
    HPCS_CMD+=("${HPCS_ARCHIVES[0]}")
else
    HPCS_MP=$HPCS_MOUNT_ROOT
    for ((i = 0; i < ${#HPCS_ARCHIVES[@]}; i++)); do
        HPCS_CMD+=(--archive "${HPCS_NAMES[i]}=${HPCS_ARCHIVES[i]}")
    done
fi
if [ -n "$HPCS_RESULTS_DIR" ]; then
    HPCS_CMD+=(--output "results=$HPCS_RESULTS_DIR" "${HPCS_RESULTS_ARGS[@]}")
fi
if [ -n "$HPCS_SCRATCH_SPEC" ]; then
    HPCS_CMD+=(--scratch "scratch=$HPCS_SCRATCH_SPEC")
fi
HPCS_CMD+=("$HPCS_MP" "${HPCS_KEY_ARGS[@]}" "${HPCS_MOUNT_ARGS[@]}" --
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

# Wait (bounded) for one ready line per node.
HPCS_DEADLINE=$((SECONDS + HPCS_MOUNT_TIMEOUT))
while :; do
    HPCS_READY=$(grep -c '^hpcs-ready ' "$HPCS_STATE/ready" 2>/dev/null) || HPCS_READY=0
    [ "$HPCS_READY" -ge "$HPCS_NODES" ] && break
    if ! kill -0 "$HPCS_HOLDER_PID" 2>/dev/null; then
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
hpcs_log "mounted on $HPCS_READY node(s)"

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

hpcs_expand "${HPCS_APP[@]}"
HPCS_APP_X=("${HPCS_OUT[@]}")
hpcs_log "running the application: ${HPCS_APP_X[0]}"
if [ "$HPCS_SRUN" = 1 ]; then
    srun "${HPCS_APP_X[@]}"
else
    "${HPCS_APP_X[@]}"
fi
rc=$?
if [ "$rc" -ne 0 ]; then
    hpcs_log "the application exited with status $rc; output verification skipped"
    exit "$rc"
fi

# Outputs built in scratch (written with seeks) go into the results directory,
# which encrypts them as they are copied (sequentially).
for k in "${HPCS_SCRATCH_KEEP[@]}"; do
    hpcs_log "keeping $k: copying it from the scratch directory into the encrypted results"
    if ! { mkdir -p -- "$(dirname -- "$HPCS_RESULTS/$k")" && cp -R -- "$HPCS_SCRATCH/$k" "$HPCS_RESULTS/$k"; }; then
        hpcs_die 205 "copying $HPCS_SCRATCH/$k into the results directory failed (see the message above)"
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
