"""Pure-PyTorch (CPU, no custom ops) reference of GPEN's FullGenerator.

Written from the architecture description of GPEN (Yang et al., CVPR 2021),
which builds on the StyleGAN2 generator (rosinality-style module layout).
It exists ONLY to produce test fixtures for the C++ engine; it is not used
at run time.  The state-dict layout (keys, shapes, dtypes, order) matches the
official GPEN checkpoints exactly; see check_layout.py.

Conventions used throughout (the C++ side must match them):
  * make_kernel([1,3,3,1]) = outer(k, k) / sum(outer(k, k))  (sums to 1).
  * upfirdn2d(x, k, up, down, pad0, pad1): per channel, insert (up-1) zeros
    after every sample, pad pad0 before / pad1 after (negative = crop) on
    both spatial axes, TRUE convolution with k (kernel flipped), then keep
    every down-th sample.
  * "Blur" in an upsampling ModulatedConv2d and ToRGB's "Upsample" register
    the kernel multiplied by up^2 = 4 (the stored buffer sums to 4);
    the encoder's downsampling Blur stores the kernel as is (sums to 1).
    The forward pass uses the stored buffer values.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------
# primitive ops


def make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def dims(t):
    """t.shape as plain ints (so that an ONNX trace sees constants; the export
    has a fixed batch and image size)."""
    return [int(d) for d in t.shape]


def zero_insert(x, up, trim):
    """(N,C,H,W) -> (N,C,H*up,W*up) with x at [::up, ::up] and zeros elsewhere
    (pad + reshape only, ONNX friendly); trim=True drops the trailing up-1
    zero rows/columns -> ((H-1)*up+1, (W-1)*up+1)."""
    n, c, h, w = dims(x)
    y = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
    y = y.reshape(n, c, h * up, w * up)
    if trim:
        y = y[:, :, : (h - 1) * up + 1, : (w - 1) * up + 1]
    return y


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """x: (N, C, H, W); kernel: (kh, kw); same up/down/pad on both axes."""
    pad0, pad1 = pad
    n, c, h, w = dims(x)
    kh, kw = dims(kernel)
    y = zero_insert(x, up, trim=False) if up > 1 else x
    # positive pads
    y = F.pad(y, [max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)])
    # negative pads crop
    if pad0 < 0 or pad1 < 0:
        hh, ww = y.shape[2], y.shape[3]
        y = y[:, :,
              max(-pad0, 0): hh - max(-pad1, 0),
              max(-pad0, 0): ww - max(-pad1, 0)]
    # true convolution, per channel (depthwise); conv2d correlates, so flip
    if torch.jit.is_tracing():   # ONNX export: a constant of known shape
        wk = torch.tensor([torch.flip(kernel, [0, 1]).tolist()] * c, dtype=y.dtype)
        wk = wk.reshape(c, 1, kh, kw)
    else:
        wk = torch.flip(kernel, [0, 1]).to(y.dtype).reshape(1, 1, kh, kw)
        wk = wk.expand(c, 1, kh, kw).contiguous()
    y = F.conv2d(y, wk, groups=c)
    if down > 1:
        y = y[:, :, ::down, ::down]
    return y


def fused_leaky_relu(x, bias, negative_slope=0.2, scale=math.sqrt(2)):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.reshape(shape), negative_slope) * scale


# ----------------------------------------------------------------------------
# layers


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * (upsample_factor ** 2)
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel, factor=2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * (factor ** 2))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, bias=self.bias,
                        stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, cin, cout, bias=True, bias_init=0.0, lr_mul=1.0,
                 activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = (1.0 / math.sqrt(cin)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x):
        if self.activation:
            y = F.linear(x, self.weight * self.scale)
            return fused_leaky_relu(y, self.bias * self.lr_mul)
        b = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias=b)


class ModulatedConv2d(nn.Module):
    upsample_impl = "zeros"  # or "transpose"; see forward()

    def __init__(self, cin, cout, k, style_dim, demodulate=True,
                 upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.eps = 1e-8
        self.k = k
        self.cin = cin
        self.cout = cout
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (k - 1)
            pad0 = (p + 1) // 2 + factor - 1
            pad1 = p // 2 + 1
            self.blur = Blur(list(blur_kernel), pad=(pad0, pad1),
                             upsample_factor=factor)
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.padding = k // 2
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1)
        self.demodulate = demodulate

    def forward(self, x, style):
        n, cin, h, w = dims(x)
        s = self.modulation(style).reshape(n, 1, cin, 1, 1)
        wt = self.scale * self.weight * s                    # (n, out, in, k, k)
        if self.demodulate:
            d = torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + self.eps)
            wt = wt * d.reshape(n, self.cout, 1, 1, 1)
        if self.upsample:
            # conv_transpose2d(x, W' with in/out swapped, stride=2, padding=0),
            # output (2H+k-2)x(2W+k-2), then the blur (pad 1,1, kernel*4) ->
            # 2H x 2W.  Two equivalent implementations (selftest.py checks
            # both): "zeros" (default; faster with PyTorch on CPU): zero-insert
            # x to (2H-1)x(2W-1), pad k-1, correlate with the spatially flipped
            # W'; "transpose": F.conv_transpose2d (used for the ONNX export).
            if ModulatedConv2d.upsample_impl == "transpose":
                wt = wt.transpose(1, 2).reshape(n * cin, self.cout, self.k, self.k)
                y = F.conv_transpose2d(x.reshape(1, n * cin, h, w), wt,
                                       padding=0, stride=2, groups=n)
            else:
                z = zero_insert(x, 2, trim=True)
                wt = torch.flip(wt, [3, 4]).reshape(n * self.cout, cin, self.k, self.k)
                y = F.conv2d(z.reshape(1, n * cin, 2 * h - 1, 2 * w - 1), wt,
                             padding=self.k - 1, groups=n)
            y = y.reshape(n, self.cout, *dims(y)[2:])
            return self.blur(y)
        wt = wt.reshape(n * self.cout, cin, self.k, self.k)
        y = F.conv2d(x.reshape(1, n * cin, h, w), wt, padding=self.padding,
                     groups=n)
        return y.reshape(n, self.cout, *dims(y)[2:])


class NoiseInjection(nn.Module):
    """GPEN's concatenating variant: cat([image, weight * noise], dim=1)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image, noise):
        return torch.cat([image, self.weight * noise], dim=1)


