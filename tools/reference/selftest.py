#!/usr/bin/python3
"""Self-test of the reference's primitives against naive loop implementations
written directly from their definitions (float64).  Catches mistakes in
gpen_model.py that a layout check cannot see.

usage: /usr/bin/python3 tools/reference/selftest.py
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpen_model as G  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
rng = np.random.default_rng(0)


def naive_upfirdn(x, k, up, down, pad0, pad1):
    """x: (C,H,W) numpy; definition: zero-insert, pad/crop, true conv, decimate."""
    C, H, W = x.shape
    u = np.zeros((C, H * up, W * up))
    u[:, ::up, ::up] = x
    Hp, Wp = H * up + pad0 + pad1, W * up + pad0 + pad1
    p = np.zeros((C, Hp, Wp))
    for i in range(Hp):
        for j in range(Wp):
            si, sj = i - pad0, j - pad0
            if 0 <= si < H * up and 0 <= sj < W * up:
                p[:, i, j] = u[:, si, sj]
    kh, kw = k.shape
    Ho, Wo = Hp - kh + 1, Wp - kw + 1
    o = np.zeros((C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            acc = np.zeros(C)
            for a in range(kh):
                for b in range(kw):
                    # true convolution: output(i,j) = sum p(i+a, j+b) * k(kh-1-a, kw-1-b)
                    acc += p[:, i + a, j + b] * k[kh - 1 - a, kw - 1 - b]
            o[:, i, j] = acc
    return o[:, ::down, ::down]


def check(name, a, b, tol=1e-9):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    d = float(np.abs(a - b).max()) if a.size else 0.0
    print("%-40s max abs diff %.2e %s" % (name, d, "ok" if d <= tol else "FAIL"))
    if d > tol:
        sys.exit(1)


def main():
    # asymmetric kernel to make the flip observable
    k = torch.tensor([[1., 2., 0., 3.], [0., 1., 5., 1.], [2., 0., 1., 4.], [1., 1., 0., 2.]],
                     dtype=torch.float64)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    for (up, down, p0, p1) in [(1, 1, 2, 1), (2, 1, 2, 1), (1, 2, 2, 2), (2, 1, 1, 1),
                               (1, 1, -1, 2), (2, 2, 0, -1)]:
        got = G.upfirdn2d(x, k, up, down, (p0, p1)).numpy()
        exp = np.stack([naive_upfirdn(x[n].numpy(), k.numpy(), up, down, p0, p1)
                        for n in range(2)])
        check("upfirdn2d up=%d down=%d pad=(%d,%d)" % (up, down, p0, p1), got, exp)

    kern = G.make_kernel([1, 3, 3, 1]).numpy()
    check("make_kernel sum==1, outer product", kern,
          np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0, 1e-7)

    # modulated conv, plain and upsampling, vs explicit per-sample formula
    style_dim = 5
    for up, kk, demod, impl in [(False, 3, True, "zeros"), (True, 3, True, "zeros"),
                                (True, 3, True, "transpose"), (False, 1, False, "zeros")]:
        G.ModulatedConv2d.upsample_impl = impl
        m = G.ModulatedConv2d(4, 6, kk, style_dim, demodulate=demod, upsample=up).double()
        with torch.no_grad():
            m.modulation.bias.normal_(1.0, 0.3)
        xin = torch.randn(2, 4, 5, 5, dtype=torch.float64)
        st = torch.randn(2, style_dim, dtype=torch.float64)
        with torch.no_grad():
            got = m(xin, st).numpy()
        W = m.weight.detach().numpy()[0]                       # (out, in, k, k)
        mw = m.modulation.weight.detach().numpy()
        mb = m.modulation.bias.detach().numpy()
        exp = []
        for n in range(2):
            s = st[n].numpy() @ (mw / math.sqrt(style_dim)).T + mb  # lr_mul 1
            Wn = W * s[None, :, None, None] / math.sqrt(4 * kk * kk)
            if demod:
                Wn = Wn / np.sqrt((Wn ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
            xi = xin[n].numpy()
            if not up:
                pd = kk // 2
                xp = np.pad(xi, ((0, 0), (pd, pd), (pd, pd)))
                o = np.zeros((6, 5, 5))
                for i in range(5):
                    for j in range(5):
                        o[:, i, j] = np.einsum("oiab,iab->o", Wn, xp[:, i:i + kk, j:j + kk])
            else:
                # transposed conv stride 2, padding 0: scatter
                o = np.zeros((6, 2 * 5 + kk - 2, 2 * 5 + kk - 2))
                for i in range(5):
                    for j in range(5):
                        o[:, 2 * i:2 * i + kk, 2 * j:2 * j + kk] += np.einsum(
                            "oiab,i->oab", Wn, xi[:, i, j])
                o = naive_upfirdn(o, kern * 4, 1, 1, 1, 1)
            exp.append(o)
        check("ModulatedConv2d up=%s k=%d demod=%s %s" % (up, kk, demod, impl), got,
              np.stack(exp))
    G.ModulatedConv2d.upsample_impl = "zeros"

    # ToRGB Upsample (pad 2,1, kernel*4) and encoder Blur (pad 2,2)
    u = G.Upsample([1, 3, 3, 1]).double()
    xs = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    check("Upsample (ToRGB skip)", u(xs).numpy()[0],
          naive_upfirdn(xs[0].numpy(), kern * 4, 2, 1, 2, 1))
    cl = G.ConvLayer(3, 5, 3, downsample=True).double()
    with torch.no_grad():
        cl[2].bias.normal_()
        got = cl(torch.cat([xs, xs], 1)[:, :3]).numpy()[0]
    b = naive_upfirdn(xs[0].numpy(), kern, 1, 1, 2, 2)          # (3, 5, 5)
    Wc = cl[1].weight.detach().numpy() / math.sqrt(3 * 9)
    o = np.zeros((5, 2, 2))                                      # 4x4 -> 2x2
    for i in range(2):
        for j in range(2):
            o[:, i, j] = np.einsum("oiab,iab->o", Wc, b[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3])
    o = o + cl[2].bias.detach().numpy()[:, None, None]
    o = np.where(o >= 0, o, 0.2 * o) * math.sqrt(2)
    check("ConvLayer downsample", got, o)

    # EqualLinear with lr_mul and fused lrelu; PixelNorm
    el = G.EqualLinear(7, 4, lr_mul=0.01, activation="fused_lrelu").double()
    with torch.no_grad():
        el.bias.normal_(0, 10)
    v = torch.randn(3, 7, dtype=torch.float64)
    got = el(v).detach().numpy()
    z = v.numpy() @ (el.weight.detach().numpy() * 0.01 / math.sqrt(7)).T \
        + el.bias.detach().numpy() * 0.01
    check("EqualLinear lr_mul fused_lrelu", got, np.where(z >= 0, z, 0.2 * z) * math.sqrt(2))
    pn = G.PixelNorm()(v).numpy()
    check("PixelNorm", pn, v.numpy() / np.sqrt((v.numpy() ** 2).mean(1, keepdims=True) + 1e-8))

    # full model: noise ordering and shapes
    fg = G.FullGenerator(32, style_dim=16, channel_multiplier=1, narrow=0.03125)
    tr = {}
    with torch.no_grad():
        y = fg(torch.randn(1, 3, 32, 32), trace=tr)
    assert y.shape == (1, 3, 32, 32)
    print("FullGenerator(32) forward shape ok:", tuple(y.shape))
    cfg = G.config_from_state_dict(fg.state_dict())
    assert cfg == dict(size=32, channel_multiplier=1, narrow=0.03125, style_dim=16, n_mlp=8), cfg
    for tsv in ["256", "512"]:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                            "shared", "reference", "gpen_bfr_%s.keys.tsv" % tsv)
        if os.path.exists(path):
            want, entries = G.parse_keys_tsv(path)
            sd = {k: torch.empty(s) for k, s, _ in entries}
            got = G.config_from_state_dict(sd)
            assert got == want, (got, want)
            print("config_from_state_dict(%s) ok: %s" % (os.path.basename(path), got))
    print("ALL OK")


if __name__ == "__main__":
    main()
