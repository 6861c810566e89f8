# Part "vault" of tools/slurm/test.sh (sourced after test-nodes.sh, whose
# cluster, OpenBao dev server (https://vault:8200, audit log $V4/audit.log)
# and site configuration it uses): Vault under load and in HA, with
# simulated nodes (tools/slurm/vault_load.py: one hpcs-mount per simulated
# node, each with its own SPIFFE agent socket) in the cluster controller's
# namespaces. Checks:
#   V1. 64 concurrent key releases against one OpenBao: all succeed, each to
#       its own identity (the SPIFFE ID in hpcs-mount's log, the data read,
#       and every key read in the audit log by the identity whose copy it
#       is); p50/p99 release latency printed;
#   V2. OpenBao stalled (SIGSTOP) for 3 s, and sealed (HTTP 503) for 3 s,
#       while 16 mounts start: they retry and all succeed;
#   V3. OpenBao stalled longer than the mounts' retry budget (retry_secs 3,
#       timeout_secs 2): all 16 fail with exit 40 within 15 s, none hangs;
#   and a mount that does not trust Vault's certificate fails at once with 48;
#   V4. a 3-node OpenBao Raft cluster behind one name (vault-ha: three
#       addresses in /etc/hosts, as DNS would give): SIGKILL of the leader
#       during a burst of 32 releases; every mount succeeds (through a
#       standby or the new leader) or fails with 40, none hangs, none reads
#       another identity's data.
# shellcheck shell=bash disable=SC2016,SC2154

vault_or_skip "Vault under load and in HA" || return 0
((HAVE_BAO)) || return 0
VL=$W/vault-load
mkdir -p "$VL/mnt"
NLOAD=8
say "Vault under load: $NLOAD identities (one agent each), $NLOAD datasets"
for ((k = 0; k < NLOAD; k++)); do
    LOAD_ID[k]=spiffe://example.org/hpcs-test/load/$k
    # (the controller runs the simulated nodes as root)
    "$RUN" "$AGENT" --socket "$VL/agent-$k.sock" --trust-domain example.org --map "0=${LOAD_ID[k]}" \
        --key-file "$HPCS_SLURM_DIR/spiffe/key.pem" --ready-file "$VL/agent-$k.ready" \
        >/dev/null 2>"$VL/agent-$k.log" &
    BG_PIDS+=("$!")
    mkdir -p "$SECURE/load-$k"
    printf '%s load %s %s\n' "$CANARY" "$k" "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        >"$SECURE/load-$k/f.txt"
    LOAD_HASH[k]=$(sha256sum <"$SECURE/load-$k/f.txt" | cut -d' ' -f1)
done
for ((k = 0; k < NLOAD; k++)); do
    wait_until "agent $k" 20 test -e "$VL/agent-$k.ready" || bad "SPIFFE agent $k did not start"
    HOME=$V4 "$RUN" "$PACK" pack -q "$SECURE/load-$k" -o "$VL/load-$k.hpcs" --vault --dataset "load-$k" \
        --allow "${LOAD_ID[k]}" "${VLOGIN[@]}" || bad "pack --vault load-$k failed"
done

# load_spec N PREFIX: the JSON spec of N simulated nodes, node i using
# identity i mod NLOAD and its dataset (archives PREFIX-K.hpcs).
load_spec() {
    local i k
    printf '['
    for ((i = 0; i < $1; i++)); do
        k=$((i % NLOAD))
        ((i == 0)) || printf ','
        printf '{"archive":"%s","mountpoint":"%s","socket":"%s","file":"f.txt","want":"%s"}' \
            "$2-$k.hpcs" "$VL/mnt/$i" "$VL/agent-$k.sock" "${LOAD_HASH[k]}"
    done
    printf ']\n'
}
# run_load NAME N PREFIX TIMEOUT [vault_load.py options]: runs N simulated
# nodes; the report goes to $VL/NAME.json, the summary line to stdout.
run_load() {
    local name=$1 n=$2 prefix=$3 timeout=$4
    shift 4
    load_spec "$n" "$prefix" >"$VL/$name.spec.json"
    "$RUN" python3 "$HERE/vault_load.py" --hpcs-mount "$MOUNT" --timeout "$timeout" "$@" \
        "$VL/$name.spec.json" >"$VL/$name.json" 2>"$VL/$name.log"
    sed 's/^/    /' "$VL/$name.log"
}
# report NAME EXPR: evaluates a Python expression over the report
# (r = the list of results, s = the summary) and prints it.
report() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); r, s = d["results"], d["summary"]
print(eval(sys.argv[2]))' "$VL/$1.json" "$2"
}
# Every result that succeeded read its own dataset's data and was released
# to its own identity (mount i: identity i mod NLOAD).
ids_json=$(printf '"%s",' "${LOAD_ID[@]}")
right_identity() {
    test "$(report "$1" "sum(1 for x in r if x['rc'] == 0 and not (x['hash_ok'] and x['spiffe_id'] == [${ids_json%,}][x['i'] % $NLOAD]))")" = 0
}

