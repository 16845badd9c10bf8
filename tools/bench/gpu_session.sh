#!/usr/bin/env bash
# Everything a GPU session needs, in ONE call of the device tool, from the repository root:
#
#   first: ctest (its cuda_backend_emulated runs the [cuda] tests on the CUDA emulator) and
#          tools/bench/gpu_session_dry_run.sh (this script's gpen commands on the emulator):
#          what fails there would fail here too, at the price of the lease
#   here:  tools/bench/pack_gpu_carry.sh build            (binaries + libs + detector + photos)
#   there: run(command="bash tools/bench/gpu_session.sh", carry=[".gpucarry"], timeout_s=570)
#          (175 s on the H200 before the streams/serve stages, the third photo run and the
#          nhwc16 stage were added; expect about 5-7 minutes now; GPEN_GPU_STAGES picks a subset,
#          e.g. "device ops large peer nhwc16 photos" when the device budget is short). A task's
#          device time is 15 minutes in all, the machine's start included: this is one call, then
#          give_back. The stages run in order of what issue 6 asks (parity, the PyTorch peer,
#          the f16 mode, whole photos) before the nice-to-have ones, so a cut-off run loses those.
#
# Uses the binaries carried in .gpucarry/bin (built here with the CUDA module; the GPU machine's
# image has no libwebp/httplib/minizip to build with) and the machine's own CUDA libraries
# (cudart, cuBLAS, cuDNN: the toolkit's or PyTorch's wheels). Stages, each with its own limit so
# that one hang cannot eat the lease; full logs go to $OUT (the device tool's output folder):
#  1. machine facts;  2. [device] tests;  3. per-op parity [cuda]~[large];
#  4. whole-model parity [cuda][large] (GPEN-256/512, fp32 and fp16 vs the CPU);
#  5. gpen vs PyTorch eager on the same random GPEN-512 weights, same run (peer_torch_gpu.sh);
#     then gpen alone in fp32 and tf32;
#  6. per-layer profile (fp16, batch 16); the f16 NHWC activation mode (GPEN_CUDA_NHWC16=1): bench
#     and profile (batch 16 and batch 1);
#  7. whole photos (issue 6's photos/s goal, so before the nice-to-have stages): a 1920x1080
#     one-face photo x N through `gpen enhance --device cuda --batch-size 16` (default --workers,
#     then --workers 4); two runners forwarding at once (fp16, --streams 2); GPEN compile time and
#     speed with heuristic vs timed cuDNN algorithms (quick); detector start-up for a new photo
#     size, heuristic vs timed (detstart);
#  8. the same photo through `gpen serve --device cuda` from 32 concurrent clients
#     (serve_photos.py: photos/s and how many faces each shared GPEN forward took);
#  9. the seed-style report, cpu,cuda.
# Knobs: GPEN_GPU_STAGES (default "device ops large peer fp32 profile nhwc16 streams quick detstart photos serve";
# add "report" for the seed-style report, measured in run 4 and left out to fit the device budget),
# GPEN_GPU_BATCHES (1,4,8,16), GPEN_GPU_PRECISIONS (peer: fp16), GPEN_GPU_RUNS (20), GPEN_GPU_PHOTOS (256).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
C="$ROOT/.gpucarry"
B="$C/bin"
LOGS="${OUT:-/tmp/gpen-gpu}"
mkdir -p "$LOGS"
STAGES="${GPEN_GPU_STAGES:-device ops large peer fp32 profile nhwc16 streams quick detstart photos serve}"
T0=$(date +%s)
stage() { echo; echo "=== $1 (t=$(($(date +%s) - T0))s)"; }
want() { [[ " $STAGES " == *" $1 "* ]]; }
# Runs "$@" with a time limit, full output to $LOGS/$name.log, the last `lines` lines to the console.
run_logged() {
  local name="$1" limit="$2" lines="$3"
  shift 3
  timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n "$lines" "$LOGS/$name.log"
  [ $rc -eq 124 ] && echo "!!! $name: timed out after ${limit}s"
  echo "--- $name: exit $rc"
  return $rc
}

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
command -v nvcc >/dev/null && nvcc --version | tail -1
echo "cores: $(nproc)"

