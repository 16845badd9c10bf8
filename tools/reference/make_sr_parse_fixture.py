#!/usr/bin/python3
"""Make ParseNet / RRDBNet test fixtures with the PyTorch references (parsenet_model.py,
rrdbnet_model.py): a random-weight checkpoint (torch.save of the state dict, zip format) and a
golden safetensors file with a seeded input and the reference outputs (f32).

  make_sr_parse_fixture.py parsenet --out DIR --name N [--official | --base-ch C --ch-max M
      --downs D --res-depth R] --size S --batch B --seed SEED
      golden: input [B,3,S,S] uniform in [-1, 1], mask [B,19,S,S] logits, image [B,3,S,S]
  make_sr_parse_fixture.py rrdbnet --out DIR --name N --scale 2|4 [--official | --feat F
      --grow G --blocks K] --height H --width W --batch B --seed SEED
      golden: input [B,3,H,W] uniform in [0, 1], output [B,3,sH,sW] (not clamped)
--official is the published layout (parsenet.keys.tsv / realesrnet_x2.keys.tsv).
Deterministic: re-running writes the same tensors.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402
import parsenet_model  # noqa: E402
import rrdbnet_model  # noqa: E402

torch.set_num_threads(2)


def save(model, args, x, outputs, config):
    os.makedirs(args.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.out, args.name + ".pth"))
    tensors = {"input": x}
    tensors.update(outputs)
    st_io.save(os.path.join(args.out, args.name + ".golden.safetensors"), tensors,
               {"config": config, "seed": args.seed})
    stats = ", ".join("%s %s std %.3f" % (k, tuple(v.shape), float(v.std())) for k, v in outputs.items())
    print("%s: %s" % (args.name, stats))


def parsenet(args):
    if args.official:
        model = parsenet_model.ParseNet()
    else:
        model = parsenet_model.ParseNet(in_size=8 << args.downs, out_size=8 << args.downs, min_feat_size=8,
                                        base_ch=args.base_ch, res_depth=args.res_depth,
                                        ch_range=(min(args.base_ch, args.ch_max), args.ch_max))
    parsenet_model.randomize(model, args.seed).eval()
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((args.batch, 3, args.size, args.size), generator=g) * 2 - 1
    with torch.no_grad():
        mask, img = model(x)
    save(model, args, x, {"mask": mask, "image": img}, model.config)


def rrdbnet(args):
    if args.official:
        model = rrdbnet_model.RRDBNet(args.scale)
    else:
        model = rrdbnet_model.RRDBNet(args.scale, args.feat, args.blocks, args.grow)
    rrdbnet_model.randomize(model, args.seed).eval()
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((args.batch, 3, args.height, args.width), generator=g)
    with torch.no_grad():
        y = model(x)
    save(model, args, x, {"output": y}, rrdbnet_model.config_from_state_dict(model.state_dict()))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("parsenet", "rrdbnet"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--official", action="store_true")
        p.add_argument("--batch", type=int, default=1)
        p.add_argument("--seed", type=int, default=1)
    p = sub.choices["parsenet"]
    p.add_argument("--base-ch", type=int, default=8)
    p.add_argument("--ch-max", type=int, default=16)
    p.add_argument("--downs", type=int, default=2)
    p.add_argument("--res-depth", type=int, default=2)
    p.add_argument("--size", type=int, required=True)
    p = sub.choices["rrdbnet"]
    p.add_argument("--scale", type=int, choices=(2, 4), required=True)
    p.add_argument("--feat", type=int, default=16)
    p.add_argument("--grow", type=int, default=8)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    args = ap.parse_args()
    parsenet(args) if args.cmd == "parsenet" else rrdbnet(args)


if __name__ == "__main__":
    main()