# ---- V1 ----
say "Vault under load: 64 concurrent key releases against one OpenBao"
audit_from=$(wc -l <"$V4/audit.log")
run_load load64 64 "$VL/load" 120
check "all 64 mounts succeeded and read their data" test "$(report load64 "s['ok']")" = 64
check "none hung" test "$(report load64 "s['hung']")" = 0
check "each key went to the mount's own identity (hpcs-mount's log, the data read)" right_identity load64
check "the audit log has 64 key reads" \
    test "$(audit_releases "$V4/audit.log" "$audit_from" | grep -c '^read ')" = 64
foreign=$(audit_releases "$V4/audit.log" "$audit_from" | foreign_reads)
check "every key read in the audit log was by the identity whose copy it is" test -z "$foreign"
[[ -z $foreign ]] || printf '    %s\n' "$foreign"
for ((k = 0; k < NLOAD; k++)); do
    n=$(audit_releases "$V4/audit.log" "$audit_from" |
        grep -cxF "read 10.99.0.254 hpcs-jwt-${LOAD_ID[k]} $(slot_of "${LOAD_ID[k]}") hpcs/ds/$VOWNER/load-$k/$(slot_of "${LOAD_ID[k]}")")
    check "identity $k: 8 key reads, of its own copy" test "$n" = 8
done

# ---- V2 ----
say "OpenBao stalled (SIGSTOP) for 3 s while 16 mounts start"
run_load stalled 16 "$VL/load" 60 &
load=$!
sleep 0.5
kill -STOP "$BAO_PID"
sleep 3
kill -CONT "$BAO_PID"
wait "$load"
check "all 16 succeeded after the stall" test "$(report stalled "s['ok']")" = 16
check "some waited for the stalled server (control: the stall hit them)" \
    test "$(report stalled "int(max(x['release_s'] or 0 for x in r) > 2.5)")" = 1
check "none hung" test "$(report stalled "s['hung']")" = 0
check "each to its own identity" right_identity stalled

say "OpenBao sealed (HTTP 503) for 3 s while 16 mounts start"
unseal_key=$(sed -n 's/^Unseal Key: //p' "$V4/bao.log" | head -n1)
HOME=$V4 BAO_TOKEN=root "$RUN" bao operator seal >/dev/null || bad "cannot seal OpenBao"
run_load sealed 16 "$VL/load" 60 &
load=$!
sleep 3
HOME=$V4 "$RUN" bao operator unseal "$unseal_key" >/dev/null || bad "cannot unseal OpenBao"
wait "$load"
check "all 16 succeeded once it was unsealed" test "$(report sealed "s['ok']")" = 16
check "they had been refused (503, sealed) and retried (control)" \
    test "$(report sealed "int(any('sealed' in (x['first_retry'] or '') for x in r))")" = 1
check "none hung" test "$(report sealed "s['hung']")" = 0