class ConstantInput(nn.Module):
    def __init__(self, channels, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, cin, cout, k, style_dim, upsample=False,
                 blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, k, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout * 2)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, cin, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(list(blur_kernel))
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        y = self.conv(x, style) + self.bias
        if skip is not None:
            y = y + self.upsample(skip)
        return y


class ConvLayer(nn.Sequential):
    """EqualConv2d (no bias) + FusedLeakyReLU, optional blur + stride-2."""

    def __init__(self, cin, cout, k, downsample=False, blur_kernel=(1, 3, 3, 1)):
        layers = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (k - 1)
            layers.append(Blur(list(blur_kernel), pad=((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(cin, cout, k, stride=2, padding=0,
                                      bias=False))
        else:
            layers.append(EqualConv2d(cin, cout, k, stride=1, padding=k // 2,
                                      bias=False))
        layers.append(FusedLeakyReLU(cout))
        super().__init__(*layers)


def gpen_channels(channel_multiplier=2, narrow=1.0):
    n, cm = narrow, channel_multiplier
    return {
        4: int(512 * n), 8: int(512 * n), 16: int(512 * n), 32: int(512 * n),
        64: int(256 * cm * n), 128: int(128 * cm * n), 256: int(64 * cm * n),
        512: int(32 * cm * n), 1024: int(16 * cm * n), 2048: int(8 * cm * n),
    }


class Generator(nn.Module):
    def __init__(self, size, style_dim=512, n_mlp=8, channel_multiplier=2,
                 narrow=1.0, lr_mlp=0.01, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.size = size
        self.style_dim = style_dim
        layers = [PixelNorm()]
        for _ in range(n_mlp):
            layers.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                      activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        ch = gpen_channels(channel_multiplier, narrow)
        self.channels = ch
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4] * 2, style_dim, upsample=False)

        self.log_size = int(math.log2(size))
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2 ** i]
            self.convs.append(StyledConv(cin * 2, cout, 3, style_dim,
                                         upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(cout * 2, cout, 3, style_dim,
                                         blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(cout * 2, style_dim))
            cin = cout

    def forward(self, s, noise, trace=None):
        """s: (N, style_dim) style vector (before the mapping MLP);
        noise: list of 2*log2(size)-3 encoder feature maps (noise[0] is 4x4)."""
        w = self.style(s)
        if trace is not None:
            trace["w"] = w
        out = self.input(dims(s)[0])
        out = self.conv1(out, w, noise[0])
        if trace is not None:
            trace["gen.conv1"] = out
        skip = self.to_rgb1(out, w)
        if trace is not None:
            trace["gen.skip.0"] = skip
        for j, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.convs[2 * j], self.convs[2 * j + 1]
            out = conv_up(out, w, noise[2 * j + 1])
            if trace is not None:
                trace["gen.convs.%d" % (2 * j)] = out
            out = conv(out, w, noise[2 * j + 2])
            if trace is not None:
                trace["gen.convs.%d" % (2 * j + 1)] = out
            skip = to_rgb(out, w, skip)
            if trace is not None:
                trace["gen.skip.%d" % (j + 1)] = skip
        return skip


class FullGenerator(nn.Module):
    def __init__(self, size, style_dim=512, n_mlp=8, channel_multiplier=2,
                 narrow=1.0, lr_mlp=0.01, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        ch = gpen_channels(channel_multiplier, narrow)
        self.size = size
        self.log_size = int(math.log2(size))
        assert 2 ** self.log_size == size and size >= 8
        self.generator = Generator(size, style_dim, n_mlp, channel_multiplier,
                                   narrow, lr_mlp, blur_kernel)
        self.names = ["ecd%d" % i for i in range(self.log_size - 1)]
        setattr(self, "ecd0", nn.Sequential(ConvLayer(3, ch[size], 1)))
        cin = ch[size]
        for idx, i in enumerate(range(self.log_size, 2, -1)):
            cout = ch[2 ** (i - 1)]
            setattr(self, "ecd%d" % (idx + 1),
                    nn.Sequential(ConvLayer(cin, cout, 3, downsample=True,
                                            blur_kernel=blur_kernel)))
            cin = cout
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, style_dim, activation="fused_lrelu"))

    def forward(self, x, trace=None):
        feats = []
        for i, name in enumerate(self.names):
            x = getattr(self, name)(x)
            feats.append(x)
            if trace is not None:
                trace["enc.%d" % i] = x
        s = self.final_linear(x.reshape(dims(x)[0], -1))
        if trace is not None:
            trace["style_in"] = s
        noise = [f for f in feats for _ in range(2)][::-1][1:]
        return self.generator(s, noise, trace=trace)


# ----------------------------------------------------------------------------
# configurations


def parse_keys_tsv(path):
    """Returns (config dict, [(key, shape tuple, dtype str), ...])."""
    import re
    cfg = None
    entries = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("#"):
                if cfg is None and "size=" in line:
                    cfg = {}
                    for k, v in re.findall(r"(\w+)=([0-9.]+)", line):
                        cfg[k] = float(v) if "." in v else int(v)
                continue
            key, shape, dtype = line.split("\t")
            shp = tuple(int(d) for d in shape.split("x")) if shape else ()
            entries.append((key, shp, dtype))
    return cfg, entries


def config_from_state_dict(sd):
    """Infer the FullGenerator configuration from a state dict's shapes."""
    import re
    n_ecd = len({k.split(".")[0] for k in sd if re.match(r"ecd\d+\.", k)})
    size = 2 ** (n_ecd + 1)
    n_mlp = len([k for k in sd if re.match(r"generator\.style\.\d+\.weight$", k)])
    style_dim = sd["generator.style.1.weight"].shape[0]
    narrow = sd["generator.input.input"].shape[1] / 512.0
    cm = 1
    if size >= 64:   # to_rgbs.3 sits at 64x64: in = 2 * channels[64] = 2*256*cm*narrow
        cm = int(round(sd["generator.to_rgbs.3.conv.weight"].shape[2] / 2 / (256 * narrow)))
    return dict(size=size, channel_multiplier=cm, narrow=narrow, style_dim=style_dim,
                n_mlp=n_mlp)


def build_from_config(cfg):
    return FullGenerator(cfg["size"], style_dim=cfg.get("style_dim", 512),
                         n_mlp=cfg.get("n_mlp", 8),
                         channel_multiplier=cfg.get("channel_multiplier", 2),
                         narrow=cfg.get("narrow", 1.0))
