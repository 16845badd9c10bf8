"""Pure-PyTorch reference of RetinaFace (Pytorch_Retinaface layout, as used by GPEN).

Written from the published model definitions (biubug6/Pytorch_Retinaface models/net.py and
models/retinaface.py, torchvision resnet50) and GPEN's retinaface_detection.py post-processing.
It exists ONLY to check the C++ engine; it is not used at run time.

Usage:
  # forward parity: weights (.pth or safetensors) -> outputs of a random input, as safetensors
  retinaface_model.py forward --weights W --height 64 --width 80 --seed 1 --out OUT.safetensors
  # the reference detection pipeline on an image (BGR, no resize unless --resize-long)
  retinaface_model.py detect --weights W --image IMG [--resize-long N]

forward writes: "input" [1,3,H,W] (BGR minus mean, what the net sees) and, per level l = 0,1,2,
"head<l>" [1,32,Hl,Wl] = concat(ClassHead_l, BboxHead_l, LandmarkHead_l) conv outputs in NCHW
(the C++ graph's fused-head layout), plus "body<l>" / "fpn<l>" / "ssh<l>" intermediates.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def conv_bn(inp, oup, stride=1, leaky=0):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


def conv_bn_no_relu(inp, oup, stride):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup))


def conv_bn1X1(inp, oup, stride, leaky=0):
    return nn.Sequential(nn.Conv2d(inp, oup, 1, stride, padding=0, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


def conv_dw(inp, oup, stride, leaky=0.1):
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True))


class SSH(nn.Module):
    def __init__(self, in_channel, out_channel):
        super().__init__()
        leaky = 0.1 if out_channel <= 64 else 0
        self.conv3X3 = conv_bn_no_relu(in_channel, out_channel // 2, stride=1)
        self.conv5X5_1 = conv_bn(in_channel, out_channel // 4, stride=1, leaky=leaky)
        self.conv5X5_2 = conv_bn_no_relu(out_channel // 4, out_channel // 4, stride=1)
        self.conv7X7_2 = conv_bn(out_channel // 4, out_channel // 4, stride=1, leaky=leaky)
        self.conv7x7_3 = conv_bn_no_relu(out_channel // 4, out_channel // 4, stride=1)

    def forward(self, x):
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


class FPN(nn.Module):
    def __init__(self, in_channels_list, out_channels):
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0
        self.output1 = conv_bn1X1(in_channels_list[0], out_channels, stride=1, leaky=leaky)
        self.output2 = conv_bn1X1(in_channels_list[1], out_channels, stride=1, leaky=leaky)
        self.output3 = conv_bn1X1(in_channels_list[2], out_channels, stride=1, leaky=leaky)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, inputs):
        output1 = self.output1(inputs[0])
        output2 = self.output2(inputs[1])
        output3 = self.output3(inputs[2])
        up3 = F.interpolate(output3, size=[output2.size(2), output2.size(3)], mode="nearest")
        output2 = self.merge2(output2 + up3)
        up2 = F.interpolate(output2, size=[output1.size(2), output1.size(3)], mode="nearest")
        output1 = self.merge1(output1 + up2)
        return [output1, output2, output3]


class MobileNetV1(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x):
        a = self.stage1(x)
        b = self.stage2(a)
        c = self.stage3(b)
        return [a, b, c]


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Body(nn.Module):
    """torchvision resnet50 up to layer4 (returns layers 2, 3, 4)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (blocks, planes, stride) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)]):
            layers = []
            for b in range(blocks):
                ds = None
                if b == 0:
                    ds = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
                layers.append(Bottleneck(inplanes, planes, stride if b == 0 else 1, ds))
                inplanes = planes * 4
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layers))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        a = self.layer2(x)
        b = self.layer3(a)
        c = self.layer4(b)
        return [a, b, c]


class Head(nn.Module):
    def __init__(self, inchannels, out):
        super().__init__()
        self.conv1x1 = nn.Conv2d(inchannels, out, kernel_size=(1, 1), stride=1, padding=0)

    def forward(self, x):
        return self.conv1x1(x)


