#!/usr/bin/env python3
"""Times the project's PyTorch reference GPEN (tools/reference/gpen_model.py) on the GPU, eager,
fp32 and fp16, channels_last, on the weights of a safetensors checkpoint (e.g. the one
`gpen convert random:512 W.safetensors` writes, so that gpen and PyTorch run the same weights).

Each timed forward includes the host->device copy of the input batch and the device->host copy
of the output, as gpen's Executable::run does. Prints one JSON object per (precision, batch).

    peer_torch_gpu.py --weights W.safetensors [--batch-sizes 1,4,8,16] [--precisions fp32,fp16]
                      [--runs 20] [--warmup 5]
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import torch  # noqa: E402

import gpen_model  # noqa: E402
import st_io  # noqa: E402


def load_model(path):
    arrays, _ = st_io.load(path)
    sd = {k: torch.from_numpy(v).float() for k, v in arrays.items()}
    cfg = gpen_model.config_from_state_dict(sd)
    model = gpen_model.build_from_config(cfg)
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg["size"]


def channels_last(model):
    """Module.to(memory_format=...) refuses models with 5-D parameters (the modulated conv weights):
    convert the 4-D ones, which are what cuDNN's NHWC kernels read."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model


def time_config(model, size, batch, dtype, runs, warmup):
    x_host = (torch.rand(batch, 3, size, size) * 2 - 1).pin_memory()
    torch.cuda.reset_peak_memory_stats()

    def forward():
        x = x_host.to("cuda", non_blocking=True).to(dtype).contiguous(memory_format=torch.channels_last)
        out = model(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float().cpu()

    with torch.no_grad():
        for _ in range(warmup):
            forward()
        torch.cuda.synchronize()
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            forward()  # .cpu() synchronises
            ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "p90_ms": ms[min(len(ms) - 1, len(ms) * 9 // 10)],
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"engine": "torch-eager", "error": f"torch {torch.__version__} sees no CUDA device"}))
        return 2
    torch.backends.cudnn.benchmark = True  # PyTorch's best eager setting: per-shape algorithm search
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in gpen's fp32 mode
    torch.backends.cudnn.allow_tf32 = False
    model, size = load_model(args.weights)
    for precision in args.precisions.split(","):
        dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
        m = channels_last(copy.deepcopy(model).to("cuda").to(dtype))
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            r = time_config(m, size, batch, dtype, args.runs, args.warmup)
            r.update({"engine": "torch-eager", "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
                      "size": size, "precision": precision, "batch": batch,
                      "faces_per_s": batch / (r["median_ms"] / 1000)})
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
