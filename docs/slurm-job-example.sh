#!/bin/bash
# Example Slurm job: mount an encrypted hpcs archive for the length of one
# command (exec mode), so the mount can never outlive the job.
#
#   sbatch docs/slurm-job-example.sh
#
# hpcs-mount mounts the archive read-only under a private directory, waits
# until the kernel answers on it, runs the command, unmounts when the command
# exits and exits with the command's status. scancel and the time limit send
# SIGTERM: hpcs-mount forwards it to the command, then unmounts. Decrypted
# data exists only in locked memory of hpcs-mount (and, unless --direct-io,
# in the kernel page cache); nothing is written to disk.
#
#SBATCH --job-name=hpcs-example
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=01:00:00
# Ask Slurm for a warning signal before the time limit (forwarded to the command).
#SBATCH --signal=B:USR1@120

set -euo pipefail

ARCHIVE=${ARCHIVE:-/scratch/$USER/dataset.hpcs}
# An age identity the archive was packed for (hpcs-pack pack -r ...), readable
# only by you. Later: Vault key release instead of a file.
IDENTITY=${IDENTITY:-$HOME/.config/hpcs/identity.txt}

# A fresh, empty, private mount point on node-local storage.
MNT=$(mktemp -d "${TMPDIR:-/tmp}/hpcs-${SLURM_JOB_ID:-local}.XXXXXX")
trap 'rmdir "$MNT" 2>/dev/null || true' EXIT

# Exec mode: everything after -- runs with the archive mounted at $MNT.
status=0
hpcs-mount "$ARCHIVE" "$MNT" -i "$IDENTITY" --cache-size 1G -- \
    bash -c 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum' _ "$MNT" \
    || status=$?

echo "job command exited with status $status"
exit "$status"
