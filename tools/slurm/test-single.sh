# Part "single" of tools/slurm/test.sh (sourced): the single-node cluster
# (tools/slurm/cluster.sh without --nodes) with jobs as root: verification,
# scancel, the --srun path, SIGKILLed hpcs-mount, the epilog, secret job
# scripts, containers, Vault + SPIFFE. Stops its cluster at the end.
# shellcheck shell=bash disable=SC2016,SC2154,SC2034

run_suite() { # run_suite LABEL [extra hpcs-job flags...]
    local label=$1 id
    shift
    say "$label: success with verification"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --verify-input "$SHARED/verify-in.sh" \
        --verify-output "$SHARED/verify-out.sh" --app /bin/sh --app-arg -c \
        --results "$SHARED/results/%j" --results-recipient "$RECIPIENT" \
        --scratch "$WORK/scratch-%j:64M" --scratch-keep table.bin \
        --app-arg 'sha256sum "$1/data/canary.txt" | tee result.txt && mkdir "$HPCS_RESULTS/out" && cp "$1/data/canary.txt" "$HPCS_RESULTS/out/canary-copy.txt" && test "$TMPDIR" = "$HPCS_SCRATCH" && cp "$1/data/canary.txt" "$HPCS_SCRATCH/canary-in-scratch.txt" && python3 -c "$TABLE_PY" "$HPCS_SCRATCH/table.bin"' \
        --app-arg app --app-arg '{root}')
    expect_end "$id" COMPLETED 0 "$label success"
    check "$label: results went to shared storage encrypted, with a manifest" compgen -G "$SHARED/results/$id/manifest-*.age"
    check "$label: the results verify and decrypt on the secure side" "$PACK" results decrypt -q "$SHARED/results/$id" \
        -o "$SECURE/results-$id" --archive "$SHARED/data.hpcs" -i "$SECURE/key.txt"
    check "$label: the decrypted result is what the job wrote" cmp -s "$SECURE/data/canary.txt" "$SECURE/results-$id/out/canary-copy.txt"
    check "$label: a file written with seeks in scratch reached the results (--scratch-keep)" cmp -s "$SECURE/table.bin" "$SECURE/results-$id/table.bin"
    check "$label: the scratch directory the job made is gone" test ! -e "$WORK/scratch-$id"
    check "$label: input verification ran on the mounted data" out_has "$id" "verify-in: manifest ok"
    check "$label: app read the canary file through the mount (sha256 matches)" out_has "$id" "$WANT_HASH"
    check "$label: output verification ran" out_has "$id" "verify-out: result present"
    check "$label: no mount left" no_mounts
    check "$label: no hpcs-mount process left" no_mount_procs
    check "$label: no process of the job left" no_job_procs

    say "$label: failing input verification"
    rm -f "$WORK/APP-RAN"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --verify-input "$SHARED/verify-in-fail.sh" \
        --app /bin/touch --app-arg "$WORK/APP-RAN")
    expect_end "$id" FAILED 202 "$label failing verification"
    check "$label: clear message in the job output" out_has "$id" "input verification FAILED: $SHARED/verify-in-fail.sh exited with status 3; the application was NOT started"
    check "$label: the app never started (no marker file)" test ! -e "$WORK/APP-RAN"
    check "$label: no mount left" no_mounts
    check "$label: no hpcs-mount process left" no_mount_procs
    check "$label: no process of the job left" no_job_procs

    say "$label: scancel of a running job"
    id=$(submit "$@" --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
    if wait_for_text "$WORK/job-$id.out" "running the application"; then
        check "$label: mounted while running" test -n "$(our_mounts)"
        check "$label: hpcs-mount running" test -n "$(our_mount_procs)"
    else
        bad "$label: the app did not start"
        show_out "$id"
    fi
    "$RUN" scancel "$id"
    expect_end "$id" CANCELLED '*' "$label scancel"
    # The job is over for Slurm; its processes must already be gone.
    check "$label: no mount left after scancel" no_mounts
    check "$label: no hpcs-mount process left after scancel" no_mount_procs
    check "$label: no process of the job left after scancel" no_job_procs
    check "$label: the job logged how it ended" grep -qE -- "stopped by a signal|exited with status 143" "$WORK/job-$id.out"
}

# The sample epilog, told where this test mounts (slurmd gives epilogs a
# fresh environment, so a wrapper sets it).
printf '#!/bin/sh\nHPCS_EPILOG_ROOTS=%s exec %s\n' "$W/mnt/%j" "$HERE/epilog.sh" >"$W/epilog"
chmod 0755 "$W/epilog"
export HPCS_SLURM_EPILOG=$W/epilog
export HPCS_SLURM_DIR=$W/cluster
say "starting the single-node cluster in $HPCS_SLURM_DIR"
"$HERE/cluster.sh" start >/dev/null || { echo "test.sh: cluster did not start" >&2; exit 1; }