class RetinaFace(nn.Module):
    def __init__(self, body):
        super().__init__()
        if body == "mobilenet0.25":
            self.body = MobileNetV1()
            in_list, oc = [64, 128, 256], 64
        else:
            self.body = ResNet50Body()
            in_list, oc = [512, 1024, 2048], 256
        self.fpn = FPN(in_list, oc)
        self.ssh1 = SSH(oc, oc)
        self.ssh2 = SSH(oc, oc)
        self.ssh3 = SSH(oc, oc)
        self.ClassHead = nn.ModuleList([Head(oc, 4) for _ in range(3)])
        self.BboxHead = nn.ModuleList([Head(oc, 8) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([Head(oc, 20) for _ in range(3)])

    def forward(self, x):
        body = self.body(x)
        fpn = self.fpn(body)
        ssh = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        heads = [torch.cat([self.ClassHead[i](f), self.BboxHead[i](f), self.LandmarkHead[i](f)], 1)
                 for i, f in enumerate(ssh)]
        return body, fpn, ssh, heads


def load_state(path):
    if path.endswith(".safetensors"):
        sd = {k: torch.from_numpy(v) for k, v in st_io.load(path)[0].items()}
    else:
        sd = torch.load(path, map_location="cpu")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    body = "mobilenet0.25" if any(k.startswith("body.stage1.") for k in sd) else "resnet50"
    net = RetinaFace(body)
    net.load_state_dict(sd, strict=True)
    return net.eval()


# --- the reference post-processing (Pytorch_Retinaface / GPEN) -------------------------------------

def prior_box(h, w, min_sizes=((16, 32), (64, 128), (256, 512)), steps=(8, 16, 32)):
    anchors = []
    for k, step in enumerate(steps):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        for i in range(fh):
            for j in range(fw):
                for ms in min_sizes[k]:
                    anchors += [(j + 0.5) * step / w, (i + 0.5) * step / h, ms / w, ms / h]
    return torch.Tensor(anchors).view(-1, 4)


def py_cpu_nms(dets, thresh):
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def detect(net, img_bgr, thr=0.9, nms=0.4, var=(0.1, 0.2)):
    img = np.float32(img_bgr)
    h, w = img.shape[:2]
    img -= (104, 117, 123)
    x = torch.from_numpy(img.transpose(2, 0, 1)).unsqueeze(0)
    with torch.no_grad():
        heads = net(x)[3]
    cls = torch.cat([t[:, 0:4].permute(0, 2, 3, 1).reshape(1, -1, 2) for t in heads], 1)
    loc = torch.cat([t[:, 4:12].permute(0, 2, 3, 1).reshape(1, -1, 4) for t in heads], 1)
    ldm = torch.cat([t[:, 12:32].permute(0, 2, 3, 1).reshape(1, -1, 10) for t in heads], 1)
    conf = F.softmax(cls, dim=-1)
    priors = prior_box(h, w)
    loc, ldm = loc[0], ldm[0]
    boxes = torch.cat((priors[:, :2] + loc[:, :2] * var[0] * priors[:, 2:],
                       priors[:, 2:] * torch.exp(loc[:, 2:] * var[1])), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    boxes = (boxes * torch.Tensor([w, h, w, h])).numpy()
    lm = torch.cat([priors[:, :2] + ldm[:, 2 * k:2 * k + 2] * var[0] * priors[:, 2:] for k in range(5)], 1)
    lm = (lm * torch.Tensor([w, h] * 5)).numpy()
    scores = conf[0, :, 1].numpy()
    inds = np.where(scores > thr)[0]
    boxes, lm, scores = boxes[inds], lm[inds], scores[inds]
    order = scores.argsort()[::-1][:5000]
    boxes, lm, scores = boxes[order], lm[order], scores[order]
    dets = np.hstack((boxes, scores[:, None])).astype(np.float32)
    keep = py_cpu_nms(dets, nms)
    return dets[keep][:750], lm[keep][:750]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["forward", "detect"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=80)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--image")
    ap.add_argument("--resize-long", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    net = load_state(a.weights)
    if a.mode == "forward":
        g = torch.Generator().manual_seed(a.seed)
        x = torch.rand(1, 3, a.height, a.width, generator=g) * 255 - torch.tensor([104., 117., 123.]).view(1, 3, 1, 1)
        with torch.no_grad():
            body, fpn, ssh, heads = net(x)
        out = {"input": x}
        for i in range(3):
            out["body%d" % i] = body[i]
            out["fpn%d" % i] = fpn[i]
            out["ssh%d" % i] = ssh[i]
            out["head%d" % i] = heads[i]
        st_io.save(a.out, out)
        print("wrote", a.out, {k: tuple(v.shape) for k, v in out.items() if k.startswith("head")})
    else:
        import cv2
        img = cv2.imread(a.image)
        if a.resize_long:
            s = a.resize_long / max(img.shape[:2])
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        dets, lm = detect(net, img)
        print(img.shape)
        for d, l in zip(dets, lm):
            print("  %.2f %.2f %.2f %.2f  %.4f | %s" % (d[0], d[1], d[2], d[3], d[4], " ".join("%.1f" % v for v in l[:6])))


if __name__ == "__main__":
    main()
