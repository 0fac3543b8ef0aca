#!/usr/bin/env bash
# The one prepared check of the CUDA backend on a GPU machine. Takes a carried build of the library
# and its test program (build-gpu/Release, built beforehand on a machine without a GPU) when it starts,
# else configures and builds kernels/ on its own, then runs, each step under its own time limit and
# none stopping the ones after it:
#   nvidia-smi; clipkit_cuda_test (every case); compute-sanitizer memcheck on --quick;
#   clipkit_cuda_test --bench; python3 bench/cuda_anchor.py; compute-sanitizer racecheck on --quick
# (racecheck last: it is the slowest, and the benchmarks should not wait on it), and prints a short
# summary at the end. Everything lands in $OUT, in 7 files:
#   summary.txt    the summary printed at the end, nvidia-smi first
#   build.log      which build was used; configure and build output when built here
#   test.jsonl     the test program's JSON lines (one per checked output, a summary line last)
#   sanitizer.log  memcheck, then racecheck
#   bench.jsonl    the microbenchmarks' JSON lines
#   anchor.jsonl   the PyTorch anchors' JSON lines (same field names; join on bench, dtype, shape)
#   stderr.log     what the test, bench and anchor steps wrote to stderr
#
# Usage: scripts/gpu-check.sh [--build-only]
#   --build-only        configure and build into CKC_BUILD_DIR and stop: run it where nvcc is but no
#                       GPU, then bring build-gpu/Release (the library and the test program, about
#                       15 MB) along to the GPU machine, so that its time goes to the checks
#   OUT                 where the files go (default: check-out/ in the build directory)
#   CKC_BUILD_DIR       the build to take or make (default: build-gpu/ in the repository)
#   CKC_CHECK_BUDGET_S  the whole script's time in seconds (default 480): each step's limit is cut to
#                       what is left, and a step with under 10 s left is skipped
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CKC_BUILD_DIR:-$ROOT/build-gpu}
OUT=${OUT:-$BUILD/check-out}
BUDGET=${CKC_CHECK_BUDGET_S:-480}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt BUILD_LOG=$OUT/build.log TEST_OUT=$OUT/test.jsonl SAN_LOG=$OUT/sanitizer.log
BENCH_OUT=$OUT/bench.jsonl ANCHOR_OUT=$OUT/anchor.jsonl ERR_LOG=$OUT/stderr.log
: >"$SUMMARY"; : >"$BUILD_LOG"; : >"$TEST_OUT"; : >"$SAN_LOG"; : >"$BENCH_OUT"; : >"$ANCHOR_OUT"; : >"$ERR_LOG"

START=$(date +%s)
DEADLINE=$((START + BUDGET))
STEPS=()  # "name|verdict|seconds"

say() { echo "$*" | tee -a "$SUMMARY"; }

verdict_of() {  # exit status -> words
  local rc=$1
  case $rc in
    0) echo "ok" ;;
    77) echo "skipped (no usable GPU: see the skip line)" ;;
    124 | 137) echo "TIMED OUT" ;;
    *) if ((rc > 128)); then echo "CRASHED (signal $((rc - 128)))"; else echo "failed (exit $rc)"; fi ;;
  esac
}

# run_step NAME CAP_S STDOUT_FILE STDERR_FILE CMD...: runs CMD under min(CAP_S, time left); sets RC.
run_step() {
  local name=$1 cap=$2 out=$3 err=$4
  shift 4
  local left=$((DEADLINE - $(date +%s) - 5))
  if ((left < 10)); then
    STEPS+=("$name|skipped (no time left in the budget)|0")
    RC=125
    return
  fi
  ((cap > left)) && cap=$left
  echo "=== $name (limit ${cap}s): $*" >>"$err"
  local t0=$(date +%s)
  timeout --kill-after=10 "$cap" "$@" >>"$out" 2>>"$err"
  RC=$?
  local dt=$(($(date +%s) - t0))
  echo "=== $name: exit $RC after ${dt}s" >>"$err"
  STEPS+=("$name|$(verdict_of $RC)|$dt")
}

# Keep every returned file under the 16 MiB a file may have.
cap_file() { [ -f "$1" ] && [ "$(stat -c %s "$1")" -gt 15000000 ] && truncate -s 15000000 "$1" && echo "[cut at 15 MB]" >>"$1"; }

