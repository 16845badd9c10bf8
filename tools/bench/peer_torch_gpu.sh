#!/usr/bin/env bash
# gpen's CUDA backend vs PyTorch eager (the project's reference model, tools/reference/gpen_model.py)
# on the SAME random GPEN weights, on the same GPU, in the same run; prints both and the ratio.
#
#   tools/bench/peer_torch_gpu.sh [BUILD_DIR=build-gpu] [SIZE=512] [BATCHES=1,4,8,16] [PRECISIONS=fp32,fp16] [RUNS=20]
#
# The weights are gpen's seeded random GPEN of the official layout, written once as safetensors
# (`gpen convert random:SIZE`) and loaded by both engines. Both time a synchronous forward that
# includes copying the batch to the GPU and the result back. gpen runs through
# `gpen bench --device cuda` when the CLI has it, else through the hidden test "[cuda-bench]"
# (same code: tools/bench_cuda.cpp). PyTorch: the first python3 whose torch sees a GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B="${1:-$ROOT/build-gpu}" SIZE="${2:-512}" BATCHES="${3:-1,4,8,16}" PRECISIONS="${4:-fp32,fp16}" RUNS="${5:-20}"
W="${TMPDIR:-/tmp}/gpen_random_$SIZE.safetensors"
[ -f "$W" ] || "$B/gpen" convert "random:$SIZE" "$W" >/dev/null

gpen_json="$(mktemp)" torch_json="$(mktemp)"
if "$B/gpen" bench --help 2>&1 | grep -q -- '--device'; then
  "$B/gpen" bench --model "$W" --device cuda --batch-size "$BATCHES" --precision "$PRECISIONS" --runs "$RUNS" --json \
    | grep '^{' >"$gpen_json" || true
else
  GPEN_BENCH_MODEL="$W" GPEN_BENCH_BATCHES="$BATCHES" GPEN_BENCH_PRECISIONS="$PRECISIONS" GPEN_BENCH_RUNS="$RUNS" \
    "$B/gpen_tests" "[cuda-bench]" | grep '^{' >"$gpen_json" || true
fi

PY=""
for p in "${PYTHON:-}" python3 /usr/bin/python3; do
  [ -n "$p" ] || continue
  if "$p" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then PY="$p"; break; fi
done
if [ -n "$PY" ]; then
  "$PY" "$ROOT/tools/bench/peer_torch_gpu.py" --weights "$W" --batch-sizes "$BATCHES" --precisions "$PRECISIONS" \
    --runs "$RUNS" >"$torch_json" || true
else
  echo '{"engine": "torch-eager", "error": "no python3 with a CUDA-enabled torch on this machine"}' >"$torch_json"
fi

/usr/bin/env python3 - "$gpen_json" "$torch_json" <<'PY'
import json, sys
def rows(path):
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
g, t = rows(sys.argv[1]), rows(sys.argv[2])
for r in g + t:
    if "error" in r:
        print("error:", r.get("engine", "gpen"), r["error"])
if g:
    print(f"gpen: {g[0].get('model', '')} on {g[0].get('device', '')}")
tk = {(r["precision"], r["batch"]): r for r in t if "faces_per_s" in r}
if tk:
    r0 = next(iter(tk.values()))
    print(f"torch {r0['torch']} eager, channels_last, on {r0['device']}")
print(f"{'prec':5} {'batch':>5} | {'gpen f/s':>9} {'ms':>8} {'MiB':>6} | {'torch f/s':>9} {'ms':>8} {'MiB':>6} | {'ratio':>6}")
for r in g:
    if "faces_per_s" not in r:
        continue
    o = tk.get((r["precision"], r["batch"]))
    line = f"{r['precision']:5} {r['batch']:5d} | {r['faces_per_s']:9.1f} {r['median_ms']:8.3f} {r.get('gpu_allocated_mb', 0):6.0f} |"
    if o:
        line += f" {o['faces_per_s']:9.1f} {o['median_ms']:8.3f} {o['peak_mb']:6.0f} | {r['faces_per_s'] / o['faces_per_s']:5.2f}x"
    else:
        line += f" {'-':>9} {'-':>8} {'-':>6} |"
    print(line)
if not g:
    print("gpen produced no results (see above)")
PY
rm -f "$gpen_json" "$torch_json"
