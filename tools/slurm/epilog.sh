#!/bin/sh
# Slurm Epilog safety net for hpcs jobs: kills what is left of the ending job,
# detaches the FUSE mounts it left behind, and removes its mount root.
#
# A job script from hpcs-job unmounts on every path it can run on (success,
# failure, scancel, a killed hpcs-mount). Only if the batch shell itself is
# SIGKILLed (KillWait too short for the cleanup, the OOM killer) can a dead
# mount (ENOTCONN) stay behind; and with proctrack/linuxproc the job's
# orphaned processes escape Slurm's tracking. Install this as (or call it
# from) the Epilog of slurm.conf; it runs as root on every node of the job.
#
# 1. Processes owned by the job's user whose environment has
#    SLURM_JOB_ID=<this job> get SIGKILL (proctrack/cgroup sites have none left).
# 2. FUSE mounts under the job's mount roots are detached (umount -l), deepest
#    first, and the empty directories removed. Mount roots: HPCS_EPILOG_ROOTS,
#    space-separated templates with %u (user) and %j (job id); default
#    "/tmp/hpcs-%u-%j", hpcs-job's default --mount-root.
# Always exits 0 (a failing epilog drains the node); messages go to stderr.

user=${SLURM_JOB_USER:-}
uid=${SLURM_JOB_UID:-}
job=${SLURM_JOB_ID:-}
[ -n "$user" ] && [ -n "$uid" ] && [ -n "$job" ] || exit 0

for e in /proc/[0-9]*/environ; do
    d=${e%/environ}
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    [ "$(stat -c %u "$d" 2>/dev/null)" = "$uid" ] || continue
    # our own children (tr, grep) carry this job's id too
    [ "$(awk '{ print $4 }' "$d/stat" 2>/dev/null)" = "$$" ] && continue
    if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qx "SLURM_JOB_ID=$job"; then
        kill -KILL "$p" 2>/dev/null && echo "hpcs epilog: job $job: killed leftover process $p" >&2
    fi
done

for t in ${HPCS_EPILOG_ROOTS:-/tmp/hpcs-%u-%j}; do
    root=$(printf '%s' "$t" | sed -e "s/%u/$user/g" -e "s/%j/$job/g")
    case $root in /?*) ;; *) continue ;; esac
    awk -v r="$root" '$3 ~ /^fuse/ && ($2 == r || index($2, r "/") == 1) { print $2 }' /proc/mounts |
        sort -r | while read -r m; do
            if umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null; then
                echo "hpcs epilog: job $job: detached $m" >&2
            else
                echo "hpcs epilog: job $job: could not detach $m" >&2
            fi
        done
    if [ -d "$root" ]; then
        find "$root" -xdev -depth -type d -empty -delete 2>/dev/null
    fi
done
exit 0