# Configures and builds the test program (and the library it links) into $1; sets RC.
# kernels/CMakeLists.txt configures on its own as well as inside the addon's project.
build_into() {
  local dir=$1 nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  {
    echo "building in $dir"
    cmake --version 2>&1 | head -1
    "$nvcc" --version 2>&1 | tail -2
  } >>"$BUILD_LOG"
  run_step configure 120 "$BUILD_LOG" "$BUILD_LOG" cmake -S "$ROOT/kernels" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCLIPKIT_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc"
  [ "$RC" -eq 0 ] && run_step build 400 "$BUILD_LOG" "$BUILD_LOG" cmake --build "$dir" --target clipkit_cuda_test \
    -j"$(nproc 2>/dev/null || echo 8)"
}

if [ "${1:-}" = "--build-only" ]; then
  DEADLINE=$((START + ${CKC_CHECK_BUDGET_S:-900}))
  build_into "$BUILD"
  tail -5 "$BUILD_LOG"
  [ -x "$BUILD/Release/clipkit_cuda_test" ] && ls -l "$BUILD/Release" && exit 0
  echo "no test program built: see $BUILD_LOG"
  exit 1
fi

# ---- nvidia-smi ----
{
  echo "# nvidia-smi"
  timeout 20 nvidia-smi 2>&1 || echo "nvidia-smi: exit $?"
  echo
} >>"$SUMMARY"

# ---- the build: carried, else made here ----
TEST_BIN=""
usable() {  # the binary loads and talks to the library: exit 0 (a GPU) or 77 (none)
  [ -x "$1" ] || return 1
  timeout 60 "$1" --filter __no_case__ >/dev/null 2>&1
  local rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 77 ]
}
if usable "$BUILD/Release/clipkit_cuda_test"; then
  TEST_BIN=$BUILD/Release/clipkit_cuda_test
  {
    echo "carried build: $TEST_BIN"
    ls -l "$BUILD/Release" 2>&1
  } >>"$BUILD_LOG"
  STEPS+=("build|carried ($BUILD/Release)|0")
else
  [ -e "$BUILD/Release/clipkit_cuda_test" ] && echo "carried build at $BUILD/Release does not run here; building" >>"$BUILD_LOG"
  # A build directory of its own: a carried one may hold a CMake cache made under other paths.
  build_into "$BUILD-device"
  [ -x "$BUILD-device/Release/clipkit_cuda_test" ] && TEST_BIN=$BUILD-device/Release/clipkit_cuda_test
fi

# ---- the steps ----
SAN=$(command -v compute-sanitizer || { [ -x /usr/local/cuda/bin/compute-sanitizer ] && echo /usr/local/cuda/bin/compute-sanitizer; } || true)
TEST_RC=-1
if [ -n "$TEST_BIN" ]; then
  run_step "test (full)" 150 "$TEST_OUT" "$ERR_LOG" "$TEST_BIN"
  TEST_RC=$RC
  if [ "$TEST_RC" -ne 77 ]; then
    if [ -n "$SAN" ]; then
      echo "##### memcheck: $SAN --tool memcheck --leak-check full $TEST_BIN --quick" >>"$SAN_LOG"
      run_step "memcheck (--quick)" 100 "$SAN_LOG" "$SAN_LOG" "$SAN" --tool memcheck --leak-check full --error-exitcode 3 \
        --print-limit 100 "$TEST_BIN" --quick
    else
      STEPS+=("memcheck (--quick)|skipped (no compute-sanitizer)|0")
    fi
    run_step "bench" 100 "$BENCH_OUT" "$ERR_LOG" "$TEST_BIN" --bench
  fi
else
  STEPS+=("test (full)|skipped (no test program: see build.log)|0")
fi
run_step "anchor (PyTorch)" 100 "$ANCHOR_OUT" "$ERR_LOG" env PYTHONUNBUFFERED=1 python3 "$ROOT/bench/cuda_anchor.py"
if [ -n "$TEST_BIN" ] && [ "$TEST_RC" -ne 77 ] && [ -n "$SAN" ]; then
  echo "##### racecheck: $SAN --tool racecheck $TEST_BIN --quick" >>"$SAN_LOG"
  run_step "racecheck (--quick)" 100 "$SAN_LOG" "$SAN_LOG" "$SAN" --tool racecheck --error-exitcode 3 --print-limit 100 \
    "$TEST_BIN" --quick
