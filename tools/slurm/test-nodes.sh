# Part "nodes" of tools/slurm/test.sh (sourced): a four-node cluster
# (tools/slurm/cluster.sh --nodes 4: every node its own network, hostname,
# /tmp, /run, /dev/shm and SPIFFE agent; the workspace is the shared
# filesystem) and jobs as the unprivileged users hpcs-u1 and hpcs-u2 with a
# login's default limits. Also sets up what part "vault" uses (the cluster,
# an OpenBao dev server with TLS at https://vault:8200, the site's Vault
# configuration), so it is sourced for either part. Checks (part nodes):
#   N1. a 4-node job as hpcs-u1: every node mounts, each task reads its own
#       shard ($SLURM_PROCID) and writes it to its encrypted results; all
#       four nodes' results decrypt on the secure side;
#   N2. scancel mid-job, and N3. one node's hpcs-mount SIGKILLed mid-job
#       (the job ends with 205 naming the node): no mount, process or
#       directory left on any node;
#   N4. Vault on four nodes: four JWT logins and four key reads in OpenBao's
#       audit log, one from each node's address, each by hpcs-u1's SPIFFE ID;
#       hpcs-u2's job, whose node4 agent gives a foreign SPIFFE ID, fails
#       with 201 before the application starts on any node;
#   N5. two users' jobs on one node at once: neither can list, enter, read or
#       write the other's mount root; hpcs-u2 planting hpcs-u1's next mount
#       root makes hpcs-u1's job stop with 200;
#   N6. a planted mount root on one node of a 4-node job (world-writable, a
#       symbolic link, another user's): the job stops with 200.
# The canary scan of test.sh then also covers every node's /tmp, /run and
# /dev/shm.
# shellcheck shell=bash disable=SC2016,SC2154

NODES=(node1 node2 node3 node4)
export HPCS_SLURM_DIR=$W/nodes
# The sample epilog as a site would install it (default mount roots).
export HPCS_SLURM_EPILOG=$HERE/epilog.sh
U1_ID=spiffe://example.org/hpcs-test/user/hpcs-u1
U2_ID=spiffe://example.org/hpcs-test/user/hpcs-u2
FOREIGN_ID=spiffe://example.org/hpcs-test/intruder
say "starting a four-node cluster in $HPCS_SLURM_DIR"
t=$SECONDS
if ! "$HERE/cluster.sh" start --nodes 4 --host vault=10.99.0.254 \
    --host vault-ha=127.0.0.11 --host vault-ha=127.0.0.12 --host vault-ha=127.0.0.13 \
    --spiffe-agent "$AGENT" --spiffe-map "hpcs-u1=$U1_ID" --spiffe-map "hpcs-u2=$U2_ID" \
    --spiffe-map "node4:hpcs-u2=$FOREIGN_ID" >/dev/null; then
    bad "the four-node cluster did not start"
    return
fi
echo "  (up in $((SECONDS - t))s)"
U1=$("$RUN" id -u hpcs-u1)
U2=$("$RUN" id -u hpcs-u2)
# Jobs use their node's own /tmp; every node's agent is on the same path.
unset TMPDIR
export SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent/public/api.sock
# Its own work dir: job ids start again at 1 on this cluster. World-writable
# and sticky, like a scratch directory.
WORK=$SHARED/work-nodes
mkdir -p "$WORK"
chmod 1777 "$WORK"
for u in hpcs-u1 hpcs-u2; do
    install -o "$("$RUN" id -u "$u")" -m 0600 "$SECURE/key.txt" "$HPCS_SLURM_DIR/home/$u/key.txt"
done

# Four shards of canary data and a checker of their manifest.
mkdir -p "$SECURE/shards"
for i in 0 1 2 3; do
    printf '%s shard %s\n%s\n' "$CANARY" "$i" "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        >"$SECURE/shards/shard-$i.txt"
    SHARD_HASH[i]=$(sha256sum <"$SECURE/shards/shard-$i.txt" | cut -d' ' -f1)
