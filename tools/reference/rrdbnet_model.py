#!/usr/bin/python3
"""Pure-PyTorch reference of the RRDBNet that Real-ESRGAN / Real-ESRNet use (and GPEN's use_sr
background upsampler), written from scratch from the ESRGAN description, only to make fixtures.

  x2: pixel-unshuffle by 2 first (so conv_first takes 4 * 3 = 12 channels); x4: the RGB as is
  feat = conv_first(x)
  body = num_block RRDBs; RRDB(x) = 0.2 * rdb3(rdb2(rdb1(x))) + x
  RDB(x): x1 = lrelu(conv1(x)), x2 = lrelu(conv2([x, x1])), x3 = lrelu(conv3([x, x1, x2])),
          x4 = lrelu(conv4([x, x1, x2, x3])), x5 = conv5([x, x1, x2, x3, x4]); 0.2 * x5 + x
  feat = feat + conv_body(body(feat))
  feat = lrelu(conv_up1(nearest_x2(feat))); feat = lrelu(conv_up2(nearest_x2(feat)))
  out  = conv_last(lrelu(conv_hr(feat)))
All convs 3x3, zero padding 1, with bias; lrelu slope 0.2. Input and output: RGB in [0, 1]
(the output is clamped by the caller, not here).

usage:
  rrdbnet_model.py check-layout [TSV]      GPEN's realesrnet_x2 layout (num_feat 32, 23 blocks)
  rrdbnet_model.py forward --weights W.pth --height H --width W --seed S --out OUT.safetensors
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

torch.set_num_threads(2)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
    def __init__(self, feat, grow):
        super().__init__()
        for i in range(1, 5):
            setattr(self, "conv%d" % i, nn.Conv2d(feat + (i - 1) * grow, grow, 3, 1, 1))
        self.conv5 = nn.Conv2d(feat + 4 * grow, feat, 3, 1, 1)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(lrelu(getattr(self, "conv%d" % i)(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, feat, grow):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(feat, grow)
        self.rdb2 = ResidualDenseBlock(feat, grow)
        self.rdb3 = ResidualDenseBlock(feat, grow)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale=2, num_feat=32, num_block=23, num_grow_ch=32):
        super().__init__()
        assert scale in (2, 4)
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 if scale == 2 else 1), num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x):
        if self.scale == 2:
            x = F.pixel_unshuffle(x, 2)  # channel c * 4 + dy * 2 + dx
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(lrelu(self.conv_hr(feat)))


def config_from_state_dict(sd):
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("body.")}
    return dict(scale=2 if sd["conv_first.weight"].shape[1] == 12 else 4, num_feat=sd["conv_first.weight"].shape[0],
                num_block=len(blocks), num_grow_ch=sd["body.0.rdb1.conv1.weight"].shape[0])


def randomize(model, seed):
    """He-scaled random convs; conv_last gets a 0.5 bias so that outputs spread around mid-grey."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(1.0 / fan_in))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        model.conv_last.bias.add_(0.5)
    return model


def check_layout(tsv):
    expected = []
    with open(tsv) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                k, shape = line.rstrip("\n").split("\t")[:2]
                expected.append((k, tuple(int(d) for d in shape.split("x"))))
    got = [(k, tuple(v.shape)) for k, v in RRDBNet(2, 32, 23, 32).state_dict().items()]
    if got != expected:
        print("%s: MISMATCH; missing %s; unexpected %s"
              % (tsv, [e for e in expected if e not in got][:5], [g_ for g_ in got if g_ not in expected][:5]))
        return 1
    print("%s: OK (%d tensors, exact, same order)" % (os.path.basename(tsv), len(expected)))
    return 0


def forward_cmd(args):
    import st_io
    sd = torch.load(args.weights, map_location="cpu")
    model = RRDBNet(**config_from_state_dict(sd)).eval()
    model.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand((1, 3, args.height, args.width), generator=g)
    with torch.no_grad():
        y = model(x)
    st_io.save(args.out, {"input": x, "output": y})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check-layout")
    c.add_argument("tsv", nargs="?", default=os.path.join(HERE, "..", "..", "..", "shared", "reference",
                                                          "realesrnet_x2.keys.tsv"))
    f = sub.add_parser("forward")
    f.add_argument("--weights", required=True)
    f.add_argument("--height", type=int, required=True)
    f.add_argument("--width", type=int, required=True)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "check-layout":
        return check_layout(args.tsv)
    forward_cmd(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