say "the cluster runs plain jobs, as root and as nobody"
mkdir -p "$W/plain" && chmod 1777 "$W/plain"
id=$("$RUN" sbatch --parsable -D "$W/plain" -o "$W/plain/root-%j.out" --wrap 'id -u')
expect_end "$id" COMPLETED 0 "sbatch --wrap as root"
check "it ran as uid 0" grep -qx 0 "$W/plain/root-$id.out"
id=$("$RUN" sbatch --parsable --uid=nobody --gid=nogroup -D "$W/plain" -o "$W/plain/nobody-%j.out" --wrap 'id -u')
expect_end "$id" COMPLETED 0 "sbatch --wrap --uid=nobody"
check "it ran as nobody" grep -qx "$(id -u nobody)" "$W/plain/nobody-$id.out"

run_suite "one node"
run_suite "srun path" --srun

say "hpcs-mount killed with SIGKILL during a job"
id=$(submit --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    check "job tagged processes are visible (control)" test -n "$(our_job_procs)"
    # shellcheck disable=SC2046 # one pid per word
    kill -KILL $(our_mount_procs)
else
    bad "the app did not start"
    show_out "$id"
fi
expect_end "$id" FAILED 205 "SIGKILLed hpcs-mount: the job stops the application"
check "the job says which mount ended and how" out_has "$id" "ended before the application finished (hpcs-mount exited with status 137"
check "the dead mount was detached" out_has "$id" "is still mounted (hpcs-mount ended with status 137); detaching it"
check "no mount left" no_mounts
check "no process of the job left (the application was stopped)" no_job_procs

say "batch shell, mount wrapper and hpcs-mount SIGKILLed: the epilog cleans up"
# Its own TMPDIR: the killed batch shell cannot remove its state directory.
mkdir -p "$W/tmp-killed"
id=$(export TMPDIR=$W/tmp-killed; submit --data "$SHARED/data.hpcs" --app /bin/sleep --app-arg 300)
if wait_for_text "$WORK/job-$id.out" "running the application"; then
    batch=$(job_pids_with slurm_script)
    wrapper=$(job_pids_with hpcs-node)
    check "found the batch shell and the mount wrapper (control)" test -n "$batch" -a -n "$wrapper"
    # shellcheck disable=SC2046,SC2086 # one pid per word
    kill -KILL $wrapper $(our_mount_procs) $batch
    deadline=$((SECONDS + 20))
    while [[ -n $(our_mount_procs) ]] && ((SECONDS < deadline)); do sleep 0.1; done
else
    bad "the app did not start"
    show_out "$id"
fi
expect_end "$id" FAILED '*' "SIGKILLed batch shell"
deadline=$((SECONDS + 30))
while [[ -n $(our_mounts) ]] && ((SECONDS < deadline)); do sleep 0.2; done
check "the epilog detached the dead mount" no_mounts
check "(not the job script, which was dead)" test -z "$(grep -F 'detaching it' "$WORK/job-$id.out")"
check "the epilog removed the mount root" test ! -e "$W/mnt/$id"
check "no process of the job left (the epilog killed the orphans)" no_job_procs

say "secret job script"
"$RUN" "$JOB" -i "$SHARED/key.txt" --hpcs-mount "$MOUNT" --workdir "$WORK" --mount-root "$W/mnt/%j" \
    --sbatch-flag="--output=$WORK/job-%j.out" --data "$SHARED/data.hpcs" \
    --secret-script "$SHARED/job.hpcs" --verify-input '{root}/job/check.sh' -o "$SHARED/stub.sh" ||
    bad "hpcs-job --secret-script failed"
leaked=0
while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] || continue
    [[ $line == "#!/bin/sh" ]] && continue
    grep -qF -- "$line" "$SHARED/stub.sh" && { leaked=1; echo "    stub contains: $line"; }
done <"$SECURE/job/run.sh"
check "the stub contains no line of the secret script" test "$leaked" = 0
id=$(HPCS_TEST_JOBTAG=$W "$RUN" sbatch --parsable "$SHARED/stub.sh")
expect_end "$id" COMPLETED 0 "secret script"
check "the secret script ran from the mount" out_has "$id" "secret job: ran-42"
check "the packed input check ran from the mount" out_has "$id" "secret check: ok-42"
check "the secret script read the data" out_has "$id" "secret job: $WANT_HASH"

say "containers"
id=$(submit --data "$SHARED/data.hpcs" --container "$SHARED/tools.hpcs" \
    --app '{root}/container/busybox' --app-arg sha256sum --app-arg '{root}/data/canary.txt')
expect_end "$id" COMPLETED 0 "packed static program"
check "a packed static program ran from the mount" out_has "$id" "$WANT_HASH"
id=$(submit --data "$SHARED/data.hpcs" --container "$SHARED/rootfs.hpcs:rootfs" \
    --app bwrap --app-arg --ro-bind --app-arg '{root}/rootfs' --app-arg / \
    --app-arg --ro-bind --app-arg '{root}/data' --app-arg /data \
    --app-arg --proc --app-arg /proc --app-arg --dev --app-arg /dev --app-arg --tmpfs --app-arg /tmp \
    --app-arg --unshare-all --app-arg --die-with-parent \
    --app-arg /bin/sh --app-arg -c --app-arg 'echo "in bwrap: $(cat /proc/1/comm)"; sha256sum /data/canary.txt')