fi
for f in "$BUILD_LOG" "$TEST_OUT" "$SAN_LOG" "$BENCH_OUT" "$ANCHOR_OUT" "$ERR_LOG"; do cap_file "$f"; done

# ---- summary ----
say "# steps (budget ${BUDGET}s, used $(($(date +%s) - START))s)"
for s in "${STEPS[@]}"; do
  IFS='|' read -r name verdict secs <<<"$s"
  say "$(printf '  %-22s %-48s %5ss' "$name" "$verdict" "$secs")"
done
grep -m1 '^skip:' "$TEST_OUT" | sed 's/^/  /' | tee -a "$SUMMARY"
if [ -s "$SAN_LOG" ]; then
  say "# compute-sanitizer"
  grep -E '^##### |ERROR SUMMARY|LEAK SUMMARY|RACECHECK SUMMARY|Error: ' "$SAN_LOG" | head -20 | sed 's/^/  /' | tee -a "$SUMMARY"
fi
if command -v python3 >/dev/null; then
  python3 - "$TEST_OUT" "$BENCH_OUT" "$ANCHOR_OUT" <<'EOF' | tee -a "$SUMMARY"
import json, sys

def lines(path):
    out = []
    try:
        for raw in open(path, errors="replace"):
            raw = raw.strip()
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
    except OSError:
        pass
    return out

tests, bench, anchor = (lines(p) for p in sys.argv[1:4])
summary = [t for t in tests if "summary" in t]
cases = [t for t in tests if "test" in t]
print("# tests")
if summary:
    s = summary[-1]
    print(f"  {s['passed']} passed, {s['failed']} failed")
elif cases:
    print(f"  no summary line: the program stopped after {len(cases)} lines, the last: {cases[-1].get('test')} "
          f"{cases[-1].get('dtype')} {cases[-1].get('shape')}")
for t in [t for t in cases if not t.get("pass")][:25]:
    why = "; ".join(t.get("failures", [])) or f"{t.get('bad')} of {t.get('checked')} beyond tol, err/tol {t.get('err_to_tol')}"
    print(f"  FAIL {t['test']} {t['dtype']} {t['shape']}: {why[:240]}")
worst = sorted((t for t in cases if t.get("pass") and isinstance(t.get("err_to_tol"), (int, float))),
               key=lambda t: -t["err_to_tol"])[:3]
for t in worst:
    print(f"  closest to its tolerance: {t['test']} {t['dtype']} {t['shape']}: err/tol {t['err_to_tol']}")

if bench:
    print("# bench (median ms; the anchor is the fastest PyTorch backend, eager or graph-replayed)")
    for b in bench:
        if "bench" not in b:
            continue
        name = f"{b['bench']} {b['dtype']} {b['shape']}" + (f" [{b['epilogue']}]" if b.get("epilogue", "none") != "none" else "")
        if "error" in b:
            print(f"  {name}: ERROR {b['error'][:160]}")
            continue
        rate = f"{b['tflops']:.1f} TFLOP/s" if "tflops" in b else f"{b['gbs']:.0f} GB/s"
        if "ratio_to_copy" in b:
            rate += f", {b['ratio_to_copy']:.2f}x copy time"
        best = None
        for a in anchor:
            if a.get("bench") == b["bench"] and a.get("dtype") == b["dtype"] and a.get("shape") == b["shape"] and "median_ms" in a:
                for ms in (a["median_ms"], a.get("graph_median_ms")):
                    if ms and (best is None or ms < best[0]):
                        best = (ms, a["impl"])
        ref = f" | {best[1]} {best[0]:.4g} ms, ours/anchor {b['median_ms'] / best[0]:.2f}" if best else ""
        print(f"  {name}: {b['median_ms']:.4g} ms, {rate}{ref}")
EOF
fi
say "# files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
# Exit 1 when a step failed, crashed or ran out of time (a skip for want of a GPU or a tool is no failure).
for s in "${STEPS[@]}"; do
  case ${s#*|} in failed* | CRASHED* | "TIMED OUT"*) exit 1 ;; esac
done
exit 0
