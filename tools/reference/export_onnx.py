#!/usr/bin/python3
"""Export the reference GPEN FullGenerator to ONNX (for an ONNX Runtime peer
benchmark; not used by the engine or its tests).

usage: /usr/bin/python3 tools/reference/export_onnx.py --pth FILE --size S --out FILE.onnx
          [--opset 17] [--batch 1] [--check]

The configuration (channel_multiplier, narrow, style_dim, n_mlp) is inferred
from the checkpoint's shapes; --size must agree.  Graph: input "input"
(B x 3 x S x S, float32, [-1, 1]) -> output "output" (same shape).  The
batch size is fixed (--batch, default 1): the per-sample modulated weights are
applied as a grouped convolution with groups = batch.  Upsampling convolutions
are exported as ConvTranspose (ModulatedConv2d.upsample_impl = "transpose").
--check: compare onnxruntime's output with PyTorch if onnxruntime is
installed, and run onnx.checker if the onnx module is installed.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpen_model as G  # noqa: E402

torch.set_num_threads(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pth", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    sd = torch.load(args.pth, map_location="cpu")
    cfg = G.config_from_state_dict(sd)
    if cfg["size"] != args.size:
        ap.error("--size %d but the checkpoint is a size-%d model" % (args.size, cfg["size"]))
    model = G.build_from_config(cfg).eval()
    model.load_state_dict(sd, strict=True)
    del sd
    G.ModulatedConv2d.upsample_impl = "transpose"
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    t0 = time.time()
    with torch.no_grad():
        torch.onnx.export(model, (x,), args.out, opset_version=args.opset,
                          input_names=["input"], output_names=["output"],
                          do_constant_folding=True)
    print("exported %s (config %s, opset %d, batch %d): %d bytes, %.1fs"
          % (args.out, cfg, args.opset, args.batch, os.path.getsize(args.out),
             time.time() - t0))
    if not args.check:
        return
    try:
        import onnx
        m = onnx.load(args.out)
        onnx.checker.check_model(m)
        ops = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        print("onnx.checker: OK; ops:", dict(sorted(ops.items())))
    except ImportError:
        print("onnx module not installed: checker skipped")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: runtime comparison skipped")
        return
    with torch.no_grad():
        y = model(x).numpy()
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    yo = sess.run(None, {"input": x.numpy()})[0]
    print("onnxruntime vs torch: max abs diff %.3g" % np.abs(yo - y).max())


if __name__ == "__main__":
    main()
