#!/usr/bin/python3
"""Pure-PyTorch reference of GPEN's ParseNet face parser, written from scratch from the
description of GPEN's face_parsing/parse_model.py, only to make test fixtures.

Architecture (the official ParseNet-latest.pth: in_size 512, min_feat_size 32, base_ch 64,
19 classes, BatchNorm, LeakyReLU 0.2, channels clipped to [32, 256]):

  ConvLayer(cin, cout, scale, norm, act):
      [nearest x2 if scale == up] -> ReflectionPad2d(1) -> Conv2d 3x3 (stride 2 if scale == down,
      no bias when there is a BatchNorm) -> [BatchNorm2d "norm.norm"] -> [LeakyReLU 0.2]
  ResidualBlock(cin, cout, scale):
      shortcut = ConvLayer(cin, cout, scale) (plain conv with bias), or the identity when
                 scale is none and cin == cout
      conv1    = ConvLayer(cin, cout, up if scale == up, bn, lrelu)
      conv2    = ConvLayer(cout, cout, down if scale == down, bn, none)
      out      = shortcut(x) + conv2(conv1(x))
  ParseNet:
      encoder = ConvLayer(3, base) + log2(in/min_feat) down blocks (channels doubling, clipped)
      body    = res_depth blocks at the bottleneck;  x = feat + body(feat)
      decoder = log2(out/min_feat) up blocks (channels halving, clipped)
      out_img_conv (-> 3) and out_mask_conv (-> parsing_ch), plain 3x3 convs with bias
  forward returns (mask_logits, image).  The input is RGB in [-1, 1].

usage (fixtures):
  parsenet_model.py check-layout [TSV]          the official layout, key for key, in order
  parsenet_model.py forward --weights W.pth --size N --seed S --out OUT.safetensors
      runs the model (config read from the weights) on a seeded uniform [-1, 1] input
  parsenet_model.py gpen-mask --out OUT.safetensors
      a synthetic 512x512 parsing map (ellipses of every class) and the paste-back mask GPEN
      makes from it (FaceParse.tenor2mask with its default mask_map, / 255., then
      FaceEnhancement.mask_postprocess: 26-px border zeroed, cv2.GaussianBlur((101, 101), 4)
      twice, in float64 as GPEN does, then float32). Needs OpenCV (cv2).
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

LEAKY_SLOPE = 0.2


class BatchNormHolder(nn.Module):
    """Only there so that the BatchNorm's keys read '<conv>.norm.norm.*' as in the checkpoint."""

    def __init__(self, ch):
        super().__init__()
        self.norm = nn.BatchNorm2d(ch)

    def forward(self, x):
        return self.norm(x)


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, scale="none", norm=False, act=False):
        super().__init__()
        self.scale, self.act = scale, act
        self.conv2d = nn.Conv2d(cin, cout, 3, 2 if scale == "down" else 1, bias=not norm)
        self.norm = BatchNormHolder(cout) if norm else None

    def forward(self, x):
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, LEAKY_SLOPE) if self.act else x


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, scale="none"):
        super().__init__()
        self.shortcut_func = None if (scale == "none" and cin == cout) else ConvLayer(cin, cout, scale)
        self.conv1 = ConvLayer(cin, cout, "up" if scale == "up" else "none", norm=True, act=True)
        self.conv2 = ConvLayer(cout, cout, "down" if scale == "down" else "none", norm=True, act=False)

    def forward(self, x):
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    def __init__(self, in_size=512, out_size=512, min_feat_size=32, base_ch=64, parsing_ch=19,
                 res_depth=10, ch_range=(32, 256)):
        super().__init__()
        lo, hi = ch_range
        clip = lambda c: max(lo, min(c, hi))  # noqa: E731
        min_feat_size = min(in_size, min_feat_size)
        down = int(math.log2(in_size // min_feat_size))
        up = int(math.log2(out_size // min_feat_size))
        self.config = dict(in_size=in_size, out_size=out_size, min_feat_size=min_feat_size, base_ch=base_ch,
                           parsing_ch=parsing_ch, res_depth=res_depth, ch_range=list(ch_range))
        enc = [ConvLayer(3, base_ch)]
        head = base_ch
        for _ in range(down):
            enc.append(ResidualBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[ResidualBlock(clip(head), clip(head)) for _ in range(res_depth)])
        dec = []
        for _ in range(up):
            dec.append(ResidualBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_img_conv = ConvLayer(clip(head), 3)
        self.out_mask_conv = ConvLayer(clip(head), parsing_ch)

    def forward(self, x):
        feat = self.encoder(x)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)


def config_from_state_dict(sd):
    """Every architectural number from the keys and shapes alone."""
    enc = sorted({int(k.split(".")[1]) for k in sd if k.startswith("encoder.")})
    body = {int(k.split(".")[1]) for k in sd if k.startswith("body.")}
    dec = {int(k.split(".")[1]) for k in sd if k.startswith("decoder.")}
    base = sd["encoder.0.conv2d.weight"].shape[0]
    widths = [sd["encoder.%d.conv1.conv2d.weight" % i].shape[0] for i in enc[1:]]
    widths += [sd["decoder.%d.conv1.conv2d.weight" % i].shape[0] for i in sorted(dec)]
    down, up = len(enc) - 1, len(dec)
    # in_size / out_size only fix the number of down / up blocks; the net runs at any size.
    return dict(in_size=32 << down, out_size=32 << up, min_feat_size=32, base_ch=base,
                parsing_ch=sd["out_mask_conv.conv2d.weight"].shape[0], res_depth=len(body),
                ch_range=[min(widths + [base]), max(widths + [base])])


def randomize(model, seed):
    """Seeded values that keep activations O(1): He-scaled convs, BN statistics around (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                p.fill_(1000)
            elif p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(1.0 / fan_in))
            elif name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:  # conv biases, BN bias and running_mean
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def parse_keys_tsv(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            k, shape, dtype = line.rstrip("\n").split("\t")
            rows.append((k, () if shape == "scalar" else tuple(int(d) for d in shape.split("x")), dtype))
    return rows


def check_layout(tsv):
    expected = parse_keys_tsv(tsv)
    got = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in ParseNet().state_dict().items()]
    if got != expected:
        for e in expected:
            if e not in got:
                print("  missing or different:", e)
        for g_ in got:
            if g_ not in expected:
                print("  unexpected:", g_)
        print("%s: MISMATCH" % tsv)
        return 1
    print("%s: OK (%d tensors, exact, same order)" % (os.path.basename(tsv), len(expected)))
    return 0


def forward_cmd(args):
    import st_io
    sd = torch.load(args.weights, map_location="cpu")
    model = ParseNet(**config_from_state_dict(sd)).eval()
    model.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand((1, 3, args.size, args.size), generator=g) * 2 - 1
    with torch.no_grad():
        mask, img = model(x)
    st_io.save(args.out, {"input": x, "mask": mask, "image": img})


GPEN_MASK_MAP = [0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0]


def synthetic_labels(size=512):
    """Overlapping ellipses, one per class, on background 0; some touch the border."""
    import numpy as np
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    labels = np.zeros((size, size), np.uint8)
    rng = np.random.RandomState(1234)
    for c in list(range(1, 19)) * 2:
        cx, cy = rng.uniform(-20, size + 20, 2)
        rx, ry = rng.uniform(20, 140, 2)
        labels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = c
    return labels


def gpen_mask_cmd(args):
    import cv2
    import numpy as np
    import st_io
    labels = synthetic_labels()
    mask = np.zeros(labels.shape)
    for idx, value in enumerate(GPEN_MASK_MAP):
        mask[labels == idx] = value
    mask = mask.astype(np.uint8) / 255.  # float64, as GPEN
    t = 26
    mask[:t, :] = 0
    mask[-t:, :] = 0
    mask[:, :t] = 0
    mask[:, -t:] = 0
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    st_io.save(args.out, {"labels": labels, "mask": mask.astype(np.float32)})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check-layout")
    c.add_argument("tsv", nargs="?", default=os.path.join(HERE, "..", "..", "..", "shared", "reference",
                                                          "parsenet.keys.tsv"))
    f = sub.add_parser("forward")
    f.add_argument("--weights", required=True)
    f.add_argument("--size", type=int, required=True)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--out", required=True)
    m = sub.add_parser("gpen-mask")
    m.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "check-layout":
        return check_layout(args.tsv)
    if args.cmd == "gpen-mask":
        gpen_mask_cmd(args)
        return 0
    forward_cmd(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