expect_end "$id" COMPLETED 0 "packed root filesystem under bubblewrap"
check "bwrap ran the packed rootfs on the mounted data" out_has "$id" "$WANT_HASH"
check "bwrap ran /bin/sh from the packed rootfs" out_has "$id" "in bwrap:"

say "Vault + SPIFFE key release (OpenBao dev server, development SPIFFE agent)"
if vault_or_skip "Vault + SPIFFE on one node"; then
    V=$W/vault
    mkdir -p "$V"
    JOB_ID=spiffe://example.org/hpcs-test/job
    OTHER_ID=spiffe://example.org/hpcs-test/someone-else
    # OpenBao listens on 127.0.0.1 inside the cluster's network namespace,
    # where the jobs run; admin and packing commands go through $RUN as well.
    HOME=$V "$RUN" bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8200 \
        >"$V/bao.log" 2>&1 &
    BG_PIDS+=($!)
    export BAO_ADDR=http://127.0.0.1:8200
    # -dev OpenBao speaks plain http: allowed here by the development switch
    # (the multi-node tests use https with the cluster's CA).
    export HPCS_VAULT_ALLOW_HTTP=1
    deadline=$((SECONDS + 30))
    until HOME=$V BAO_TOKEN=root "$RUN" bao status >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { bad "OpenBao did not start"; break; }
        sleep 0.1
    done
    # Jobs run as root here: uid 0 gets the job's SPIFFE ID.
    "$AGENT" --socket "$V/agent.sock" --trust-domain example.org --map "0=$JOB_ID" \
        --key-file "$V/agent-key.pem" --jwks-pem-out "$V/jwt-pub.pem" --ready-file "$V/agent.ready" \
        >/dev/null 2>"$V/agent.log" &
    BG_PIDS+=($!)
    deadline=$((SECONDS + 30))
    until [[ -e $V/agent.ready ]]; do
        ((SECONDS < deadline)) || { bad "the SPIFFE agent did not start"; break; }
        sleep 0.1
    done
    export SPIFFE_ENDPOINT_SOCKET=unix://$V/agent.sock
    HOME=$V BAO_TOKEN=root "$RUN" "$PACK" vault-setup --jwt-pubkey "$V/jwt-pub.pem" --enable-userpass \
        >"$V/setup.log" 2>&1 || bad "hpcs-pack vault-setup failed: $(tail -n 3 "$V/setup.log")"
    printf 'correct horse battery staple\n' >"$SECURE/alice.pw"
    HOME=$V BAO_TOKEN=root "$RUN" bao write auth/userpass/users/alice \
        password="correct horse battery staple" token_policies=hpcs-user >/dev/null ||
        bad "cannot create the Vault user"
    login=(--vault-login userpass --vault-user alice --vault-password-file "$SECURE/alice.pw")
    HOME=$V "$RUN" "$PACK" pack -q "$SECURE/data" -o "$SHARED/vdata.hpcs" \
        --vault --dataset vdata --allow "$JOB_ID" "${login[@]}" || bad "pack --vault (vdata) failed"
    HOME=$V "$RUN" "$PACK" pack -q "$SECURE/data" -o "$SHARED/vother.hpcs" \
        --vault --dataset vother --allow "$OTHER_ID" "${login[@]}" || bad "pack --vault (vother) failed"

    KEY_ARGS=(--vault)
    id=$(submit --data "$SHARED/vdata.hpcs:data" --verify-input "$SHARED/verify-in.sh" \
        --app /bin/sh --app-arg -c --app-arg 'sha256sum "$HPCS_DATA/canary.txt"')
    expect_end "$id" COMPLETED 0 "Vault key release"
    check "the job got the key from Vault and read the data" out_has "$id" "$WANT_HASH"
    check "input verification ran on the Vault-unlocked data" out_has "$id" "verify-in: manifest ok"
    id=$(submit --data "$SHARED/vother.hpcs" --app /bin/touch --app-arg "$WORK/APP-RAN")
    expect_end "$id" FAILED 201 "Vault refuses a dataset allowed to another SPIFFE ID"
    check "hpcs-mount's reason is in the job output" out_has "$id" "is registered in Vault for $JOB_ID"
    check "the job says the mount failed (hpcs-mount exit 44: no key for this identity)" out_has "$id" "exited with status 44"
    check "the app never started" test ! -e "$WORK/APP-RAN"
    check "no mount left" no_mounts
    check "no process of the job left" no_job_procs
    KEY_ARGS=(-i "$SHARED/key.txt")
fi

# OpenBao and the agent of this part, then the cluster.
for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
BG_PIDS=()
"$HERE/cluster.sh" stop >/dev/null 2>&1 || bad "the single-node cluster did not stop"
