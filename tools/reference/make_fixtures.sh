#!/usr/bin/env bash
# Make the larger (generated, NOT committed) GPEN fixtures into OUTDIR
# (default build/fixtures) with the PyTorch reference.  Files that already
# exist are kept: a size is regenerated only if one of its files is missing
# (generation is deterministic, so a regenerated file is identical).
#
#   tools/reference/make_fixtures.sh [OUTDIR]
#
# Env: PYTHON (default /usr/bin/python3, needs torch + numpy + PIL),
#      GPEN_FIXTURE_SIZES (default "256 512"; 1024 works too, ~minutes),
#      GPEN_FIXTURE_F64=1 to also run (and print) the float64 noise check.
# Per size S (official layout: 256 -> cm 1, narrow 0.5; 512/1024 -> cm 2, narrow 1):
#   gpen_random_S.pth                    random weights, torch.save(state_dict)
#   gpen_random_S.golden.safetensors     input/intermediates/output, f32
#   gpen_random_S.aligned_out.png        uint8 end-to-end output for the aligned image
#   gpen_random_S.resized_in.png         the SxS uint8 model input of that run
#   gpen_random_S.aligned.golden.safetensors  resized (U8), input, output (F32)
# and gpen_random_256.{named,anonymous}.onnx (make_onnx_fixtures.py).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$ROOT/build/fixtures}"
PY="${PYTHON:-/usr/bin/python3}"
SHARED="${GPEN_SHARED:-$ROOT/../shared}"
SIZES="${GPEN_FIXTURE_SIZES:-256 512}"
mkdir -p "$OUT"

F64=--no-f64
[ "${GPEN_FIXTURE_F64:-0}" = 1 ] && F64=

for S in $SIZES; do
  case $S in
    256)  BATCH=2; SEED=256;  IMG="$SHARED/images/lowq_face_512.png" ;;
    512)  BATCH=1; SEED=512;  IMG="$SHARED/images/aligned_ffhq_00002.png" ;;
    1024) BATCH=1; SEED=1024; IMG="$SHARED/images/aligned_ffhq_00002.png" ;;
    *) echo "unsupported size $S" >&2; exit 2 ;;
  esac
  N="gpen_random_$S"
  need=0
  for f in "$N.pth" "$N.golden.safetensors" "$N.aligned_out.png" "$N.resized_in.png" \
           "$N.aligned.golden.safetensors"; do
    [ -s "$OUT/$f" ] || need=1
  done
  if [ $need = 0 ]; then
    echo "[make_fixtures] $N: all files exist in $OUT, skipped"
    continue
  fi
  echo "[make_fixtures] $N: generating (batch $BATCH, seed $SEED)"
  start=$(date +%s%N)
  PYTHONUNBUFFERED=1 "$PY" "$HERE/make_gpen_fixture.py" --size "$S" --seed "$SEED" --batch "$BATCH" $F64 \
      --out "$OUT" --name "$N" \
      --aligned-image "$IMG" --png-out "$OUT/$N.aligned_out.png" \
      --resized-out "$OUT/$N.resized_in.png" \
      --aligned-golden "$OUT/$N.aligned.golden.safetensors" | grep -v '^  '
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  printf '[make_fixtures] %s: done in %d.%03d s\n' "$N" $((ms / 1000)) $((ms % 1000))
done

# ONNX exports of GPEN-256 (named, and folded + anonymised) for the ONNX importer's [large] test.
if [ -s "$OUT/gpen_random_256.pth" ]; then
  if [ -s "$OUT/gpen_random_256.named.onnx" ] && [ -s "$OUT/gpen_random_256.anonymous.onnx" ]; then
    echo "[make_fixtures] gpen_random_256 ONNX: all files exist in $OUT, skipped"
  elif ! "$PY" "$HERE/make_onnx_fixtures.py" --pth "$OUT/gpen_random_256.pth" --out "$OUT" \
      --name gpen_random_256 2>"$OUT/onnx_export.log"; then
    cat "$OUT/onnx_export.log" >&2; exit 1
  fi
fi

# ParseNet and RRDBNet (Real-ESRNet x2 / x4) with random weights of the published layouts, run by
# the PyTorch references on small inputs (a few seconds; the .pth files are 38-85 MB).
SRP="$HERE/make_sr_parse_fixture.py"
gen_sr_parse() {  # NAME ARGS...
  local n=$1; shift
  if [ -s "$OUT/$n.pth" ] && [ -s "$OUT/$n.golden.safetensors" ]; then
    echo "[make_fixtures] $n: all files exist in $OUT, skipped"; return; fi
  "$PY" "$SRP" "$@" --official --out "$OUT" --name "$n"
}
gen_sr_parse parsenet_random parsenet --size 64 --batch 1 --seed 512
gen_sr_parse realesrnet_random_x2 rrdbnet --scale 2 --height 32 --width 48 --seed 22
gen_sr_parse realesrnet_random_x4 rrdbnet --scale 4 --height 16 --width 20 --seed 44
