#!/usr/bin/env bash
# Coverage-guided fuzzing of hpcs's parsers (fuzz/, docs/fuzzing.md) with
# libFuzzer on the stable toolchain: the targets are built with LLVM's
# SanitizerCoverage (-Cpasses=sancov-module), no nightly and no cargo-fuzz
# needed. Each target runs for a bounded time; a crash, panic, timeout or
# out-of-memory fails the run and leaves the input in fuzz/artifacts/TARGET/.
#
#   tools/fuzz.sh [--seconds N] [--jobs N] [--merge] [TARGET...]
#   tools/fuzz.sh --run TARGET FILE...    replay inputs (reproduce a finding)
#   tools/fuzz.sh --list                  the targets
#
# --seconds N  time per target (default 60)
# --jobs N     libFuzzer processes per target (default 1)
# --merge      afterwards, minimise the committed corpus fuzz/corpus/TARGET
#              together with what this run found (libFuzzer -merge=1);
#              otherwise the committed corpus and seeds are only read and new
#              inputs go to a scratch directory
# Environment: HPCS_FUZZ_WORK (scratch corpora and logs; default
# /var/tmp/hpcs-fuzz), HPCS_FUZZ_TARGET_DIR (the instrumented build; default
# target/fuzz), HPCS_FUZZ_NICE (niceness, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60 jobs=1 merge=0 run=0 targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --merge) merge=1; shift ;;
    --run) run=1; shift; break ;;
    --list) sed -n 's/^    ("\([a-z0-9_]*\)", .*/\1/p' fuzz/src/targets/mod.rs; exit 0 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (see tools/fuzz.sh --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
mapfile -t all < <(sed -n 's/^    ("\([a-z0-9_]*\)", .*/\1/p' fuzz/src/targets/mod.rs)
if ((run)); then
  targets=("${1:?--run needs a target and input files}"); shift
  (($#)) || { echo "fuzz: --run ${targets[0]} needs input files" >&2; exit 2; }
fi
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (targets: ${all[*]})" >&2; exit 2; }
done

# The build: every crate instrumented for libFuzzer's coverage feedback and
# compiled with debug assertions and overflow checks. --target keeps the
# flags off build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${HPCS_FUZZ_TARGET_DIR:-$PWD/target/fuzz}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
nice=(nice -n "${HPCS_FUZZ_NICE:-10}")
work=${HPCS_FUZZ_WORK:-/var/tmp/hpcs-fuzz}
mkdir -p "$work"
echo "fuzz: building the instrumented targets (a first build takes minutes; log: $work/build.log)" >&2
if ! "${nice[@]}" cargo build --locked --release -p hpcs-fuzz --features libfuzzer --bins \
    --target "$triple" >"$work/build.log" 2>&1; then
  tail -20 "$work/build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
bin=$CARGO_TARGET_DIR/$triple/release

if ((run)); then
  exec "$bin/${targets[0]}" "$@"
fi

par=()
((jobs > 1)) && par=(-jobs="$jobs" -workers="$jobs")
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
  echo "fuzz: $t for ${seconds}s x $jobs" >&2
  log=$work/$t.log
  # New inputs go to $work/$t; fuzz/corpus/$t and fuzz/seeds/$t are read.
  if ! (cd "$work" && "${nice[@]}" "$bin/$t" "$work/$t" "$OLDPWD/fuzz/corpus/$t" "$OLDPWD/fuzz/seeds/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${par[@]}" -artifact_prefix="$OLDPWD/fuzz/artifacts/$t/") >"$log" 2>&1; then
    failed+=("$t")
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/, the log in $log:" >&2
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    continue
  fi
  # One line per target: executions and coverage (with --jobs, worker 0).
  { grep -hE '^#[0-9]+.*DONE' "$log" "$work"/fuzz-0.log 2>/dev/null || true; } | tail -1 >&2
  if ((merge)); then
    tmp=$(mktemp -d "$work/merge-$t.XXXXXX")
    "${nice[@]}" "$bin/$t" -merge=1 "$tmp" "fuzz/corpus/$t" "fuzz/seeds/$t" "$work/$t" \
      >"$work/$t.merge.log" 2>&1
    # Named inputs (regression inputs of fixed findings) stay, whatever
    # their coverage; libFuzzer names what it keeps by its SHA-1.
    find "fuzz/corpus/$t" -type f ! -regex '.*/[0-9a-f]\{40\}' -exec cp {} "$tmp/" \;
    rm -rf "fuzz/corpus/$t" && mv "$tmp" "fuzz/corpus/$t"
    echo "fuzz: $t corpus minimised to $(find "fuzz/corpus/$t" -type f | wc -l) inputs" >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ok (${targets[*]})" >&2