# The CUDA libraries: the toolkit's, else the ones PyTorch's wheels bring.
libdirs=""
for f in $(timeout 30 find /usr/local /opt /usr/lib -xdev \( -name 'libcudnn.so.9' -o -name 'libcublas.so.13' \
  -o -name 'libcublasLt.so.13' -o -name 'libcudart.so.13' \) 2>/dev/null); do
  d=$(dirname "$f")
  [[ ":$libdirs:" == *":$d:"* ]] || libdirs="$libdirs:$d"
done
export GPEN_BINARY_DIR="$B"  # tests that run the CLI find the carried binary
export LD_LIBRARY_PATH="$C/lib${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
# gpen loads its CUDA module only where the driver's libcuda.so.1 loads (the CUDA runtime's own
# lookup); say so early if it does not.
python3 -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null || echo "!!! libcuda.so.1 does not load: gpen will see no GPU"
missing=$(ldd "$B/gpen" "$B/gpen_tests" "$B/libgpen_cuda.so" | grep "not found" | sort -u)
[ -n "$missing" ] && echo "!!! missing libraries: $missing"
"$B/gpen" --version

# The tests read ../shared (never in the repository): give them the carried copies.
if [ ! -e "$ROOT/../shared" ]; then
  mkdir -p "$ROOT/../shared/weights" "$ROOT/../shared/images"
  ln -s "$C/data/retinaface_mobilenet0.25.pth" "$ROOT/../shared/weights/"
  ln -s "$C"/images/* "$ROOT/../shared/images/"
fi

if want device; then
  stage "device selection [device]"
  run_logged device 60 3 "$B/gpen_tests" "[device]" --reporter compact
fi
if want ops; then
  stage "per-op parity [cuda]~[large]"
  if ! run_logged cuda_ops 120 40 "$B/gpen_tests" "[cuda]~[large]" --reporter compact -d yes; then
    if command -v compute-sanitizer >/dev/null; then
      stage "per-op tests under compute-sanitizer (memcheck), since they failed"
      run_logged cuda_ops_memcheck 150 40 compute-sanitizer --tool memcheck "$B/gpen_tests" "[cuda]~[large]" --reporter compact
    fi
    # A module that passed an earlier session, carried as libgpen_cuda.so.validated: the rest of
    # the session measures it instead of a failing one (and says so).
    if [ -f "$B/libgpen_cuda.so.validated" ]; then
      echo "!!! per-op tests failed: the remaining stages use libgpen_cuda.so.validated"
      mv "$B/libgpen_cuda.so.validated" "$B/libgpen_cuda.so"
    fi
  fi
fi
if want large; then
  stage "whole-model parity [cuda][large] (GPEN-256, GPEN-512; fp32 and fp16 vs CPU)"
  run_logged cuda_large 150 25 "$B/gpen_tests" "[cuda][large]" --reporter compact -d yes -s && LARGE_OK=1
fi

W=/tmp/gpen_random_512.safetensors
[ -f "$W" ] || "$B/gpen" convert random:512 "$W" >/dev/null
if want peer; then
  stage "gpen CUDA vs PyTorch eager, same weights, same run"
  run_logged peer 200 30 bash tools/bench/peer_torch_gpu.sh "$B" 512 "${GPEN_GPU_BATCHES:-1,4,8,16}" \
    "${GPEN_GPU_PRECISIONS:-fp16}" "${GPEN_GPU_RUNS:-20}"
fi
if want profile; then
  stage "per-layer profile, fp16 batch 16"
  run_logged profile 90 110 "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 16 --runs 5 \
    --profile --top 32
fi
NHWC16_WINS=0
if want nhwc16; then
  # The f16 activation mode (GPEN_CUDA_NHWC16=1: NHWC f16 values end to end, no re-layout passes
  # around the convolutions); its parity ran in the [cuda] and [cuda][large] stages above. A/B in
  # one stage (f32 activations, then f16), the profile, and whether the photo runs use it too.
  stage "f16 NHWC activations (GPEN_CUDA_NHWC16=1) vs the f32 arena: bench A/B and profile, fp16"
  # nhwc16_0: f32 arena; nhwc16_1: f16 activations (per-sample filters on large layers, the
  # default); nhwc16_1ps0: f16 activations, x * style passes instead of per-sample filters.
  for variant in 0 1 1ps0; do
    GPEN_CUDA_NHWC16=${variant:0:1} GPEN_CUDA_PER_SAMPLE=$([ "$variant" = 1ps0 ] && echo 0 || echo 1) \
      run_logged "nhwc16_$variant" 120 10 "$B/gpen" bench --model "$W" --device cuda --precision fp16 \
      --batch-size 1,4,8,16 --runs 20
  done
  GPEN_CUDA_NHWC16=1 run_logged nhwc16_profile 90 60 "$B/gpen" bench --model "$W" --device cuda --precision fp16 \
    --batch-size 16 --runs 5 --profile --top 32
  # Batch 1 (the <= 3 ms latency goal): where a single face's time goes (the per-node events
  # add their own cost; the sum says which layers and how many launches matter).
  GPEN_CUDA_NHWC16=1 run_logged nhwc16_profile_b1 60 45 "$B/gpen" bench --model "$W" --device cuda --precision fp16 \
    --batch-size 1 --runs 20 --profile --top 32
  b16() { awk '$1 == "fp16" && $2 == 16 && $3 ~ /^[0-9.]+$/ { print $3; exit }' "$LOGS/nhwc16_$1.log"; }
  f32_rate=$(b16 0) f16_rate=$(b16 1)
  echo "batch 16 faces/s: f32 arena ${f32_rate:-?}, f16 NHWC ${f16_rate:-?} (without per-sample filters:" \
    "$(b16 1ps0)); [cuda][large] passed: ${LARGE_OK:-0}"
  if [ -n "$f32_rate" ] && [ -n "$f16_rate" ] && [ "${LARGE_OK:-0}" = 1 ] &&
    awk -v a="$f16_rate" -v b="$f32_rate" 'BEGIN { exit !(a > b) }'; then
    NHWC16_WINS=1
    echo "f16 NHWC activations are faster and passed parity: the photo runs add one with them"
  fi
fi
if want photos; then
  stage "whole photos: 1920x1080 one face, --device cuda --batch-size 16"
  N="${GPEN_GPU_PHOTOS:-256}"  # enough photos after the first for a steady rate
  rm -rf /tmp/photos /tmp/photos_out && mkdir -p /tmp/photos
  for i in $(seq -w 1 "$N"); do ln -s "$C/data/oneface_1080p.jpg" "/tmp/photos/p$i.jpg"; done
  # Run 1: everything on the GPU, defaults (--workers cores / 2, --streams 2 with GPEN on a GPU);
  # run 2: --workers 4 --streams 1 (the defaults before); run 3: RetinaFace on the CPU.
  # Run 4 (only when the nhwc16 stage found f16 activations faster and correct): run 1 with them.
  runs="1 2 3"
  [ "$NHWC16_WINS" = 1 ] && runs="1 2 3 4"
  for run in $runs; do
    det=$([ $run = 3 ] && echo cpu || echo cuda)
    workers=$([ $run = 2 ] && echo 4 || echo 0)
    streams=$([ $run = 2 ] && echo 1 || echo 0)
    export GPEN_CUDA_NHWC16=$([ $run = 4 ] && echo 1 || echo 0)
    rm -rf /tmp/photos_out
    t0=$(date +%s.%N)
    if ! run_logged "photos$run" 120 6 "$B/gpen" enhance /tmp/photos -o /tmp/photos_out --model "$W" \
      --detector "$C/data/retinaface_mobilenet0.25.pth" --device cuda --precision fp16 --batch-size 16 \
      --detector-device "$det" --workers "$workers" --streams "$streams" --quiet --report "/tmp/photos$run.json"; then
      echo "run $run failed: no rate (see photos$run.log)"
      continue
    fi
    t1=$(date +%s.%N)
    awk -v n="$N" -v a="$t0" -v b="$t1" -v r="$run" -v d="$det" -v w="$workers" \
      -v f="$GPEN_CUDA_NHWC16" \
      'BEGIN { printf "run %d (GPEN fp16" (f == 1 ? ", f16 NHWC activations" : "") ", RetinaFace on " d ", --workers/--streams " w "): %d photos in %.2f s = %.1f photos/s (process start and model load included)\n", r, n, b - a, n / (b - a) }'
    python3 - "/tmp/photos$run.json" <<'PY' || true
import json, statistics, sys
report = json.load(open(sys.argv[1]))
items = [i for i in report["items"] if i.get("status") == "done"]
s = report["summary"]
print(f"  first result after {s.get('first_result_s')} s; then {s.get('photos_per_s_after_first')} photos/s; "
      f"{s.get('photos_per_s_steady')} photos/s once a quarter were done (steady state)")
stages = sorted({k for i in items for k in i.get("stages_ms", {})})
print("  median ms per photo:", ", ".join(f"{k} {statistics.median(i['stages_ms'].get(k, 0) for i in items):.1f}" for k in stages))
PY
  done
  unset GPEN_CUDA_NHWC16
fi
if want streams; then
  stage "two GPEN runners forwarding at once (twins sharing weights, own streams), fp16"
  run_logged streams 120 8 "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 1,8,16 \
    --runs 20 --streams 2
fi
if want quick; then
  # GPEN's first compile in gpen enhance/serve takes cuDNN's heuristic algorithms: what that saves
  # at start-up and what it costs per forward, against timing every shape, both from an empty
  # algorithm cache file.
  stage "GPEN fp16 compile and speed: heuristic vs timed cuDNN algorithms"
  for h in "--heuristic-algos" ""; do
    rm -f /tmp/quick_algos.json
    GPEN_CUDA_ALGO_CACHE=/tmp/quick_algos.json run_logged "quick${h:+_h}" 120 4 "$B/gpen" bench --model "$W" \
      --device cuda --precision fp16 --batch-size 1,16 --runs 10 $h
  done
fi
if want detstart; then
  # What a new photo size costs the GPU detector: quick (heuristic) algorithms, as FaceDetector
  # compiles a size at first, against timing every shape (GPEN_CUDA_QUICK_ALGOS=0), each from an
  # empty algorithm cache file (process start and CUDA set-up are in both).
  stage "detector start-up per photo size: heuristic vs timed cuDNN algorithms"
  for photo in "$C/data/oneface_1080p.jpg" "$C/images/group_solvay_1927.png"; do
    for quick in 1 0; do
      rm -f /tmp/detstart_algos.json
      t0=$(date +%s.%N)
      GPEN_CUDA_QUICK_ALGOS=$quick GPEN_CUDA_ALGO_CACHE=/tmp/detstart_algos.json run_logged "detstart_q$quick" 60 0 \
        "$B/gpen" detect "$photo" --detector "$C/data/retinaface_mobilenet0.25.pth" --device cuda
      t1=$(date +%s.%N)
      awk -v a="$t0" -v b="$t1" -v q="$quick" -v p="$(basename "$photo")" -v n="$(head -1 "$LOGS/detstart_q$quick.log")" \
        'BEGIN { printf "%s, %s algorithms: %.2f s (%s)\n", p, (q == 1 ? "heuristic" : "timed"), b - a, n }'
    done
  done
fi
if want serve; then
  stage "gpen serve on the GPU: one 1080p photo, 32 concurrent clients"
  run_logged serve 150 8 python3 tools/bench/serve_photos.py --gpen "$B/gpen" --model "$W" \
    --detector "$C/data/retinaface_mobilenet0.25.pth" --photo "$C/data/oneface_1080p.jpg" \
    --requests 512 --clients 32 --warmup 64 -- --device cuda --precision fp16 --batch-size 16 --workers 16 \
    --outputs /tmp/serve_outputs --max-upload-mb 64
fi
if want fp32; then
  stage "gpen fp32 and tf32 (no peer: PyTorch fp32 spends minutes in cudnn.benchmark)"
  run_logged fp32 90 12 "$B/gpen" bench --model "$W" --device cuda --precision fp32,tf32 --batch-size 1,16 --runs 10
fi
if want report; then
  stage "seed-style report, cpu and cuda"
  run_logged report 150 80 "$B/gpen" bench --report --devices cpu,cuda --images "$C/images" \
    --detector "$C/data/retinaface_mobilenet0.25.pth" --model "$W"
fi
stage "done"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "logs: $LOGS"
