# Shared helpers of tools/slurm/test.sh and tools/slurm/bench.sh (sourced).
#
# Expects: RUN (tools/slurm/in-cluster.sh), JOB_TIMEOUT (seconds), WORK (the
# directory job outputs go to as job-ID.out), and for the Vault helpers
# PACK (hpcs-pack) and BG_PIDS (an array the caller's EXIT trap kills).
# shellcheck shell=bash disable=SC2034,SC2317 # globals for the caller; functions called through wait_until

say() { printf '== %s\n' "$*"; }
FAILED=0
PASSED=0
ok() { printf '  ok   %s\n' "$1"; PASSED=$((PASSED + 1)); }
bad() { printf '  FAIL %s\n' "$1"; FAILED=$((FAILED + 1)); }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# Waits (bounded) until job $1 has ended; prints "STATE EXIT".
wait_job() {
    local id=$1 deadline=$((SECONDS + JOB_TIMEOUT)) line state exitc
    while ((SECONDS < deadline)); do
        line=$("$RUN" scontrol show job -o "$id" 2>/dev/null) || line=
        state=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)
        exitc=$(grep -o ' ExitCode=[0-9]*' <<<"$line" | cut -d= -f2)
        case $state in
            COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED | BOOT_FAIL | DEADLINE)
                echo "$state $exitc"
                return 0
                ;;
        esac
        sleep 0.2
    done
    echo "TIMEOUT-WAITING -"
    return 1
}
# Waits (bounded) until file $1 contains fixed string $2.
wait_for_text() {
    local deadline=$((SECONDS + JOB_TIMEOUT))
    while ((SECONDS < deadline)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
out_has() { grep -qF -- "$2" "$WORK/job-$1.out"; }
show_out() { sed 's/^/      | /' "$WORK/job-$1.out" 2>/dev/null || true; }
expect_end() { # expect_end ID STATE EXIT description
    local got
    got=$(wait_job "$1")
    # shellcheck disable=SC2053 # $3 may be the pattern *
    if [[ $got == "$2 "$3 ]]; then ok "$4: job $1 ended $got"; else bad "$4: job $1 ended '$got', expected '$2 $3'"; show_out "$1"; fi
}

# Waits (bounded, $2 seconds) until command $3... succeeds; false if it never does.
wait_until() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "    gave up waiting for $what" >&2; return 1; }
        sleep 0.2
    done
}

# ---- TLS and OpenBao (inside the cluster's controller namespaces) ----

