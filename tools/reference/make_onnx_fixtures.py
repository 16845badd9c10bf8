#!/usr/bin/python3
"""ONNX exports of a reference GPEN checkpoint, in the layouts the engine's
ONNX importer (weights/onnx_gpen.h) must read, for tests/test_onnx.cpp.

usage: /usr/bin/python3 tools/reference/make_onnx_fixtures.py (--pth FILE | --micro SEED)
          --out DIR --name NAME [--opset 17]

--micro SEED: instead of a checkpoint, a random FullGenerator(size=8,
style_dim=4, n_mlp=1, 2 channels): a few-KB file of the same structure, the
seed corpus of tests/fuzz/fuzz_onnx.cpp.

Writes into DIR:
  NAME.named.onnx      do_constant_folding=False: every parameter is an
                       initializer named after its state-dict key, unchanged
  NAME.anonymous.onnx  do_constant_folding=True (torch's default), then every
                       initializer renamed c0, c1, ... and node names dropped.
                       Folding replaces the parameters that feed constant-only
                       ops by their folded value (equal-lr scale multiplied in,
                       linear weights transposed, biases reshaped) under names
                       like onnx::Mul_926 and keeps the others' key names; the
                       renaming removes even those, so only the graph structure
                       tells which tensor is which (the importer never relies
                       on names for folded graphs, so this covers torch's
                       default export too)

Like facefusion's gpen_bfr_*.onnx, the graph has one input "input"
(1 x 3 x S x S) and one output "output", and upsampling convolutions are
ConvTranspose.  onnx.checker validates each file.
"""
import argparse
import os
import sys

import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpen_model as G  # noqa: E402

torch.set_num_threads(2)


def export(model, size, path, opset, fold):
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          do_constant_folding=fold)


def anonymise(src, dst):
    m = onnx.load(src)
    g = m.graph
    renames = {t.name: "c%d" % i for i, t in enumerate(g.initializer)}
    for t in g.initializer:
        t.name = renames[t.name]
    for n in g.node:
        n.name = ""
        for i, name in enumerate(n.input):
            if name in renames:
                n.input[i] = renames[name]
    keep = [v for v in g.input if v.name not in renames]
    del g.input[:]
    g.input.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pth")
    src.add_argument("--micro", type=int, metavar="SEED")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    if args.pth:
        sd = torch.load(args.pth, map_location="cpu")
        cfg = G.config_from_state_dict(sd)
        model = G.build_from_config(cfg).eval()
        model.load_state_dict(sd, strict=True)
    else:
        torch.manual_seed(args.micro)
        cfg = dict(size=8, style_dim=4, n_mlp=1, channel_multiplier=1, narrow=2 / 512)
        model = G.build_from_config(cfg).eval()
        with torch.no_grad():  # distinct values everywhere: torch merges equal initializers
            for name, p in model.named_parameters():
                p.copy_(torch.randn_like(p) * (0.2 if name.endswith("bias") else 1.0))
    G.ModulatedConv2d.upsample_impl = "transpose"
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, args.name)
    export(model, cfg["size"], base + ".named.onnx", args.opset, fold=False)
    export(model, cfg["size"], base + ".folded.tmp.onnx", args.opset, fold=True)
    anonymise(base + ".folded.tmp.onnx", base + ".anonymous.onnx")
    os.remove(base + ".folded.tmp.onnx")
    for suffix in ("named", "anonymous"):
        path = "%s.%s.onnx" % (base, suffix)
        m = onnx.load(path)
        onnx.checker.check_model(m)
        print("%s: %d bytes, %d initializers, %d nodes"
              % (path, os.path.getsize(path), len(m.graph.initializer), len(m.graph.node)))


if __name__ == "__main__":
    main()
