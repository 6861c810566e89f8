#!/bin/bash
# Runs one command (sbatch, squeue, scancel, scontrol, sinfo, srun...) inside
# the test cluster's network namespace with SLURM_CONF set, e.g.
#   tools/slurm/in-cluster.sh sbatch --wrap hostname
# The cluster must have been started by tools/slurm/cluster.sh start (same
# HPCS_SLURM_DIR). Needs root (nsenter). Exit code: the command's, or 2 if the
# cluster is not there.
set -euo pipefail
D=${HPCS_SLURM_DIR:-/tmp/hpcs-slurm}
if ! grep -q " $D/netns nsfs" /proc/mounts; then
    echo "in-cluster.sh: no cluster at $D (run tools/slurm/cluster.sh start)" >&2
    exit 2
fi
(($#)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
export SLURM_CONF=$D/slurm.conf
exec nsenter --net="$D/netns" -- "$@"
