#!/usr/bin/env bash
# Everything a GPU session needs, in ONE call, from the repository root of the GPU machine:
#
#   bash tools/bench/gpu_session.sh [BUILD_DIR=build-gpu]
#
# 1. machine facts (nvidia-smi, nvcc); 2. configure + build with CUDA (skipped when BUILD_DIR
# already has gpen, gpen_tests and libgpen_cuda.so); 3. the [device] tests, the per-op [cuda]
# tests, the whole-model [cuda][large] parity tests; 4. gpen vs PyTorch eager on the same weights
# (tools/bench/peer_torch_gpu.sh). Each stage has its own time limit so that one hang cannot eat
# the session; full logs go to $OUT (the device tool's output folder) or /tmp/gpen-gpu.
# Knobs: GPEN_GPU_BATCHES (1,4,8,16), GPEN_GPU_PRECISIONS (fp32,fp16), GPEN_GPU_RUNS (20),
# GPEN_GPU_SKIP_BENCH=1, GPEN_GPU_SKIP_LARGE=1.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B="${1:-build-gpu}"
LOGS="${OUT:-/tmp/gpen-gpu}"
mkdir -p "$LOGS"
T0=$(date +%s)
stage() { echo; echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
# Runs "$@" with a time limit, full output to $LOGS/$name.log, the last lines to the console.
run_logged() {
  local name="$1" limit="$2" lines="$3"
  shift 3
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n "$lines" "$LOGS/$name.log"
  [ $rc -eq 124 ] && echo "!!! $name: timed out after ${limit}s"
  echo "--- $name: exit $rc"
  return $rc
}

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -4
command -v nvcc >/dev/null && nvcc --version | tail -1
echo "cores: $(nproc); cmake: $(cmake --version 2>/dev/null | head -1)"

stage "build ($B)"
# A build carried from another machine is used when its binaries start here; else build afresh.
if [ -f "$B/libgpen_cuda.so" ] && "$B/gpen" --version >/dev/null 2>&1 && "$B/gpen_tests" --help >/dev/null 2>&1 \
   && ! ldd "$B/libgpen_cuda.so" | grep -q "not found"; then
  echo "using the existing build in $B"
else
  [ -d "$B" ] && B="$B-fresh"  # a carried build dir belongs to another source path
  run_logged configure 180 3 cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DGPEN_BENCHMARKS=OFF -DGPEN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 || { echo "configure failed; see $LOGS/configure.log"; tail -30 "$LOGS/configure.log"; exit 1; }
  run_logged build 420 5 cmake --build "$B" -j"$(nproc)" --target gpen gpen_tests gpen_cuda \
    || { grep -m20 -E "error|Error" "$LOGS/build.log"; exit 1; }
fi

stage "device selection [device]"
run_logged device 60 3 "$B/gpen_tests" "[device]" --reporter compact

stage "per-op parity [cuda]~[large]"
run_logged cuda_ops 180 40 "$B/gpen_tests" "[cuda]~[large]" --reporter compact -d yes
grep -c "SKIPPED" "$LOGS/cuda_ops.log" >/dev/null && grep -m3 "SKIPPED" "$LOGS/cuda_ops.log"

if [ "${GPEN_GPU_SKIP_LARGE:-0}" != 1 ]; then
  stage "whole-model parity [cuda][large] (GPEN-256, GPEN-512; fp32 and fp16 vs CPU)"
  run_logged cuda_large 240 25 "$B/gpen_tests" "[cuda][large]" --reporter compact -d yes
fi

if [ "${GPEN_GPU_SKIP_BENCH:-0}" != 1 ]; then
  stage "bench: gpen CUDA vs PyTorch eager, same weights, same run"
  run_logged bench 420 30 bash tools/bench/peer_torch_gpu.sh "$B" 512 "${GPEN_GPU_BATCHES:-1,4,8,16}" \
    "${GPEN_GPU_PRECISIONS:-fp32,fp16}" "${GPEN_GPU_RUNS:-20}"
fi

stage "done"
echo "logs: $LOGS"
