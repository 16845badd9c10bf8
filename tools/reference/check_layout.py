#!/usr/bin/python3
"""Check that gpen_model.FullGenerator reproduces the official GPEN state-dict
layout exactly (keys, shapes, dtypes, and order) for every
../shared/reference/gpen_bfr_*.keys.tsv, and that such a state dict loads
back with load_state_dict(strict=True).

usage: /usr/bin/python3 tools/reference/check_layout.py [TSV ...]
(default: all ../shared/reference/gpen_bfr_{256,512,1024,2048}.keys.tsv)
"""
import glob
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpen_model import build_from_config, parse_keys_tsv  # noqa: E402

torch.set_num_threads(2)


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def check(path):
    cfg, entries = parse_keys_tsv(path)
    model = build_from_config(cfg)
    sd = model.state_dict()
    got = [(k, tuple(v.shape), dtype_name(v)) for k, v in sd.items()]
    ok = True
    if got != entries:
        ok = False
        gk, ek = {g[0]: g for g in got}, {e[0]: e for e in entries}
        for k in ek:
            if k not in gk:
                print("  missing key:", ek[k])
            elif gk[k] != ek[k]:
                print("  mismatch:", gk[k], "expected", ek[k])
        for k in gk:
            if k not in ek:
                print("  unexpected key:", gk[k])
        if set(gk) == set(ek) and all(gk[k] == ek[k] for k in ek):
            print("  same set of keys/shapes/dtypes, different order")
    # strict reload from a state dict built only from the tsv
    fake = {k: torch.zeros(s, dtype=getattr(torch, d)) for k, s, d in entries}
    model.load_state_dict(fake, strict=True)
    nparam = sum(v.numel() for v in sd.values())
    print("%s: config %s: %d tensors, %d values (%.1f MB f32): %s"
          % (os.path.basename(path), cfg, len(entries), nparam, nparam * 4 / 1e6,
             "OK (exact, same order)" if ok else "MISMATCH"))
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    paths = sys.argv[1:] or sorted(
        glob.glob(os.path.join(root, "..", "shared", "reference", "gpen_bfr_*.keys.tsv")),
        key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    if not paths:
        print("no gpen_bfr_*.keys.tsv found")
        return 2
    allok = True
    for p in paths:
        allok &= check(p)
    print("ALL OK" if allok else "FAILED")
    return 0 if allok else 1


if __name__ == "__main__":
    sys.exit(main())