# tls_make DIR NAME... : a test CA (DIR/ca.pem) and a server certificate
# (DIR/server.pem, DIR/server.key) for the DNS names and IPv4 addresses given.
tls_make() {
    local dir=$1 san="" n
    shift
    for n in "$@"; do
        if [[ $n =~ ^[0-9.]+$ ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
    done
    mkdir -p "$dir"
    (
        cd "$dir" && umask 077 &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
                -out ca.pem -days 2 -subj /CN=hpcs-test-ca &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
                -out server.csr -subj /CN=hpcs-test-vault &&
            printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "${san%,}" >server.ext &&
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile server.ext -out server.pem
    ) >/dev/null 2>&1 && chmod 0644 "$dir/ca.pem"
}

# The audit stanza of an OpenBao config (declarative: OpenBao refuses audit
# devices enabled through the API); accessors in clear.
bao_audit_hcl() {
    printf 'audit "file" "hpcs-audit" {\n  options {\n    file_path = "%s"\n    hmac_accessor = "false"\n  }\n}\n' "$1"
}

# bao_dev DIR ADDR: an OpenBao dev server (root token `root`) in the
# controller's namespaces with a TLS listener on ADDR:8200 (certificate
# DIR/server.pem from tls_make) and a file audit log DIR/audit.log; its pid
# goes to BAO_PID and BG_PIDS. Waits (bounded) until it answers.
bao_dev() {
    local dir=$1 addr=$2
    {
        printf 'listener "tcp" {\n  address = "%s:8200"\n  tls_cert_file = "%s"\n  tls_key_file = "%s"\n}\n' \
            "$addr" "$dir/server.pem" "$dir/server.key"
        bao_audit_hcl "$dir/audit.log"
    } >"$dir/bao.hcl"
    HOME=$dir "$RUN" bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8300 \
        -config="$dir/bao.hcl" >"$dir/bao.log" 2>&1 &
    BAO_PID=$!
    BG_PIDS+=("$BAO_PID")
    wait_until "OpenBao at $addr" 30 env HOME="$dir" BAO_TOKEN=root BAO_CACERT="$dir/ca.pem" \
        "$RUN" bao status -address="https://$addr:8200"
}

# bao_ha DIR: a 3-node OpenBao cluster with integrated (Raft) storage and TLS
# on 127.0.0.11-13:8200 (cluster port 8201) in the controller's network
# namespace, initialised (one unseal key, DIR/init.json), unsealed, every
# node a voter. Pids in BAO_HA_PIDS (index 1-3) and BG_PIDS; root token in
# BAO_HA_TOKEN. The certificate DIR/server.pem must name the three addresses.
bao_ha() {
    local dir=$1 i j key
    BAO_HA_PIDS=()
    for i in 1 2 3; do
        mkdir -p "$dir/n$i"
        {
            printf 'storage "raft" {\n  path = "%s"\n  node_id = "n%s"\n  performance_multiplier = 1\n' "$dir/n$i" "$i"
            for j in 1 2 3; do
                printf '  retry_join {\n    leader_api_addr = "https://127.0.0.1%s:8200"\n    leader_ca_cert_file = "%s"\n  }\n' "$j" "$dir/ca.pem"
            done
            printf '}\nlistener "tcp" {\n  address = "127.0.0.1%s:8200"\n  cluster_address = "127.0.0.1%s:8201"\n' "$i" "$i"
            printf '  tls_cert_file = "%s"\n  tls_key_file = "%s"\n}\n' "$dir/server.pem" "$dir/server.key"
            printf 'api_addr = "https://127.0.0.1%s:8200"\ncluster_addr = "https://127.0.0.1%s:8201"\n' "$i" "$i"
            printf 'disable_mlock = true\n'
            # (the audit configuration must be the same on every node: it is
            # replicated, and a node whose own differs cannot become active)
            bao_audit_hcl "$dir/audit.log"
        } >"$dir/n$i.hcl"
        HOME=$dir "$RUN" bao server -config="$dir/n$i.hcl" >"$dir/n$i.log" 2>&1 &
        BAO_HA_PIDS[i]=$!
        BG_PIDS+=("$!")
    done
    ha() { HOME=$dir BAO_CACERT=$dir/ca.pem BAO_TOKEN=${BAO_HA_TOKEN:-} "$RUN" bao "$@"; }
    # (bao status exits 2 when the server answers but is sealed)
    up_and_sealed() { ha status -address=https://127.0.0.11:8200 >/dev/null 2>&1; [[ $? == 2 ]]; }
    three_voters() {
        ha operator raft list-peers -address=https://127.0.0.11:8200 -format=json |
            python3 -c 'import json, sys
p = json.load(sys.stdin)["data"]["config"]["servers"]
sys.exit(not (len(p) == 3 and all(s["voter"] for s in p)))'
    }
    BAO_HA_TOKEN=
    wait_until "OpenBao n1 to answer" 30 up_and_sealed || return 1
    ha operator init -address=https://127.0.0.11:8200 -key-shares=1 -key-threshold=1 -format=json \
        >"$dir/init.json" || return 1
    key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unseal_keys_b64"][0])' "$dir/init.json")
    BAO_HA_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$dir/init.json")
    ha operator unseal -address=https://127.0.0.11:8200 "$key" >/dev/null || return 1
    wait_until "OpenBao n1 to become active" 30 ha operator raft autopilot set-config \
        -address=https://127.0.0.11:8200 -server-stabilization-time=1s -cleanup-dead-servers=false || return 1
    for i in 2 3; do
        wait_until "OpenBao n$i to join and unseal" 30 ha operator unseal -address="https://127.0.0.1$i:8200" "$key" ||
            return 1
    done
    wait_until "three Raft voters" 60 three_voters
}

# vault_site DIR TOKEN: the site's Vault configuration at $BAO_ADDR
# (hpcs-pack vault-setup, trusting the cluster agents' signing key) and a data
# owner alice (userpass; password in DIR/alice.pw); sets VLOGIN to alice's
# login flags for hpcs-pack and VOWNER to her Vault entity id (the owner part of
# her datasets: hpcs/ds/$VOWNER/NAME).
vault_site() {
    local dir=$1 token=$2
    if ! HOME=$dir BAO_TOKEN=$token "$RUN" "$PACK" vault-setup --enable-userpass \
        --jwt-pubkey "$HPCS_SLURM_DIR/spiffe/jwt-pub.pem" >"$dir/setup.log" 2>&1; then
        echo "    hpcs-pack vault-setup failed: $(tail -n 3 "$dir/setup.log")" >&2
        return 1
    fi
    printf 'correct horse battery staple\n' >"$dir/alice.pw"
    HOME=$dir BAO_TOKEN=$token "$RUN" bao write auth/userpass/users/alice \
        password="correct horse battery staple" token_policies=hpcs-user >/dev/null || return 1
    VLOGIN=(--vault-login userpass --vault-user alice --vault-password-file "$dir/alice.pw")
    VOWNER=$(HOME=$dir "$RUN" bao write -format=json auth/userpass/login/alice \
        password="correct horse battery staple" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["auth"]["entity_id"])') &&
        [[ -n $VOWNER ]] || return 1
}

# The address of the HA cluster's active node (from any node's sys/leader).
bao_ha_leader() {
    local i
    for i in 1 2 3; do
        HOME=$1 BAO_CACERT=$1/ca.pem "$RUN" bao read -address="https://127.0.0.1$i:8200" \
            -field=leader_address sys/leader 2>/dev/null && return 0
    done
    return 1
}

# audit_releases LOG FROM: the successful JWT logins and key-copy reads in
# OpenBao audit log LOG after its first FROM lines, one a line:
#   login ADDRESS DISPLAY_NAME SLOT
#   read ADDRESS DISPLAY_NAME SLOT PATH
# (DISPLAY_NAME is hpcs-jwt-<SPIFFE ID>; SLOT the identity slot it logged in through.)
audit_releases() {
    tail -n +"$(($2 + 1))" "$1" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("type") != "response" or e.get("error"):
        continue
    r, a = e["request"], e.get("auth") or {}
    who, slot = a.get("display_name", "-"), (a.get("metadata") or {}).get("role", "-")
    if r["path"] == "auth/hpcs-jwt/login":
        print("login", r["remote_address"], who, slot)
    elif r["path"].startswith("hpcs/ds/") and r["path"].count("/") == 4 and r["operation"] == "read":
        print("read", r["remote_address"], who, slot, r["path"])
'
}
# The identity slot (JWT role) of SPIFFE ID $1.
slot_of() { printf 'spiffe-%s' "$(printf %s "$1" | sha256sum | cut -c1-64)"; }
# Reads in audit_releases output on stdin whose path is not the reader's own
# key copy (the slot of the SPIFFE ID in its display name).
foreign_reads() {
    local op addr who slot path
    while read -r op addr who slot path; do
        [[ $op == read ]] || continue
        if [[ $slot != "$(slot_of "${who#hpcs-jwt-}")" || $path != */"$slot" ]]; then
            echo "$op $addr $who $slot $path"
        fi
    done
}
