#!/bin/bash
# Slurm test cluster on one machine: one node in a private network namespace
# (default), or N nodes, each in its own network, UTS and mount namespace.
#
# Usage: tools/slurm/cluster.sh start [--nodes N] [--host NAME=ADDR]...
#                                     [--spiffe-agent BIN [--trust-domain TD]
#                                      [--spiffe-map [NODE:]USER=SPIFFE_ID]...]
#        tools/slurm/cluster.sh stop|status|env
#
# Everything lives under one state directory, ${HPCS_SLURM_DIR:-/var/tmp/hpcs-slurm}:
# slurm.conf, the munge key and socket, spool/state dirs, logs, and the
# namespace files. The daemons run in the foreground under
# tools/slurm/supervise.py, a child subreaper that reaps job processes (PID 1
# here reaps nothing) and kills every descendant on stop. Client commands
# reach the cluster through tools/slurm/in-cluster.sh.
#
# Without --nodes (today's single-node cluster): munged, slurmctld and one
# slurmd `localhost` run in one network namespace (`netns`; slurmctld binds
# 0.0.0.0 whatever the config says, so they must not share the host's
# network), with `lo` up and 127.0.0.2/32 added (glibc host lookups fail
# without a second address).
#
# With --nodes N (N >= 1): a controller namespace (network `netns`, and a
# private mount namespace in which $D/etc/{passwd,group,hosts} are bound over
# /etc) runs munged and slurmctld at 10.99.0.254 (`ctl`) on a bridge; nodes
# node1..nodeN each get their own network namespace (nodes/NODE/netns, a veth
# on the bridge, address 10.99.0.I), hostname (UTS namespace) and mount
# namespace with a private /tmp (nodes/NODE/tmp, the node's local disk), /run
# and /dev/shm (tmpfs), and /dev/fuse mode 0666, as on real clusters
# (fusermount3 stays setuid root). A FUSE mount on one node is invisible on
# the others. Every other path, the state directory included, is shared by
# all nodes: it plays the parallel filesystem (so the state directory must
# not be under /tmp, /run or /dev/shm). Two unprivileged users, hpcs-u1 and
# hpcs-u2 (homes under $D/home), exist inside the cluster only; run commands
# as them with `in-cluster.sh --user hpcs-u1 ...`, which also gives them the
# default locked-memory limit of a login (ulimit -l 8192 KiB, Linux's
# default; HPCS_SLURM_USER_MEMLOCK=BYTES to change). Slurm passes the
# submitter's limits on to the job (PropagateResourceLimits=ALL, Slurm's
# default).
# --host NAME=ADDR adds a line to the cluster's /etc/hosts (repeatable; a
# name may get several addresses). --spiffe-agent BIN runs the development
# SPIFFE agent (tools/hpcs-spiffe-agent) on every node, on SPIRE's socket
# path /run/spire/agent/public/api.sock (node-private), all signing with one
# key ($D/spiffe/key.pem; public key $D/spiffe/jwt-pub.pem for Vault), as
# SPIRE agents get their SVIDs signed by one server. --spiffe-map
# [NODE:]USER=ID gives USER (name or uid) that SPIFFE ID on every node, or on
# NODE only (which then wins over the all-nodes entry for that user).
#
# start   idempotent: does nothing but print the env if the cluster is up
#         (exit 1 if it runs with another number of nodes); otherwise clears
#         namespaces left by a crash, then waits (bounded) until every node
#         is idle. Must run as root.
# stop    idempotent: stops the supervisor (and so every daemon, agent and job
#         process), removes the namespace mounts (network namespaces, with
#         their bridge and veths, and every node's mounts go with them);
#         keeps logs unless HPCS_SLURM_CLEAN=1.
# status  prints up/down and `sinfo`; exit 0 if up, 3 if down.
# env     prints `export` lines: SLURM_CONF, HPCS_SLURM_DIR, HPCS_SLURM_RUN
#         (and HPCS_SLURM_NODES, HPCS_SLURM_USERS, SPIFFE_ENDPOINT_SOCKET with --nodes).
#
# HPCS_SLURM_EPILOG=PATH adds Epilog=PATH to slurm.conf (e.g. tools/slurm/epilog.sh).
# Installs nothing: it lists missing commands and exits 2.
# Exit codes: 0 ok, 1 failed to start/stop, 2 missing prerequisites or bad usage,
# 3 (status only) cluster down.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
D=${HPCS_SLURM_DIR:-/var/tmp/hpcs-slurm}
NETNS=$D/netns
SUP_PID=$D/supervise.pid
START_TIMEOUT=${HPCS_SLURM_START_TIMEOUT:-60}
SUBNET=10.99.0
CTL_ADDR=$SUBNET.254
USERS=(hpcs-u1 hpcs-u2)
AGENT_SOCKET=/run/spire/agent/public/api.sock

