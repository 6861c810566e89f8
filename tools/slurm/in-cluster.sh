#!/bin/bash
# Runs one command (sbatch, squeue, scancel, scontrol, sinfo, srun...) inside
# the test cluster with SLURM_CONF set, e.g.
#   tools/slurm/in-cluster.sh sbatch --wrap hostname
#   tools/slurm/in-cluster.sh --user hpcs-u1 sbatch --wrap 'ulimit -l'
#   tools/slurm/in-cluster.sh --node node2 findmnt -t fuse
#
# Where: the controller's namespaces (network, and with --nodes the mount
# namespace that has the cluster's users), or with --node NODE that node's
# network, UTS and mount namespaces (its private /tmp, /run, mounts).
# --user USER runs the command as USER (setpriv; HOME, USER and LOGNAME set,
# the rest of the environment kept) with the locked-memory limit a login gets
# by default (ulimit -l 8192 KiB; HPCS_SLURM_USER_MEMLOCK=BYTES to change).
# The working directory is kept unless it is under /tmp, /run or /dev/shm
# (then /). The cluster must have been started by tools/slurm/cluster.sh start
# (same HPCS_SLURM_DIR). Needs root (nsenter). Exit code: the command's, or 2
# if the cluster or the node is not there.
set -euo pipefail
D=${HPCS_SLURM_DIR:-/var/tmp/hpcs-slurm}
node="" user=""
while (($#)); do
    case $1 in
        --node) node=${2:-}; shift 2 ;;
        --user) user=${2:-}; shift 2 ;;
        *) break ;;
    esac
done
(($#)) || { echo "usage: $0 [--node NODE] [--user USER] COMMAND [ARGS...]" >&2; exit 2; }
if ! grep -q " $D/netns nsfs" /proc/mounts; then
    echo "in-cluster.sh: no cluster at $D (run tools/slurm/cluster.sh start)" >&2
    exit 2
fi
export SLURM_CONF=$D/slurm.conf
if [[ -f $D/nodes/count ]]; then
    pidfile=$D/supervise.pid
    [[ -z $node ]] || pidfile=$D/nodes/$node/pid
    if [[ ! -s $pidfile ]]; then
        echo "in-cluster.sh: no ${node:-controller} in the cluster at $D" >&2
        exit 2
    fi
    wd=$PWD
    case $wd/ in /tmp/* | /run/* | /dev/shm/*) wd=/ ;; esac
    enter=(nsenter -t "$(<"$pidfile")" -n -m -u --wd="$wd" --)
else
    [[ -z $node || $node == localhost ]] || { echo "in-cluster.sh: the single-node cluster has only 'localhost'" >&2; exit 2; }
    enter=(nsenter --net="$D/netns" --)
fi
if [[ -n $user ]]; then
    memlock=${HPCS_SLURM_USER_MEMLOCK:-8388608}
    pw=$("${enter[@]}" getent passwd "$user") ||
        { echo "in-cluster.sh: no user '$user' in the cluster" >&2; exit 2; }
    IFS=: read -r _ _ uid gid _ home _ <<<"$pw"
    exec "${enter[@]}" prlimit --memlock="$memlock:$memlock" -- \
        setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
        env HOME="$home" USER="$user" LOGNAME="$user" "$@"
fi
exec "${enter[@]}" "$@"