done
(cd "$SECURE/shards" && sha256sum shard-*.txt) >"$SECURE/shards/SHA256SUMS"
"$PACK" pack -q "$SECURE/shards" -o "$SHARED/shards.hpcs" -r "$RECIPIENT"
chmod 0644 "$SHARED"/*.hpcs
cat >"$SHARED/verify-shards.sh" <<'EOF'
#!/bin/sh
cd "$1/data" && sha256sum -c --quiet SHA256SUMS && echo "verify-shards: manifest ok on $(hostname)"
EOF
# Each task: its own shard, into its node's encrypted results.
SHARD_APP='f=$HPCS_DATA/shard-$SLURM_PROCID.txt; cp "$f" "$HPCS_RESULTS/" && echo "task $SLURM_PROCID of $SLURM_NTASKS on $(hostname) as uid $(id -u) with ulimit -l $(ulimit -l): $(sha256sum <"$f" | cut -d" " -f1)"'
# Waits for the other user's mount root on this node, then tries to list,
# enter, read and write it; stays a while so that the other can try too.
cat >"$SHARED/peek.sh" <<'EOF'
#!/bin/sh
other=$1
i=0
while [ $i -lt 300 ]; do
    set -- /tmp/hpcs-"$other"-*
    [ -e "$1" ] && break
    sleep 0.1
    i=$((i + 1))
done
[ -e "$1" ] || { echo "peek: no mount root of $other appeared on $(hostname)"; exit 1; }
echo "peek: found $1 owned by $(stat -c %U "$1") mode $(stat -c %a "$1")"
if ls "$1" >/dev/null 2>&1; then echo "peek: LISTED $1"; else echo "peek: list denied"; fi
if (cd "$1") 2>/dev/null; then echo "peek: ENTERED $1"; else echo "peek: enter denied"; fi
if cat "$1"/data/shard-0.txt 2>/dev/null; then echo "peek: READ"; else echo "peek: read denied"; fi
if mkdir "$1/x" 2>/dev/null; then echo "peek: WROTE"; else echo "peek: write denied"; fi
sleep 3
EOF
chmod 0755 "$SHARED/verify-shards.sh" "$SHARED/peek.sh"

# submit_as USER [hpcs-job flags...]: generates and submits a job as USER
# (hpcs-job runs as that user, as it would on a login node); prints its id.
submit_as() {
    local user=$1
    shift
    HPCS_TEST_JOBTAG=$W "$RUN" --user "$user" "$JOB" --hpcs-mount "$MOUNT" --workdir "$WORK" \
        --sbatch-flag="--output=$WORK/job-%j.out" --mount-timeout 60 --submit "$@"
}
# FUSE mounts on node $1.
node_mounts() { "$RUN" --node "$1" awk '$3 ~ /^fuse/ { print $2 }' /proc/self/mounts; }
# What is left of jobs anywhere: FUSE mounts on any node, mount roots or
# job state dirs in any node's /tmp, processes of the two users.
leftovers() {
    local n
    for n in "${NODES[@]}"; do
        node_mounts "$n" | sed "s/^/$n: mount /"
        find "$HPCS_SLURM_DIR/nodes/$n/tmp" -mindepth 1 -maxdepth 1 -name 'hpcs-*' -printf "$n: /tmp/%f\n"
    done
    pgrep -a -u "$U1,$U2" | sed 's/^/process /'
}
# Waits (bounded) until nothing is left; reports what is.
nothing_left() {
    local left deadline=$((SECONDS + 20))
    while left=$(leftovers) && [[ -n $left ]] && ((SECONDS < deadline)); do sleep 0.2; done
    [[ -z $left ]] || printf '    left: %s\n' "$left"
    [[ -z $left ]]
}
# Pid of user $1's hpcs-mount on node $2.
mount_pid_on() {
    local p want
    want=$(readlink "/proc/$(<"$HPCS_SLURM_DIR/nodes/$2/pid")/ns/uts")
    for p in $(pgrep -u "$1" -x hpcs-mount); do
        [[ $(readlink "/proc/$p/ns/uts") == "$want" ]] && echo "$p"
    done
}
# Every node has a FUSE mount.
all_nodes_mounted() {
    local n
    for n in "${NODES[@]}"; do [[ -n $(node_mounts "$n") ]] || return 1; done
}

# ---- Vault: OpenBao with TLS at https://vault:8200 (the controller's bridge
# address), trusting the agents' key; datasets for both users ----
V4=$W/vault4
if vault_or_skip "Vault on four nodes"; then
    say "OpenBao with TLS for the four-node cluster"
    tls_make "$V4" vault vault-ha 10.99.0.254 127.0.0.11 127.0.0.12 127.0.0.13 ||
        bad "cannot make the test CA and certificate"
    if bao_dev "$V4" 10.99.0.254; then
        export BAO_ADDR=https://vault:8200 BAO_CACERT=$V4/ca.pem
        vault_site "$V4" root || bad "the site's Vault configuration failed"
        HOME=$V4 "$RUN" "$PACK" pack -q "$SECURE/shards" -o "$SHARED/vshards.hpcs" --vault \
            --dataset vshards --allow "$U1_ID" "${VLOGIN[@]}" || bad "pack --vault (vshards) failed"
        HOME=$V4 "$RUN" "$PACK" pack -q "$SECURE/shards" -o "$SHARED/vshards2.hpcs" --vault \
            --dataset vshards2 --allow "$U2_ID" "${VLOGIN[@]}" || bad "pack --vault (vshards2) failed"
        chmod 0644 "$SHARED"/vshards*.hpcs
    else
        bad "OpenBao did not start: $(tail -n 3 "$V4/bao.log")"
        HAVE_BAO=0
    fi
fi

part nodes || return 0

# ---- N1 ----
say "four nodes, unprivileged user: every node mounts, each task reads its shard"
id=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodes 4 --data "$SHARED/shards.hpcs:data" \
    --verify-input "$SHARED/verify-shards.sh" --results "$WORK/results-u1/%j" --results-recipient "$RECIPIENT" \
    --app /bin/sh --app-arg -c --app-arg "$SHARD_APP")
expect_end "$id" COMPLETED 0 "4-node job as hpcs-u1"
check "every node mounted before the application started" out_has "$id" "mounted on 4 node(s) in"
check "input verification ran on the mounted shards" out_has "$id" "verify-shards: manifest ok on node1"
for i in 0 1 2 3; do
    check "task $i ran on node$((i + 1)) as hpcs-u1 (uid $U1) with the default ulimit -l and read shard $i" \
        out_has "$id" "task $i of 4 on node$((i + 1)) as uid $U1 with ulimit -l 8192: ${SHARD_HASH[i]}"
done
check "four nodes wrote encrypted results (four manifests)" \
    test "$(find "$WORK/results-u1/$id" -name 'manifest-*.age' | wc -l)" = 4
# The run ids hpcs-job fixed, one per node (SLURM_NODEID order), as the job's
# last log line lists them.
mapfile -t RUN_IDS < <(grep -o -- '--expect-run [0-9a-f]*' "$WORK/job-$id.out" | cut -d' ' -f2)
check "hpcs-job fixed four results runs in advance" test "${#RUN_IDS[@]}" = 4
EXPECT=()
for r in "${RUN_IDS[@]}"; do EXPECT+=(--expect-run "$r"); done
if "$PACK" results decrypt -q "$WORK/results-u1/$id" -o "$SECURE/results-$id" \
    --archive "$SHARED/shards.hpcs" -i "$SECURE/key.txt" "${EXPECT[@]}"; then
    ok "all four nodes' results verify and decrypt on the secure side, exactly the expected runs"
    for i in 0 1 2 3; do
        got=$(cd "$SECURE/results-$id" && find . -name "shard-$i.txt")
        check "node$((i + 1))'s results (run ${RUN_IDS[i]:-?}) hold exactly its shard $i, intact" \
            test "${got%/*}" = "./run-${RUN_IDS[i]:-none}" -a "$(find "$SECURE/results-$id/${got%/*}" -type f | wc -l)" = 1
        [[ -z $got ]] || check "  (shard $i decrypted equals the original)" cmp -s "$SECURE/shards/shard-$i.txt" "$SECURE/results-$id/$got"
    done
else
    bad "all four nodes' results verify and decrypt on the secure side, exactly the expected runs"
fi
check "nothing left on any node" nothing_left

# ---- N2 ----
say "four nodes: scancel mid-job"
id=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodes 4 --data "$SHARED/shards.hpcs:data" \
    --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    check "mounted on all four nodes while running (control)" all_nodes_mounted
else
    bad "the app did not start"
    show_out "$id"
fi
"$RUN" scancel "$id"
expect_end "$id" CANCELLED '*' "scancel of a 4-node job"
# (CANCELLED shows at once; the batch shell gets its SIGTERM a little later)
check "the job logged how it ended" wait_for_text "$WORK/job-$id.out" "stopped by a signal"
check "no mount, mount root, state dir or process left on any node" nothing_left

# ---- N3 ----
say "four nodes: hpcs-mount on node3 SIGKILLed mid-job"
id=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodes 4 --data "$SHARED/shards.hpcs:data" \
    --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    victim=$(mount_pid_on "$U1" node3)
    check "found hpcs-mount on node3 (control)" test -n "$victim"
    [[ -z $victim ]] || kill -KILL "$victim"
else
    bad "the app did not start"
    show_out "$id"
fi
expect_end "$id" FAILED 205 "a node's hpcs-mount SIGKILLed"
check "the job names the node and what happened" out_has "$id" "the archives' mount on node3 ended before the application finished (hpcs-mount exited with status 137"
check "node3 detached its dead mount" out_has "$id" "on node3: /tmp/hpcs-hpcs-u1-$id/data is still mounted (hpcs-mount ended with status 137); detaching it"
check "no mount, mount root, state dir or process left on any node" nothing_left

# ---- N4 ----
say "Vault on four nodes: one login and one key release per node, by the right SPIFFE ID"
if ((HAVE_BAO)); then
    audit_from=$(wc -l <"$V4/audit.log")
    id=$(submit_as hpcs-u1 --vault --nodes 4 --data "$SHARED/vshards.hpcs:data" \
        --app /bin/sh --app-arg -c --app-arg "$SHARD_APP" --results "$WORK/results-u1/%j" --results-recipient "$RECIPIENT")
    expect_end "$id" COMPLETED 0 "4-node --vault job"
    for i in 0 1 2 3; do
        check "task $i on node$((i + 1)) read its shard with the key from Vault" \
            out_has "$id" "task $i of 4 on node$((i + 1)) as uid $U1 with ulimit -l 8192: ${SHARD_HASH[i]}"
    done
    # What the audit log recorded during the job: successful JWT logins and
    # reads of key copies, with who (display name, slot) and from where.
    summary=$(audit_releases "$V4/audit.log" "$audit_from")
    slot=$(slot_of "$U1_ID")
    for n in 1 2 3 4; do
        check "node$n: one JWT login, as $U1_ID" \
            test "$(grep -cxF "login 10.99.0.$n hpcs-jwt-$U1_ID $slot" <<<"$summary")" = 1
        check "node$n: one key read of hpcs-u1's copy of vshards, as $U1_ID" \
            test "$(grep -cxF "read 10.99.0.$n hpcs-jwt-$U1_ID $slot hpcs/ds/$VOWNER/vshards/$slot" <<<"$summary")" = 1
    done
    check "no other login or key read during the job" test "$(wc -l <<<"$summary")" = 8
    [[ $(wc -l <<<"$summary") == 8 ]] || printf '    audit: %s\n' "$summary"

    say "Vault on four nodes: node4's agent gives hpcs-u2 a foreign SPIFFE ID"
    rm -f "$WORK"/APP-RAN-*
    id=$(submit_as hpcs-u2 --vault --nodes 4 --data "$SHARED/vshards2.hpcs:data" \
        --app /bin/sh --app-arg -c --app-arg 'touch "'"$WORK"'/APP-RAN-$(hostname)"')
    expect_end "$id" FAILED 201 "a node with a foreign identity"
    check "the job names node4 and hpcs-mount's exit 44 (no key for this identity)" \
        out_has "$id" "mounting failed on node4: hpcs-mount exited with status 44 before the job started"
    check "hpcs-mount's reason names the foreign identity" out_has "$id" "$FOREIGN_ID"
    check "the application started on no node" test -z "$(compgen -G "$WORK/APP-RAN-*")"
    check "no mount, mount root, state dir or process left on any node" nothing_left
fi

# ---- N5 ----
say "two users' jobs on one node at once"
id1=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodelist node2 \
    --data "$SHARED/shards.hpcs:data" --app "$SHARED/peek.sh" --app-arg hpcs-u2)
id2=$(submit_as hpcs-u2 -i "$HPCS_SLURM_DIR/home/hpcs-u2/key.txt" --nodelist node2 \
    --data "$SHARED/shards.hpcs:data" --app "$SHARED/peek.sh" --app-arg hpcs-u1)
expect_end "$id1" COMPLETED 0 "hpcs-u1's job next to hpcs-u2's"
expect_end "$id2" COMPLETED 0 "hpcs-u2's job next to hpcs-u1's"
for pair in "$id1 hpcs-u2 hpcs-u1" "$id2 hpcs-u1 hpcs-u2"; do
    read -r j other me <<<"$pair"
    check "$me saw $other's mount root on node2: owned by $other, mode 700" out_has "$j" "owned by $other mode 700"
    for what in list enter read write; do
        check "$me could not $what $other's mount root" out_has "$j" "peek: $what denied"
    done
    check "$me got nothing of $other's data" test -z "$(grep -E 'LISTED|ENTERED|READ|WROTE|shard' "$WORK/job-$j.out")"
done
# hpcs-u2 plants hpcs-u1's next mount root (job ids are sequential).
next=$((id2 + 1))
# (with a file in it: the sample epilog removes empty directories)
"$RUN" --node node2 --user hpcs-u2 sh -c "mkdir -m 0777 /tmp/hpcs-hpcs-u1-$next && echo planted >/tmp/hpcs-hpcs-u1-$next/trap"
id=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodelist node2 \
    --data "$SHARED/shards.hpcs:data" --app /bin/touch --app-arg "$WORK/APP-RAN-preempted")
check "the job got the predicted id $next (control)" test "$id" = "$next"
expect_end "$id" FAILED 200 "a mount root planted by another user"
check "the job says whose it is" out_has "$id" "the mount root /tmp/hpcs-hpcs-u1-$id exists and belongs to uid $U2, not to you (uid $U1)"
check "the application did not start" test ! -e "$WORK/APP-RAN-preempted"
check "the planted directory is untouched" \
    test "$(stat -c '%u %a' "$HPCS_SLURM_DIR/nodes/node2/tmp/hpcs-hpcs-u1-$next")" = "$U2 777" -a \
    "$(ls -A "$HPCS_SLURM_DIR/nodes/node2/tmp/hpcs-hpcs-u1-$next")" = trap
rm -rf "$HPCS_SLURM_DIR/nodes/node2/tmp/hpcs-hpcs-u1-$next"
check "nothing left on any node" nothing_left

# ---- N6 ----
say "four nodes: a planted mount root on node3 stops the job with 200"
root=/tmp/hpcs-fixed-hpcs-u1
N3TMP=$HPCS_SLURM_DIR/nodes/node3/tmp
for plant in "world-writable|hpcs-u1|mkdir -m 0777 $root|exists with mode 777" \
    "symbolic link|hpcs-u1|mkdir -m 0700 /tmp/u1-real && ln -s /tmp/u1-real $root|exists and is a symbolic link" \
    "another user's|hpcs-u2|mkdir -m 0700 $root|exists and belongs to uid $U2, not to you"; do
    IFS='|' read -r what as cmd msg <<<"$plant"
    "$RUN" --node node3 --user "$as" sh -c "$cmd" || bad "cannot plant ($what)"
    id=$(submit_as hpcs-u1 -i "$HPCS_SLURM_DIR/home/hpcs-u1/key.txt" --nodes 4 --mount-root '/tmp/hpcs-fixed-%u' \
        --data "$SHARED/shards.hpcs:data" --app /bin/sh --app-arg -c --app-arg 'touch "'"$WORK"'/APP-RAN-$(hostname)"')
    expect_end "$id" FAILED 200 "$what mount root on node3"
    check "$what: the message names node3 and the reason" out_has "$id" "on node3: the mount root $root $msg"
    check "$what: the job says the application did not start" \
        out_has "$id" "the mount root could not be set up on node3 (see the message above); the application was NOT started"
    check "$what: the application started on no node" test -z "$(compgen -G "$WORK/APP-RAN-*")"
    check "$what: the planted root is still there, as planted" test -e "$N3TMP/${root#/tmp/}" -o -L "$N3TMP/${root#/tmp/}"
    rm -rf "${N3TMP:?}/${root#/tmp/}" "$N3TMP/u1-real"
    check "$what: nothing left on any node" nothing_left
done
