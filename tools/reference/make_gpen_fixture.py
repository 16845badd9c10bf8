#!/usr/bin/python3
"""Make GPEN test fixtures with the pure-PyTorch reference (gpen_model.py).

Outputs (NAME defaults to gpen_random_S):
  --out DIR              DIR/NAME.pth               torch.save(state_dict) (zip format)
                         DIR/NAME.golden.safetensors f32 tensors: input, enc.{i},
                             style_in, w, gen.conv1, gen.convs.{k} (only maps whose
                             side <= --max-intermediate-res), gen.skip.{j}, output
  --aligned-image PATH   end-to-end uint8 path (GPEN face_model's preprocessing):
    --png-out FILE         model output as an RGB PNG
    --resized-out FILE     the SxS uint8 model input (default FILE with
                           .png -> .resized_in.png)
    --aligned-golden FILE  optional safetensors: resized (U8 SxSx3), input
                           (F32 1x3xSxS), output (F32 1x3xSxS)
  --aligned-source SRC --aligned-source-size N
                         first derive PATH (=--aligned-image) from SRC: PIL
                         Image.resize((N, N), Image.BICUBIC) (PIL's default
                         antialiasing), saved as RGB PNG. The derived file is the
                         fixture input; how it was made does not matter to tests.

The end-to-end uint8 path, exactly (the C++ side must do the same):
  1. read the PNG as 8-bit RGB (PIL .convert("RGB")), HxWx3 uint8 `u`.
  2. if (H, W) != (S, S): bilinear resize to SxS, half-pixel centres, no
     antialiasing (= cv2.resize INTER_LINEAR geometry, = torch
     F.interpolate(mode="bilinear", align_corners=False, antialias=False)),
     computed in float64 on the uint8 values:
        scale_x = W / S  (as a double), sx = (dx + 0.5) * scale_x - 0.5,
        sx = max(sx, 0), x0 = floor(sx), x1 = min(x0 + 1, W - 1), lx = sx - x0,
        (same for y) and
        v = (1-ly) * ((1-lx)*u[y0,x0] + lx*u[y0,x1]) + ly * ((1-lx)*u[y1,x0] + lx*u[y1,x1])
     then r = uint8(clamp(floor(v + 0.5), 0, 255))  (round half UP; v >= 0).
     The script computes this with F.interpolate on float64 and asserts it is
     identical to an explicit numpy implementation of the formula above.
  3. x = float32(r) / 255.0f * 2.0f - 1.0f  (float32 arithmetic), NCHW, RGB.
  4. y = model(x) in float32.
  5. out = uint8(trunc(clip(y * 0.5f + 0.5f, 0, 1) * 255.0f))   (float32,
     astype(uint8) truncates), saved as an RGB PNG.

Init of the random model: every parameter gets random values that matter (see
randomize()); the blur/upsample kernel buffers keep their true values.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402
from gpen_model import FullGenerator, config_from_state_dict  # noqa: E402

torch.set_num_threads(2)

OFFICIAL = {256: (1, 0.5), 512: (2, 1.0), 1024: (2, 1.0), 2048: (2, 1.0)}


# ----------------------------------------------------------------------------
# random init


def randomize(model, seed):
    """Fill every parameter of `model` (FullGenerator) with seeded random values.

    Stored values (what goes into the .pth) per parameter kind:
      style.k.weight        randn / lr_mul            (effective N(0, 1/in))
      style.k.bias          0.2 * randn / lr_mul      (effective bias 0.2*randn)
      input.input           randn
      *.conv.weight (3x3)   randn
      *.modulation.weight   0.3 * randn               (style -> per-in-channel scale)
      *.modulation.bias     1 + 0.2 * randn           (so scales are around 1)
      *.noise.weight        uniform(0.1, 0.5)
      *.activate.bias       0.2 * randn
      to_rgb*.conv.weight   0.5 * randn  } then both multiplied by one factor so
      to_rgb*.bias          0.05 * randn } that the output rms is --target-rms
                                           (calibrate_rgb)
      ecd*.weight           randn;  ecd*.bias 0.2 * randn
      final_linear.0.weight randn;  final_linear.0.bias 0.2 * randn
      *.kernel (buffers)    unchanged (true [1,3,3,1] kernels)
    """
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g)

    lr_mul = model.generator.style[1].lr_mul
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if name.startswith("generator.style."):
                if name.endswith(".weight"):
                    v = randn(shape) / lr_mul
                else:
                    v = 0.2 * randn(shape) / lr_mul
            elif name == "generator.input.input":
                v = randn(shape)
            elif name.endswith("modulation.weight"):
                v = 0.3 * randn(shape)
            elif name.endswith("modulation.bias"):
                v = 1.0 + 0.2 * randn(shape)
            elif name.endswith("noise.weight"):
                v = 0.1 + 0.4 * torch.rand(shape, generator=g)
            elif name.endswith("activate.bias"):
                v = 0.2 * randn(shape)
            elif ".to_rgb" in name and name.endswith("conv.weight"):
                v = 0.5 * randn(shape)
            elif ".to_rgb" in name and name.endswith(".bias"):
                v = 0.05 * randn(shape)
            elif name.endswith(".weight"):
                v = randn(shape)
            elif name.endswith(".bias"):
                v = 0.2 * randn(shape)
            else:
                raise RuntimeError("unhandled parameter " + name)
            p.copy_(v)
    return model


def calibrate_rgb(model, trace, k):
    """Multiply every to_rgb conv weight and bias by k.  The main path does not
    depend on them and the image is linear in them, so the output scales by k.
    Recomputes the skip chain from the traced activations (same ops on the same
    inputs as a full forward, so bit-identical to one) and returns the output."""
    gen = model.generator
    with torch.no_grad():
        for m in [gen.to_rgb1] + list(gen.to_rgbs):
            m.conv.weight.mul_(k)
            m.bias.mul_(k)
        skip = gen.to_rgb1(trace["gen.conv1"], trace["w"])
        trace["gen.skip.0"] = skip
        for j, to_rgb in enumerate(gen.to_rgbs):
            skip = to_rgb(trace["gen.convs.%d" % (2 * j + 1)], trace["w"], skip)
            trace["gen.skip.%d" % (j + 1)] = skip
    return skip


def make_input(size, batch, seed):
    """Smooth random RGB image plus fine noise, in [-1, 1], float32."""
    g = torch.Generator().manual_seed(seed + 1000003)
    low = torch.randn(batch, 3, 6, 6, generator=g) * 0.6
    x = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    x = x + 0.08 * torch.randn(batch, 3, size, size, generator=g)
    return x.clamp(-1.0, 1.0).contiguous()


# ----------------------------------------------------------------------------
# uint8 end-to-end path


def resize_bilinear_u8_explicit(u, S):
    """Reference definition (numpy, float64) of the resize + rounding."""
    H, W, _ = u.shape

    def axis(n_in):
        scale = float(n_in) / S
        s = (np.arange(S, dtype=np.float64) + 0.5) * scale - 0.5
        s = np.maximum(s, 0.0)
        i0 = np.floor(s).astype(np.int64)
        i0 = np.minimum(i0, n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = s - i0
        return i0, i1, lam

    y0, y1, ly = axis(H)
    x0, x1, lx = axis(W)
    f = u.astype(np.float64)
    lx_ = lx[None, :, None]
    ly_ = ly[:, None, None]
    top = (1 - lx_) * f[y0][:, x0] + lx_ * f[y0][:, x1]
    bot = (1 - lx_) * f[y1][:, x0] + lx_ * f[y1][:, x1]
    v = (1 - ly_) * top + ly_ * bot
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8), v


def resize_bilinear_u8(u, S):
    H, W, _ = u.shape
    if (H, W) == (S, S):
        return u.copy()
    t = torch.from_numpy(u).permute(2, 0, 1)[None].to(torch.float64)
    v = F.interpolate(t, size=(S, S), mode="bilinear", align_corners=False,
                      antialias=False)[0].permute(1, 2, 0).numpy()
    r = np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)
    r2, v2 = resize_bilinear_u8_explicit(u, S)
    ndiff = int((r != r2).sum())
    if ndiff:
        raise RuntimeError("resize definition mismatch: %d values (max |v diff| %g)"
                           % (ndiff, np.abs(v - v2).max()))
    ties = int((np.abs(v - np.floor(v) - 0.5) < 1e-9).sum())
    print("resize %dx%d -> %dx%d: torch interpolate == explicit formula; "
          "max |v_torch - v_explicit| = %.3g; exact .5 ties (rounded up): %d of %d"
          % (W, H, S, S, np.abs(v - v2).max(), ties, v.size))
    return r


def run_aligned(model, args, S):
    if args.aligned_source:
        src = Image.open(args.aligned_source).convert("RGB")
        n = args.aligned_source_size
        src.resize((n, n), Image.BICUBIC).save(args.aligned_image)
        print("derived %s (%dx%d) from %s" % (args.aligned_image, n, n, args.aligned_source))
    u = np.array(Image.open(args.aligned_image).convert("RGB"), dtype=np.uint8)
    r = resize_bilinear_u8(u, S)
    x = torch.from_numpy(r.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
    x = x / np.float32(255.0) * np.float32(2.0) - np.float32(1.0)
    assert x.dtype == torch.float32
    t0 = time.time()
    with torch.no_grad():
        y = model(x)
    t1 = time.time()
    yn = y[0].permute(1, 2, 0).numpy().astype(np.float32)
    o = np.clip(yn * np.float32(0.5) + np.float32(0.5), np.float32(0), np.float32(1))
    o = (o * np.float32(255.0)).astype(np.uint8)
    Image.fromarray(o, "RGB").save(args.png_out)
    resized_out = args.resized_out or (args.png_out[:-4] if args.png_out.endswith(".png")
                                       else args.png_out) + ".resized_in.png"
    Image.fromarray(r, "RGB").save(resized_out)
    if args.aligned_golden:
        st_io.save(args.aligned_golden, {"resized": r, "input": x, "output": y},
                   metadata={"source": os.path.basename(args.aligned_image),
                             "size": S})
    yv = y.numpy()
    print("aligned: %s -> %s (resized input %s), forward %.2fs; out std %.3f, "
          "saturated |y|>=1: %.4f, uint8 0/255 fraction: %.4f"
          % (args.aligned_image, args.png_out, resized_out, t1 - t0, yv.std(),
             float((np.abs(yv) >= 1).mean()), float(((o == 0) | (o == 255)).mean())))


# ----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--channel-multiplier", type=int, default=None)
    ap.add_argument("--narrow", type=float, default=None)
    ap.add_argument("--style-dim", type=int, default=512,
                    help="512 for every official config; smaller only for tiny fixtures")
    ap.add_argument("--n-mlp", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", default=None, help="output directory for .pth + golden")
    ap.add_argument("--name", default=None, help="file prefix (default gpen_random_S)")
    ap.add_argument("--pth", default=None,
                    help="load this state dict (config from its shapes) instead of "
                         "random init; no .pth written, no calibration")
    ap.add_argument("--target-rms", type=float, default=0.4,
                    help="scale the to_rgb layers so the output rms on the fixture "
                         "input is this (0: no calibration)")
    ap.add_argument("--max-intermediate-res", type=int, default=32,
                    help="store gen.convs.{k} only for maps of side <= this")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 noise check")
    ap.add_argument("--aligned-image", default=None)
    ap.add_argument("--aligned-source", default=None)
    ap.add_argument("--aligned-source-size", type=int, default=48)
    ap.add_argument("--png-out", default=None)
    ap.add_argument("--resized-out", default=None)
    ap.add_argument("--aligned-golden", default=None)
    args = ap.parse_args()

    S = args.size
    cm, nw = OFFICIAL.get(S, (2, 1.0))
    sd = None
    if args.pth:   # configuration from the checkpoint's shapes
        sd = torch.load(args.pth, map_location="cpu")
        c = config_from_state_dict(sd)
        if c["size"] != S:
            ap.error("--size %d but %s is a size-%d model" % (S, args.pth, c["size"]))
        cm, nw, args.style_dim, args.n_mlp = (c["channel_multiplier"], c["narrow"],
                                              c["style_dim"], c["n_mlp"])
    if args.channel_multiplier is not None:
        cm = args.channel_multiplier
    if args.narrow is not None:
        nw = args.narrow
    name = args.name or "gpen_random_%d" % S
    cfg = dict(size=S, channel_multiplier=cm, narrow=nw, style_dim=args.style_dim,
               n_mlp=args.n_mlp)
    print("config:", cfg, "seed", args.seed, "batch", args.batch)

    t0 = time.time()
    model = FullGenerator(S, style_dim=args.style_dim, n_mlp=args.n_mlp,
                          channel_multiplier=cm, narrow=nw).eval()
    if sd is not None:
        model.load_state_dict(sd, strict=True)
        del sd
    else:
        randomize(model, args.seed)
    t1 = time.time()
    nparam = sum(p.numel() for p in model.parameters())
    print("model built + init: %.2fs (%d parameters)" % (t1 - t0, nparam))

    x = make_input(S, args.batch, args.seed)
    trace = {}
    t2 = time.time()
    with torch.no_grad():
        y = model(x, trace=trace)
    t3 = time.time()
    print("forward f32 (batch %d): %.2fs" % (args.batch, t3 - t2))
    if not args.pth and args.target_rms > 0:
        k = args.target_rms / float(y.pow(2).mean().sqrt())
        y = calibrate_rgb(model, trace, k)
        print("to_rgb gain calibrated: conv weights and biases x %.4f (output rms -> %.3f)"
              % (k, args.target_rms))
        if S <= 64:  # cheap self-check: a full forward gives bit-identical results
            with torch.no_grad():
                y2 = model(x)
            assert torch.equal(y, y2), "calibrated skip chain != full forward"
    yv = y.numpy()
    sat = float((np.abs(yv) >= 1).mean())
    print("output: mean %.4f std %.4f min %.3f max %.3f; saturated |y|>=1: %.4f"
          % (yv.mean(), yv.std(), yv.min(), yv.max(), sat))
    for key, t in trace.items():
        print("  %-12s %-20s mean %8.4f std %8.4f" % (key, tuple(t.shape),
                                                      t.mean().item(), t.std().item()))

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        if not args.pth:
            pth = os.path.join(args.out, name + ".pth")
            torch.save(model.state_dict(), pth)
            print("wrote %s (%d bytes)" % (pth, os.path.getsize(pth)))
        meta = dict(cfg)
        meta.update(seed=args.seed, batch=args.batch, torch=torch.__version__,
                    generator="tools/reference/make_gpen_fixture.py",
                    output_std="%.6f" % yv.std(), output_saturated_fraction="%.6f" % sat)
        if not args.no_f64:
            md = FullGenerator(S, style_dim=args.style_dim, n_mlp=args.n_mlp,
                               channel_multiplier=cm, narrow=nw).eval()
            md.load_state_dict(model.state_dict())
            md = md.double()
            t4 = time.time()
            trd = {}
            with torch.no_grad():
                yd = md(x.double(), trace=trd)
            t5 = time.time()
            d = (y.double() - yd).abs()
            print("f32 vs f64 reference: output max abs diff %.3g, mean abs %.3g "
                  "(f64 forward %.2fs)" % (d.max().item(), d.mean().item(), t5 - t4))
            meta["f32_vs_f64_max_abs"] = "%.3g" % d.max().item()
            meta["f32_vs_f64_mean_abs"] = "%.3g" % d.mean().item()
            for key in trace:
                dk = (trace[key].double() - trd[key]).abs().max().item()
                mk = trd[key].abs().max().item()
                print("  f64diff %-12s max abs %.3g (max |value| %.3g)" % (key, dk, mk))
                meta["f64diff." + key] = "%.3g" % dk
            del md, yd, trd
        tensors = {"input": x}
        for i in range(len(model.names)):
            tensors["enc.%d" % i] = trace["enc.%d" % i]
        tensors["style_in"] = trace["style_in"]
        tensors["w"] = trace["w"]
        tensors["gen.conv1"] = trace["gen.conv1"]
        for k in range(len(model.generator.convs)):
            t = trace["gen.convs.%d" % k]
            if t.shape[-1] <= args.max_intermediate_res:
                tensors["gen.convs.%d" % k] = t
        for j in range(len(model.generator.to_rgbs) + 1):
            tensors["gen.skip.%d" % j] = trace["gen.skip.%d" % j]
        tensors["output"] = y
        gp = os.path.join(args.out, name + ".golden.safetensors")
        st_io.save(gp, {k: v.to(torch.float32).contiguous() for k, v in tensors.items()},
                   metadata=meta)
        print("wrote %s (%d bytes, %d tensors)" % (gp, os.path.getsize(gp), len(tensors)))
        del tensors
    del trace

    if args.aligned_image:
        if not args.png_out:
            ap.error("--aligned-image needs --png-out")
        run_aligned(model, args, S)
    print("total %.2fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
