#!/usr/bin/env bash
# The Vault + SPIFFE demo (README): everything on this machine, nothing left behind.
#   1. start a local OpenBao (bao server -dev) and the DEVELOPMENT SPIFFE agent,
#   2. the site admin runs `hpcs-pack vault-setup` once; alice gets a Vault login,
#   3. alice packs a generated dataset with --vault --allow <the job's SPIFFE ID>,
#   4. the "job" mounts it with hpcs-mount in exec mode: the key comes from Vault,
#      released to the job's SPIFFE ID (JWT-SVID), and reads every file,
#      and writes a result into the mount's results directory, encrypted on
#      write to alice's age key; alice decrypts and checks it,
#   5. the audit log shows which SPIFFE ID read which dataset key,
#   6. alice revokes the key; the next mount is refused.
# The age-identity path is tools/demo.sh. Processes are stopped and the
# temporary directory removed on exit (trap), also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --workspace --quiet
bin=${HPCS_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/debug}

work=$(mktemp -d "${TMPDIR:-/tmp}/hpcs-vault-demo.XXXXXX")
pids=()
cleanup() {
  if mountpoint -q "$work/mnt" 2>/dev/null; then
    fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt" || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
# Polls a condition up to 30 s (no fixed sleeps).
wait_for() {
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: FAILED: timed out waiting for $what" >&2; exit 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export BAO_ADDR=http://127.0.0.1:$port
# A -dev server speaks plain http: allow it for this demo only (hpcs refuses
# http:// otherwise, since whoever binds the port first would get the SVID).
export HPCS_VAULT_ALLOW_HTTP=1
unset BAO_TOKEN VAULT_TOKEN VAULT_ADDR SPIFFE_ENDPOINT_SOCKET
job_id=spiffe://example.org/demo/genome-analysis

say "starting OpenBao (dev mode, in memory) on $BAO_ADDR with a file audit device"
mkdir -p "$work/bao-home"
cat > "$work/audit.hcl" <<EOF
audit "file" "hpcs-audit" {
  options {
    file_path = "$work/audit.log"
  }
}
EOF
HOME=$work/bao-home bao server -dev -dev-root-token-id=root \
  -dev-listen-address="127.0.0.1:$port" -config="$work/audit.hcl" > "$work/bao.log" 2>&1 &
pids+=($!)
wait_for "OpenBao" env BAO_TOKEN=root bao status

say "starting the DEVELOPMENT SPIFFE agent: uid $(id -u) gets $job_id"
"$bin/hpcs-spiffe-agent" --socket "$work/agent.sock" --trust-domain example.org \
  --map "$(id -u)=$job_id" --key-file "$work/agent-key.pem" \
  --jwks-pem-out "$work/jwt-pub.pem" --ready-file "$work/agent.ready" > /dev/null 2> "$work/agent.log" &
pids+=($!)
wait_for "the SPIFFE agent" test -e "$work/agent.ready"

say "site admin, once: hpcs-pack vault-setup (KV mount, JWT auth trusting the trust domain, policies)"
BAO_TOKEN=root "$bin/hpcs-pack" vault-setup --jwt-pubkey "$work/jwt-pub.pem" --enable-userpass
printf 'correct horse battery staple\n' > "$work/alice.pw"
BAO_TOKEN=root bao write auth/userpass/users/alice \
  password="correct horse battery staple" token_policies=hpcs-user > /dev/null

say "generating a sample dataset"
mkdir -p "$work/dataset/samples" "$work/dataset/reference"
for i in $(seq -w 1 200); do
  printf 'sample %s\tpatient-%s\tvalue=%s\n' "$i" "$((RANDOM % 1000))" "$RANDOM" > "$work/dataset/samples/s$i.tsv"
done
head -c $((16 << 20)) /dev/urandom > "$work/dataset/reference/genome.bin"
src_sum=$(cd "$work/dataset" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)

say "alice, on her secure device: hpcs-pack pack --vault --allow $job_id -r <her own age key> (userpass login)"
age-keygen -o "$work/alice.key" 2> /dev/null
alice_pub=$(age-keygen -y "$work/alice.key")
login=(--vault-login userpass --vault-user alice --vault-password-file "$work/alice.pw")
"$bin/hpcs-pack" pack "$work/dataset" -o "$work/genome.hpcs" -r "$alice_pub" \
  --vault --dataset genome --allow "$job_id" "${login[@]}"
"$bin/hpcs-pack" inspect "$work/genome.hpcs" | grep -E 'archive id|key stanzas'

say "the job: hpcs-mount in exec mode; the key comes from Vault for the job's SPIFFE ID"
say "(results written to mnt/results are encrypted on write to alice's key, into $work/results)"
mkdir -p "$work/mnt" "$work/results"
export SPIFFE_ENDPOINT_SOCKET=unix://$work/agent.sock
# shellcheck disable=SC2016 # $1 is expanded by the inner sh
job_sum=$("$bin/hpcs-mount" -v --archive genome="$work/genome.hpcs" "$work/mnt" \
  --output results="$work/results" --output-recipient "$alice_pub" -- \
  sh -c 'cd "$1/genome" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d" " -f1 |
         tee "$1/results/checksum.txt"; ls samples | wc -l > "$1/results/sample-count.txt"' job "$work/mnt")
echo "checksum of what the job read: $job_sum"
echo "checksum of the source:        $src_sum"
[[ "$job_sum" == "$src_sum" ]] || { echo "demo: FAILED: checksums differ" >&2; exit 1; }
if mountpoint -q "$work/mnt"; then echo "demo: FAILED: mount left behind" >&2; exit 1; fi

say "on shared storage: only encrypted results (random names, age files, a manifest)"
ls "$work/results"
say "alice, on her secure device: hpcs-pack results decrypt (checks every result came from the job)"
"$bin/hpcs-pack" results decrypt "$work/results" -o "$work/alice-results" \
  --archive "$work/genome.hpcs" -i "$work/alice.key"
[[ "$(cat "$work/alice-results/checksum.txt")" == "$src_sum" ]] ||
  { echo "demo: FAILED: the decrypted result differs" >&2; exit 1; }
echo "decrypted result: $(cat "$work/alice-results/sample-count.txt") samples, checksum matches"

say "Vault's audit log: who read which dataset key"
python3 - "$work/audit.log" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    p = e.get("request", {}).get("path", "")
    if e.get("type") == "response" and p.startswith("hpcs/ds/") and e["request"].get("operation") == "read" \
            and e.get("auth", {}).get("metadata", {}).get("role", "").startswith("spiffe-"):
        print(f'{e["time"]}  {e["auth"]["display_name"]}  read  {p}')
EOF

say "alice revokes the key (crypto-shredding); the next mount is refused"
"$bin/hpcs-pack" revoke --yes genome "${login[@]}"
set +e
"$bin/hpcs-mount" "$work/genome.hpcs" "$work/mnt" -- true
code=$?
set -e
echo "hpcs-mount exit code: $code (45 = key revoked)"
[[ $code -eq 45 ]] || { echo "demo: FAILED: expected exit 45 after revocation" >&2; exit 1; }

say "demo: OK (Vault released the key only to the job's SPIFFE ID; revocation stops new mounts)"