# ---- V3 ----
say "OpenBao stalled longer than the retry budget (retry_secs 3, timeout_secs 2)"
printf '[vault]\nretry_secs = 3\ntimeout_secs = 2\n' >"$VL/short.toml"
kill -STOP "$BAO_PID"
HPCS_CONFIG=$VL/short.toml run_load down 16 "$VL/load" 60
kill -CONT "$BAO_PID"
check "all 16 failed with exit 40" test "$(report down "s['exit_codes']")" = "{'40': 16}"
# (a bound against hanging, not a speed target: 3 s of retries + one 2 s
# request, with 10 s to spare for start-up on a busy machine)
check "none hung: the slowest gave up within the budget" \
    test "$(report down "int(s['total_max_s'] < 15)")" = 1

say "a mount that does not trust Vault's certificate fails at once (48), without retrying"
BAO_CACERT=/etc/ssl/certs/ca-certificates.crt run_load untrusted 1 "$VL/load" 60
check "it failed with 48" test "$(report untrusted "s['exit_codes']")" = "{'48': 1}"
check "at once: no retry" test "$(report untrusted "s['retried']")" = 0
check "it says the TLS certificate was refused" \
    test "$(report untrusted "int('certificate' in ' '.join(r[0]['stderr_tail']))")" = 1

# ---- V4 ----
say "Vault in HA: a 3-node OpenBao Raft cluster at https://vault-ha:8200 (three addresses)"
VH=$W/vault-ha
mkdir -p "$VH"
cp "$V4/ca.pem" "$V4/server.pem" "$V4/server.key" "$VH/"
if bao_ha "$VH"; then
    ha_env=(env HOME="$VH" BAO_ADDR=https://vault-ha:8200 BAO_CACERT="$VH/ca.pem")
    BAO_ADDR=https://vault-ha:8200 BAO_CACERT=$VH/ca.pem vault_site "$VH" "$BAO_HA_TOKEN" ||
        bad "the site's Vault configuration on the HA cluster failed"
    for ((k = 0; k < NLOAD; k++)); do
        "${ha_env[@]}" "$RUN" "$PACK" pack -q "$SECURE/load-$k" -o "$VL/ha-$k.hpcs" --vault --dataset "ha-$k" \
            --allow "${LOAD_ID[k]}" "${VLOGIN[@]}" || bad "pack --vault ha-$k on the HA cluster failed"
    done
    leader=$(bao_ha_leader "$VH")
    n=${leader#https://127.0.0.1}
    n=${n%%:*}
    check "found the leader ($leader) (control)" test -n "${BAO_HA_PIDS[n]:-}"
    first=$("$RUN" getent ahosts vault-ha | awk 'NR == 1 { print $1 }')
    check "the leader is the first address vault-ha resolves to (control: clients must fall over to the next)" \
        test "$first" = "127.0.0.1$n"
    BAO_ADDR=https://vault-ha:8200 BAO_CACERT=$VH/ca.pem run_load ha 32 "$VL/ha" 120 &
    load=$!
    sleep 0.4
    killed_at=$(date +%s.%N)
    { kill -KILL "${BAO_HA_PIDS[n]}" && wait "${BAO_HA_PIDS[n]}"; } 2>/dev/null
    wait "$load"
    check "every mount succeeded or failed with 40" \
        test "$(report ha "sum(1 for x in r if x['rc'] not in (0, 40))")" = 0
    check "none hung" test "$(report ha "s['hung']")" = 0
    check "each success read its own data, released to its own identity" right_identity ha
    check "releases completed after the leader was killed (control: the failover was exercised)" \
        test "$(report ha "int(sum(1 for x in r if x['release_s'] and x['start'] + x['release_s'] > $killed_at) > 0)")" = 1
    new_leader() { local l; l=$(bao_ha_leader "$VH") && [[ -n $l && $l != "$leader" ]]; }
    check "a new leader took over" wait_until "a new leader" 30 new_leader
    echo "    ($(report ha "s['ok']") of 32 succeeded; exit codes $(report ha "s['exit_codes']"))"
    BAO_ADDR=https://vault-ha:8200 BAO_CACERT=$VH/ca.pem run_load ha-after 8 "$VL/ha" 60
    check "with the first address refusing connections, 8 more mounts succeed through the others" \
        test "$(report ha-after "s['ok']")" = 8
else
    bad "the 3-node OpenBao cluster did not come up: $(tail -n 3 "$VH"/n*.log)"
fi
