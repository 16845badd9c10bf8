#!/usr/bin/env bash
# The gpen commands of tools/bench/gpu_session.sh, run here on the CUDA emulator
# (build/libgpen_cuda_emu.so, docs/ARCHITECTURE.md "CUDA backend") with small sizes: a command
# that fails or crashes on the emulator would fail on the GPU too and waste a lease. Times are
# meaningless (the emulator runs every CUDA thread as a fiber); this checks that each stage's
# command runs to the end and says what it should.
#   usage: bash tools/bench/gpu_session_dry_run.sh [build-dir]   (11 minutes on the 2-core dev VM, busy)
set -uo pipefail
cd "$(dirname "$0")/../.."
B="$(cd "${1:-build}" && pwd)"
SHARED="$(cd ../shared && pwd)"
DET="$SHARED/weights/retinaface_mobilenet0.25.pth"
T="$(mktemp -d /tmp/gpen_dry_run.XXXXXX)"
trap 'rm -rf "$T"' EXIT
export GPEN_CUDA_MODULE="$B/libgpen_cuda_emu.so" GPEN_CUDA_ALGO_CACHE=off
[ -f "$GPEN_CUDA_MODULE" ] || { echo "no $GPEN_CUDA_MODULE (a build without the CUDA toolkit's headers?)"; exit 1; }
W="$T/gpen256.safetensors"
"$B/gpen" convert random:256 "$W" >/dev/null
PHOTO="$SHARED/images/aligned_ffhq_00002.png"
failed=0
# Runs one stage's command; a failure is counted and the stages go on.
step() {
  local name="$1"
  shift
  echo "=== $name"
  if ! timeout -k 5 600 "$@" >"$T/$name.log" 2>&1; then
    echo "!!! $name failed (exit $?):"
    failed=$((failed + 1))
  fi
  grep -v '^gpen: note' "$T/$name.log" | tail -n 6
}

step profile "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 2 --runs 1 --profile --top 8
step nhwc16 env GPEN_CUDA_NHWC16=1 "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 1,2 \
  --runs 1 --profile --top 8
step streams "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 2 --runs 2 --streams 2
step quick "$B/gpen" bench --model "$W" --device cuda --precision fp16 --batch-size 1 --runs 1 --heuristic-algos
step fp32 "$B/gpen" bench --model "$W" --device cuda --precision fp32,tf32 --batch-size 1 --runs 1
mkdir -p "$T/photos"
for i in 1 2 3; do ln -s "$PHOTO" "$T/photos/p$i.png"; done
for nhwc16 in 0 1; do
  step "photos_nhwc16_$nhwc16" env GPEN_CUDA_NHWC16=$nhwc16 "$B/gpen" enhance "$T/photos" -o "$T/out$nhwc16" \
    --model "$W" --detector "$DET" --device cuda --precision fp16 --batch-size 4 --detector-device cuda \
    --workers 0 --streams 0 --quiet --report "$T/photos$nhwc16.json"
  [ "$(ls "$T/out$nhwc16" 2>/dev/null | wc -l)" = 3 ] || { echo "!!! photos_nhwc16_$nhwc16: not 3 outputs"; failed=$((failed + 1)); }
done
step detstart env GPEN_CUDA_QUICK_ALGOS=1 "$B/gpen" detect "$PHOTO" --detector "$DET" --device cuda
step serve python3 tools/bench/serve_photos.py --gpen "$B/gpen" --model "$W" --detector "$DET" --photo "$PHOTO" \
  --requests 6 --clients 3 --warmup 1 -- --device cuda --precision fp16 --batch-size 4 --workers 2 \
  --outputs "$T/serve_outputs" --max-upload-mb 64
step report "$B/gpen" bench --report --devices cpu,cuda --images "$T/photos" --detector "$DET" --model "$W"
echo "=== $failed stage(s) failed"
exit $((failed > 0))