die() { echo "cluster.sh: $1" >&2; exit "${2:-1}"; }

need() {
    local missing=() c
    for c in munged mungekey slurmctld slurmd sinfo sbatch scontrol unshare nsenter ip python3 mountpoint "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if ((${#missing[@]})); then
        echo "cluster.sh: missing commands: ${missing[*]}" >&2
        echo "  install: apt-get install -y slurm-wlm munge iproute2 util-linux python3 openssl" >&2
        exit 2
    fi
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons run as root, SlurmUser=root)" 2
}

# Number of nodes of the running (or last) multi-node cluster; empty for the
# single-node layout.
nodes_of() { if [[ -f $D/nodes/count ]]; then cat "$D/nodes/count"; fi; }

in_ns() {
    if [[ -n $(nodes_of) ]]; then
        SLURM_CONF=$D/slurm.conf nsenter -t "$(<"$SUP_PID")" -n -m -- "$@"
    else
        SLURM_CONF=$D/slurm.conf nsenter --net="$NETNS" -- "$@"
    fi
}

sup_alive() {
    local pid state
    [[ -f $SUP_PID ]] || return 1
    pid=$(<"$SUP_PID")
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$pid/stat")
    [[ $state != Z ]] && grep -q supervise "/proc/$pid/cmdline" 2>/dev/null
}

print_env() {
    local n
    n=$(nodes_of)
    cat <<ENV
export HPCS_SLURM_DIR=$(printf %q "$D")
export SLURM_CONF=$(printf %q "$D/slurm.conf")
# run Slurm clients inside the cluster's namespaces:
export HPCS_SLURM_RUN=$(printf %q "$HERE/in-cluster.sh")
# e.g. \$HPCS_SLURM_RUN sbatch --wrap hostname; \$HPCS_SLURM_RUN squeue
ENV
    if [[ -n $n ]]; then
        cat <<ENV
export HPCS_SLURM_NODES=$n
# unprivileged users (e.g. \$HPCS_SLURM_RUN --user hpcs-u1 sbatch ...):
export HPCS_SLURM_USERS=$(printf %q "${USERS[*]}")
export SPIFFE_ENDPOINT_SOCKET=unix://$AGENT_SOCKET
ENV
    fi
}

