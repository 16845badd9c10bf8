#!/usr/bin/env bash
# gpen vs ONNX Runtime (CPU) on the SAME random GPEN weights, same thread count, in the same run.
#
#   tools/bench/peer_ort.sh [SIZE=512] [THREADS=2] [RUNS=5] [PRECISION=fp32] [GPEN_FLAGS]
#
# GPEN_FLAGS: extra `gpen bench` flags, e.g. "--low-memory".
#
# Needs: build/gpen, /usr/bin/python3 with torch (tools/reference), node + npm. onnxruntime-node is
# installed into a scratch folder OUTSIDE the repo ($GPEN_ORT_DIR, default /tmp/gpen-ort) with
# --ignore-scripts, so nothing tries to download GPU binaries. The model is the reference's
# random-weight checkpoint (tools/reference/make_fixtures.sh), exported to ONNX once.
# The two engines run alternately (gpen, ORT, gpen, ORT) so machine noise hits both alike.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SIZE="${1:-512}" THREADS="${2:-2}" RUNS="${3:-5}" PRECISION="${4:-fp32}" GPEN_FLAGS="${5:-}"
FIX="${GPEN_FIXTURES:-$ROOT/build/fixtures}"
ORT_DIR="${GPEN_ORT_DIR:-/tmp/gpen-ort}"
PTH="$FIX/gpen_random_$SIZE.pth"
ONNX="$FIX/gpen_random_$SIZE.onnx"

[ -f "$PTH" ] || GPEN_FIXTURE_SIZES="$SIZE" bash "$ROOT/tools/reference/make_fixtures.sh" "$FIX"
[ -f "$ONNX" ] || /usr/bin/python3 "$ROOT/tools/reference/export_onnx.py" --pth "$PTH" --size "$SIZE" --out "$ONNX"
if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ORT_DIR"
  (cd "$ORT_DIR" && npm init -y >/dev/null && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0 >/dev/null)
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
gpen_json=() ort_json=()
for round in 1 2; do
  gpen_json+=("$("$ROOT/build/gpen" bench --model "$PTH" --threads "$THREADS" --runs "$RUNS" --precision "$PRECISION" $GPEN_FLAGS --json)")
  ort_json+=("$(NODE_PATH="$ORT_DIR/node_modules" node "$ROOT/tools/bench/ort_time.js" "$ONNX" "$SIZE" "$THREADS" "$RUNS")")
done
/usr/bin/python3 - "$SIZE" "$THREADS" "${gpen_json[@]}" "${ort_json[@]}" <<'PY'
import json, statistics, sys
size, threads = sys.argv[1], sys.argv[2]
rows = [json.loads(a) for a in sys.argv[3:]]
g = [t for r in rows[:2] for t in r["times_s"]]
o = [t for r in rows[2:] for t in r["times_s"]]
gm, om = statistics.median(g), statistics.median(o)
print(f"GPEN-{size}, {threads} threads, {rows[0]['precision']}, isa {rows[0]['isa']}")
print(f"  gpen:             median {gm:.3f} s  min {min(g):.3f}  max {max(g):.3f}  ({len(g)} runs)  peak RSS {rows[0]['peak_rss_mb']:.0f} MB")
print(f"  {rows[2]['peer']}: median {om:.3f} s  min {min(o):.3f}  max {max(o):.3f}  ({len(o)} runs)")
print(f"  ratio (ORT / gpen): {om / gm:.2f}x")
PY