# slurm.conf; $1: number of nodes, empty for the single-node layout.
write_conf() {
    local n=$1 cpus i
    cpus=$(nproc)
    {
        echo "# Generated by tools/slurm/cluster.sh for a test cluster."
        echo "ClusterName=hpcs-test"
        if [[ -n $n ]]; then
            echo "SlurmctldHost=ctl($CTL_ADDR)"
        else
            echo "SlurmctldHost=localhost(127.0.0.1)"
        fi
        cat <<CONF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
ReturnToService=2
# Jobs stay visible to scontrol for 10 minutes after they end.
MinJobAge=600
# scancel: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/state
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmctldDebug=info
SlurmdDebug=info
CONF
        if [[ -n $n ]]; then
            echo "SlurmdSpoolDir=$D/spool/slurmd-%n"
            echo "SlurmdPidFile=$D/run/slurmd-%n.pid"
            echo "SlurmdLogFile=$D/log/slurmd-%n.log"
            for ((i = 1; i <= n; i++)); do
                echo "NodeName=node$i NodeAddr=$SUBNET.$i CPUs=$cpus State=UNKNOWN"
            done
            echo "PartitionName=debug Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP"
        else
            echo "SlurmdSpoolDir=$D/spool/slurmd"
            echo "SlurmdPidFile=$D/run/slurmd.pid"
            echo "SlurmdLogFile=$D/log/slurmd.log"
            echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN"
            echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
        fi
        if [[ -n ${HPCS_SLURM_EPILOG:-} ]]; then
            echo "Epilog=$HPCS_SLURM_EPILOG"
        fi
    } >"$D/slurm.conf"
}

# Unmounts every namespace file of this state dir (none may be in use).
drop_namespaces() {
    local f
    for f in "$NETNS" "$D"/nodes/node*/netns; do
        if grep -q " $f nsfs" /proc/mounts 2>/dev/null; then
            umount "$f" || die "cannot unmount $f"
        fi
        rm -f "$f"
    done
}

# The cluster's /etc/passwd, /etc/group and /etc/hosts: the host's plus the
# test users (uids from 4701 on that the host does not use) and the nodes.
write_etc() {
    local n=$1 uid=4700 u i
    shift
    mkdir -p "$D/etc" "$D/home"
    chmod 0755 "$D/home"
    cp /etc/passwd "$D/etc/passwd.tmp"
    cp /etc/group "$D/etc/group.tmp"
    for u in "${USERS[@]}"; do
        uid=$((uid + 1))
        while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
        echo "$u:x:$uid:$uid:hpcs test user:$D/home/$u:/bin/bash" >>"$D/etc/passwd.tmp"
        echo "$u:x:$uid:" >>"$D/etc/group.tmp"
        mkdir -p "$D/home/$u"
        chown "$uid:$uid" "$D/home/$u"
        chmod 0700 "$D/home/$u"
    done
    {
        echo "127.0.0.1 localhost"
        echo "$CTL_ADDR ctl"
        for ((i = 1; i <= n; i++)); do echo "$SUBNET.$i node$i"; done
        for i in "$@"; do echo "${i#*=} ${i%%=*}"; done
    } >"$D/etc/hosts.tmp"
    for f in passwd group hosts; do
        chmod 0644 "$D/etc/$f.tmp"
        mv -f "$D/etc/$f.tmp" "$D/etc/$f"
    done
}

# uid of user $1 (a name from $D/etc/passwd, or a number).
uid_of() {
    if [[ $1 =~ ^[0-9]+$ ]]; then echo "$1"; return; fi
    awk -F: -v u="$1" '$1 == u { print $3; f = 1 } END { exit !f }' "$D/etc/passwd" ||
        die "--spiffe-map: no user '$1' in the cluster (users: ${USERS[*]})" 2
}

# Per-node agent command lines (nodes/NODE/agent.args, one word a line).
# $1 nodes, $2 agent, $3 trust domain, then the --spiffe-map values.
write_agents() {
    local n=$1 agent=$2 td=$3 m node user id i key
    shift 3
    declare -A map=()
    for m in "$@"; do
        [[ $m == *=* ]] || die "--spiffe-map $m: expected [NODE:]USER=SPIFFE_ID" 2
        id=${m#*=}
        user=${m%%=*}
        node='*'
        if [[ $user == *:* ]]; then node=${user%%:*}; user=${user#*:}; fi
        user=$(uid_of "$user") || exit 2
        map["$node|$user"]=$id
    done
    mkdir -p "$D/spiffe"
    chmod 0700 "$D/spiffe"
    if [[ ! -s $D/spiffe/key.pem ]]; then
        (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/spiffe/key.pem.tmp" 2>/dev/null) ||
            die "openssl could not create the agents' signing key"
        mv -f "$D/spiffe/key.pem.tmp" "$D/spiffe/key.pem"
    fi
    openssl pkey -in "$D/spiffe/key.pem" -pubout -out "$D/spiffe/jwt-pub.pem" 2>/dev/null ||
        die "openssl could not write the agents' public key"
    chmod 0644 "$D/spiffe/jwt-pub.pem"
    for ((i = 1; i <= n; i++)); do
        {
            printf '%s\n' "$agent" --trust-domain "$td" --key-file "$D/spiffe/key.pem"
            for key in "${!map[@]}"; do
                node=${key%%|*}
                user=${key#*|}
                if [[ $node == "node$i" ]] || { [[ $node == '*' ]] && [[ -z ${map["node$i|$user"]:-} ]]; }; then
                    printf '%s\n' --map "$user=${map[$key]}"
                fi
            done
        } >"$D/nodes/node$i/agent.args"
    done
}

# The network: a bridge in the controller's namespace, one veth per node.
make_network() {
    local n=$1 i nd
    touch "$NETNS"
    unshare --net="$NETNS" true
    nsenter --net="$NETNS" sh -euc "
        ip link set lo up
        ip link add br0 type bridge
        ip addr add $CTL_ADDR/24 dev br0
        ip link set br0 up"
    for ((i = 1; i <= n; i++)); do
        nd=$D/nodes/node$i
        touch "$nd/netns"
        unshare --net="$nd/netns" true
        nsenter --net="$NETNS" sh -euc "
            ip link add veth$i type veth peer name eth0 netns $nd/netns
            ip link set veth$i master br0 up"
        nsenter --net="$nd/netns" sh -euc "
            ip link set lo up
            ip addr add $SUBNET.$i/24 dev eth0
            ip link set eth0 up"
    done
}

# In a new mount namespace: detaches the copies of the host's FUSE mounts
# and namespace files (other than this cluster's) it inherited, which would
# otherwise keep other users' filesystems and namespaces alive.
drop_inherited_mounts() {
    local m
    awk -v d="$D/" '$3 ~ /^fuse/ || ($3 == "nsfs" && index($2, d) != 1) { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do
        umount -l "$(printf '%b' "$m")" 2>/dev/null || true
    done
}

# Inside the controller's new mount and UTS namespaces: the cluster's /etc
# files and hostname `ctl` (slurmctld wants its SlurmctldHost name), then the
# supervisor (in the controller's network namespace).
ctl_main() {
    local f
    drop_inherited_mounts
    for f in passwd group hosts; do mount --bind "$D/etc/$f" "/etc/$f"; done
    hostname ctl
    exec nsenter --net="$NETNS" -- python3 "$HERE/supervise.py" "$@"
}

# Inside node $1's new mount and UTS namespaces: its private directories,
# /dev/fuse for everyone, hostname, the SPIFFE agent, then slurmd.
node_main() {
    local name=$1 nd=$D/nodes/$1 dev i cmd
    read -r -a dev < <(stat -c '%t %T' /dev/fuse)
    drop_inherited_mounts
    mount --bind "$nd/tmp" /tmp
    mount -t tmpfs -o mode=0755,nosuid hpcs-run /run
    mount -t tmpfs -o mode=1777,nosuid,nodev hpcs-shm /dev/shm
    mkdir -m 0755 /run/hpcs-node
    mknod -m 0666 /run/hpcs-node/fuse c "$((16#${dev[0]}))" "$((16#${dev[1]}))"
    mount --bind /run/hpcs-node/fuse /dev/fuse
    hostname "$name"
    echo $$ >"$nd/pid"
    if [[ -s $nd/agent.args ]]; then
        mkdir -p "$(dirname "$AGENT_SOCKET")"
        mapfile -t cmd <"$nd/agent.args"
        "${cmd[@]}" --socket "$AGENT_SOCKET" --ready-file /run/hpcs-node/agent.ready \
            </dev/null >>"$D/log/agent-$name.log" 2>&1 &
        for ((i = 0; i < 200; i++)); do
            [[ -e /run/hpcs-node/agent.ready ]] && break
            sleep 0.1
        done
        [[ -e /run/hpcs-node/agent.ready ]] || die "$name: the SPIFFE agent did not start (see $D/log/agent-$name.log)"
    fi
    exec slurmd -D -N "$name" -f "$D/slurm.conf"
}

start() {
    local n="" agent="" td=example.org maps=() hosts=() i deadline idle=0 want bg
    while (($#)); do
        case $1 in
            --nodes) n=${2:-}; shift 2 ;;
            --host) hosts+=("${2:-}"); shift 2 ;;
            --spiffe-agent) agent=${2:-}; shift 2 ;;
            --trust-domain) td=${2:-}; shift 2 ;;
            --spiffe-map) maps+=("${2:-}"); shift 2 ;;
            *) die "start: unknown option $1" 2 ;;
        esac
    done
    if [[ -n $n ]] && ! [[ $n =~ ^[1-9][0-9]?$ ]]; then die "--nodes $n: give a number from 1 to 99" 2; fi
    if [[ -z $n ]] && { ((${#maps[@]} + ${#hosts[@]})) || [[ -n $agent ]]; }; then
        die "--host, --spiffe-agent and --spiffe-map need --nodes" 2
    fi
    for i in "${hosts[@]}"; do
        [[ $i =~ ^[A-Za-z0-9.-]+=[0-9.]+$ ]] || die "--host $i: expected NAME=IPV4ADDRESS" 2
    done
    if [[ -n $agent ]]; then
        [[ -x $agent ]] || die "--spiffe-agent $agent: not an executable file" 2
        need openssl prlimit setpriv mknod
    else
        ((${#maps[@]} == 0)) || die "--spiffe-map needs --spiffe-agent" 2
        need
    fi
    local running
    running=$(nodes_of)
    if sup_alive; then
        if [[ $running != "$n" ]]; then
            die "already running ${running:+with --nodes $running}${running:-as the single-node cluster}; stop it first"
        fi
        echo "cluster.sh: already running (supervisor pid $(<"$SUP_PID"))" >&2
        print_env
        return 0
    fi
    if [[ -n $n ]]; then
        mkdir -p "$D"
        case $(realpath "$D")/ in
            /tmp/* | /run/* | /dev/shm/*)
                die "with --nodes the state directory must be shared by the nodes, so not under /tmp, /run or /dev/shm (private to each node): set HPCS_SLURM_DIR, e.g. /var/tmp/hpcs-slurm" 2 ;;
        esac
    fi
    drop_namespaces
    rm -rf "$D/nodes"
    mkdir -p "$D"/{state,run,log,munge,spool}
    chmod 0755 "$D" "$D/spool" "$D/munge"
    rm -f "$D/munge/munge.sock" "$D/munge/munge.sock.lock" "$SUP_PID"
    [[ -s $D/munge/munge.key ]] || mungekey -c -k "$D/munge/munge.key" >/dev/null
    chmod 0600 "$D/munge/munge.key"
    write_conf "$n"
    q() { printf '%q ' "$@"; }
    local munged slurmctld
    munged=$(q munged -F -f -S "$D/munge/munge.sock" --key-file "$D/munge/munge.key" \
        --pid-file "$D/run/munged.pid" --log-file "$D/log/munged.log" --seed-file "$D/munge/seed")
    slurmctld=$(q slurmctld -D -i -f "$D/slurm.conf")
    export HPCS_SLURM_DIR=$D
    if [[ -z $n ]]; then
        mkdir -p "$D/spool/slurmd"
        chmod 0755 "$D/spool/slurmd"
        touch "$NETNS"
        unshare --net="$NETNS" true
        nsenter --net="$NETNS" ip link set lo up
        nsenter --net="$NETNS" ip addr replace 127.0.0.2/32 dev lo
        # setsid: the supervisor outlives this script and its terminal.
        SLURM_CONF=$D/slurm.conf setsid nsenter --net="$NETNS" -- python3 "$HERE/supervise.py" \
            --pid-file "$SUP_PID" --grace 15 --cmd "$munged" --cmd "$slurmctld" \
            --cmd "$(q slurmd -D -N localhost -f "$D/slurm.conf")" \
            </dev/null >>"$D/log/supervise.log" 2>&1 &
        want=1
        bg=$!
    else
        for ((i = 1; i <= n; i++)); do
            mkdir -p "$D/nodes/node$i/tmp" "$D/spool/slurmd-node$i"
            chmod 1777 "$D/nodes/node$i/tmp"
        done
        write_etc "$n" "${hosts[@]}"
        [[ -z $agent ]] || write_agents "$n" "$agent" "$td" "${maps[@]}"
        make_network "$n"
        echo "$n" >"$D/nodes/count"
        local cmds=(--cmd "$munged" --cmd "$slurmctld")
        for ((i = 1; i <= n; i++)); do
            cmds+=(--cmd "$(q unshare --mount --uts --propagation private -- \
                nsenter --net="$D/nodes/node$i/netns" -- "$HERE/cluster.sh" _node "node$i")")
        done
        SLURM_CONF=$D/slurm.conf setsid unshare --mount --uts --propagation private -- \
            "$HERE/cluster.sh" _ctl --pid-file "$SUP_PID" --grace 15 "${cmds[@]}" \
            </dev/null >>"$D/log/supervise.log" 2>&1 &
        want=$n
        bg=$!
    fi
    # Wait (bounded) for every node to become idle.
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$bg" 2>/dev/null || break
        if [[ -f $SUP_PID ]]; then
            idle=$(in_ns sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 == "idle" { n++ } END { print n + 0 }') || idle=0
            ((idle >= want)) && break
        fi
        sleep 0.2
    done
    if ((idle < want)); then
        echo "cluster.sh: $idle of $want node(s) idle after ${START_TIMEOUT}s; last log lines:" >&2
        tail -n 5 "$D"/log/*.log >&2 || true
        stop
        exit 1
    fi
    echo "cluster.sh: up (supervisor pid $(<"$SUP_PID"), ${n:-1} node(s), state dir $D)" >&2
    print_env
}

stop() {
    local pid deadline
    if [[ -f $SUP_PID ]]; then
        pid=$(<"$SUP_PID")
        if sup_alive; then
            kill -TERM "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 40))
            while sup_alive && ((SECONDS < deadline)); do sleep 0.1; done
            if sup_alive; then
                echo "cluster.sh: supervisor $pid did not stop; killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$SUP_PID"
    fi
    # Daemons started outside the supervisor (should not exist) are reported, not hunted.
    drop_namespaces
    rm -f "$D/munge/munge.sock" "$D/munge/munge.sock.lock" "$D"/nodes/node*/pid
    if [[ ${HPCS_SLURM_CLEAN:-0} == 1 ]]; then
        rm -rf "$D"
    fi
    echo "cluster.sh: stopped" >&2
}

status() {
    local n
    if sup_alive; then
        n=$(nodes_of)
        echo "up (supervisor pid $(<"$SUP_PID"), ${n:-1} node(s), state dir $D)"
        in_ns sinfo -N || true
        return 0
    fi
    echo "down (state dir $D)"
    return 3
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) status ;;
    env) print_env ;;
    _ctl) shift; ctl_main "$@" ;;
    _node) node_main "$2" ;;
    *) echo "usage: $0 start [--nodes N] [--host NAME=ADDR]... [--spiffe-agent BIN [--trust-domain TD] [--spiffe-map [NODE:]USER=ID]...] | stop | status | env" >&2; exit 2 ;;
esac
