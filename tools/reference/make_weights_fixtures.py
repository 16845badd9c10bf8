#!/usr/bin/python3
"""Writes the small weight-file fixtures for tests/test_weights*.cpp into tests/fixtures/weights/.

Run with Debian's python3 (it has torch 1.13):  /usr/bin/python3 tools/reference/make_weights_fixtures.py
Deterministic: seeded, torch's zips carry no timestamps and rewritten zips get a fixed one, so
re-running gives the same zip files; legacy files name storages by memory address, so their bytes
(not their contents) change from run to run.

Besides the checkpoints it writes expected.json: for each good fixture, the state dict *as torch
itself loads it* (after the same unwrapping our loader does: params_ema first, 'module.' stripped),
with dtype, shape, every value of small tensors (first 16 of larger ones) and the sum.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "weights")
# What the malicious fixtures try to create. The C++ test checks it never appears.
PWNED_PATH = "/tmp/gpen_pwned_5b1e0c9d"
FIXED_DATE = (2020, 1, 1, 0, 0, 0)


def path(name):
    return os.path.join(OUT, name)


def mixed_state_dict(scale):
    g = torch.Generator().manual_seed(1234)
    base = torch.arange(20, dtype=torch.float32) * scale
    sd = collections.OrderedDict()
    sd["module.conv.weight"] = torch.randn(4, 3, 3, 3, generator=g) * scale
    sd["module.conv.bias"] = torch.nn.Parameter(torch.randn(4, generator=g))  # _rebuild_parameter
    sd["module.half"] = (torch.randn(5, generator=g) * scale).half()
    sd["module.bf16"] = (torch.randn(2, 3, generator=g) * scale).bfloat16()
    sd["module.double"] = torch.randn(3, generator=g, dtype=torch.float64) * scale
    sd["module.long"] = torch.tensor([1, -2, 3, 1 << 40], dtype=torch.int64)
    sd["module.int"] = torch.tensor([7, -8, 9], dtype=torch.int32)
    sd["module.byte"] = torch.arange(6, dtype=torch.uint8) * 40
    sd["module.flags"] = torch.tensor([True, False, True, True])
    sd["module.bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)  # a 0-d scalar
    sd["module.base"] = base
    sd["module.slice"] = base[5:15]  # shares base's storage at offset 5
    sd["module.empty"] = torch.zeros(0, 3)
    return sd


def nested_checkpoint():
    # params_ema must win over params; the ints and strings around it must be ignored.
    return {"params": mixed_state_dict(-1.0), "params_ema": mixed_state_dict(1.0), "iter": 5, "note": "hello"}


def noncontiguous_state_dict():
    big = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    return {
        "transposed": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # strides (1, 4)
        "expanded": torch.tensor([1.0, 2.0, 3.0]).expand(2, 3),  # strides (0, 1)
        "permuted": big.permute(2, 0, 1)[1:],  # strides (1, 20, 5), storage offset 1
        "contiguous": torch.arange(6, dtype=torch.float64).reshape(2, 3),
    }


def rewrite_zip(src, dst, change, add=None):
    """Copies a zip, letting change(name, data) return new bytes (or None to keep them), and
    appending the entries in `add` (name -> bytes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            new = change(info.filename, data)
            zout.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_DATE), data if new is None else new)
        for name, data in (add or {}).items():
            zout.writestr(zipfile.ZipInfo(name, date_time=FIXED_DATE), data)


def torch_save_zip(obj, name):
    # torch's own zip layout (64-byte aligned entries); its output is byte-for-byte reproducible.
    # The archive folder inside is the file stem, e.g. zip_nested/data.pkl.
    torch.save(obj, path(name))


class Evil:
    """Unpickling this in Python runs os.system (pickled as posix.system) to create PWNED_PATH."""

    def __reduce__(self):
        return (os.system, ("touch " + PWNED_PATH,))


class ShortTensor:
    """Pickles as a tensor whose shape needs more elements than its storage has."""

    def __init__(self, storage):
        self.storage = storage

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, (100,), (1,), False, collections.OrderedDict()))


def write_malicious():
    # A bare pickle (starts with 0x80, so it is sniffed as a legacy .pth), protocols 2 and 4
    # (GLOBAL vs STACK_GLOBAL), and a torch zip whose data.pkl is the payload.
    for proto in (2, 4):
        with open(path(f"malicious_system_p{proto}.pth"), "wb") as f:
            f.write(pickle.dumps({"weight": Evil()}, protocol=proto))
    torch_save_zip({"w": torch.ones(2)}, "malicious_system_zip.pth")
    payload = pickle.dumps({"w": Evil()}, protocol=2)
    rewrite_zip(path("malicious_system_zip.pth"), path("tmp.pth"),
                lambda n, d: payload if n.endswith("/data.pkl") else None)
    os.replace(path("tmp.pth"), path("malicious_system_zip.pth"))


def write_broken_zips():
    torch_save_zip({"w": torch.arange(16, dtype=torch.float32)}, "zip_short_storage.pth")
    rewrite_zip(path("zip_short_storage.pth"), path("tmp.pth"),
                lambda n, d: d[:40] if n.endswith("/data/0") else None)
    os.replace(path("tmp.pth"), path("zip_short_storage.pth"))

    torch_save_zip({"w": ShortTensor(torch.arange(10, dtype=torch.float32).storage())}, "zip_shape_beyond_storage.pth")

    # one stored float broadcast (stride 0) to 2^40 elements: must be refused, not allocated
    bomb = ViewTensor(torch.ones(1).storage(), 0, (1 << 20, 1 << 20), (0, 0))
    torch_save_zip({"w": bomb}, "zip_broadcast_bomb.pth")

    # torch 1.13 writes no byteorder record (newer torch writes "little"); add one saying "big".
    torch_save_zip({"w": torch.ones(3)}, "zip_big_endian.pth")
    rewrite_zip(path("zip_big_endian.pth"), path("tmp.pth"),
                lambda n, d: b"big" if n.endswith("/byteorder") else None,
                add={"zip_big_endian/byteorder": b"big"})
    os.replace(path("tmp.pth"), path("zip_big_endian.pth"))


def write_renamed_archive():
    """Newer torch names the folder 'archive' and writes byteorder 'little'; mimic that layout."""
    torch_save_zip(noncontiguous_state_dict(), "zip_archive_little.pth")
    with zipfile.ZipFile(path("zip_archive_little.pth")) as zin, \
            zipfile.ZipFile(path("tmp.pth"), "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            name = "archive/" + info.filename.split("/", 1)[1]
            zout.writestr(zipfile.ZipInfo(name, date_time=FIXED_DATE), zin.read(info.filename))
        zout.writestr(zipfile.ZipInfo("archive/byteorder", date_time=FIXED_DATE), b"little")
    os.replace(path("tmp.pth"), path("zip_archive_little.pth"))


class FakeStorage:
    pass


class ViewTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def write_legacy_view():
    """Legacy file whose persistent id carries view_metadata (what torch < 1.0 wrote for views):
    root storage 'root' of 10 floats, view 'v' = root[2:7], tensor = v[1:5] as 2x2."""
    view_storage, root_storage = FakeStorage(), FakeStorage()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is view_storage:
                return ("storage", torch.FloatStorage, "root", "cpu", 10, ("v", 2, 5))
            if obj is root_storage:
                return ("storage", torch.FloatStorage, "root", "cpu", 10, None)
            return None

    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    obj = collections.OrderedDict(view=ViewTensor(view_storage, 1, (2, 2), (2, 1)),
                                  whole=ViewTensor(root_storage, 0, (10,), (1,)))
    P(buf, protocol=2).dump(obj)
    pickle.dump(["root"], buf, protocol=2)
    buf.write(struct.pack("<q", 10))
    buf.write((np.arange(10, dtype=np.float32) * 1.5).tobytes())
    with open(path("legacy_view.pth"), "wb") as f:
        f.write(buf.getvalue())


def write_safetensors(name, tensors, metadata):
    """By hand (no safetensors package here): sorted names, packed, header padded to 8 bytes."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                 torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}[t.dtype]
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[key] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def safetensors_tensors():
    g = torch.Generator().manual_seed(99)
    return {
        "a.u8": torch.tensor([1, 2, 3], dtype=torch.uint8),  # 3 bytes: the next tensor is misaligned
        "b.f32": torch.randn(2, 3, generator=g),
        "c.bf16": torch.randn(4, generator=g).bfloat16(),
        "d.f16": torch.randn(3, generator=g).half(),
        "e.i64": torch.tensor([-1, 2, 1 << 50]),
        "f.bool": torch.tensor([True, False]),
        "g.scalar": torch.tensor(2.5, dtype=torch.float64),
    }


def describe(sd):
    out = {}
    for key, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        flat = t.detach().reshape(-1).to(torch.float64)
        out[key] = {
            "dtype": {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
                      torch.int64: "i64", torch.int32: "i32", torch.uint8: "u8", torch.bool: "bool"}[t.dtype],
            "shape": list(t.shape),
            "values": flat[:16].tolist(),
            "sum": float(flat.sum()),
        }
    return out


def unwrap(obj):
    for k in ("params_ema", "params"):
        if isinstance(obj, dict) and k in obj and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[k]
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch_save_zip(nested_checkpoint(), "zip_nested.pth")
    torch.save(nested_checkpoint(), path("legacy_nested.pth"), _use_new_zipfile_serialization=False)
    torch_save_zip(noncontiguous_state_dict(), "zip_noncontiguous.pth")
    torch.save(noncontiguous_state_dict(), path("legacy_noncontiguous.pth"), _use_new_zipfile_serialization=False)
    write_legacy_view()
    write_malicious()
    write_broken_zips()
    write_renamed_archive()
    write_safetensors("small.safetensors", safetensors_tensors(), {"format": "pt", "origin": "make_weights_fixtures.py"})

    expected = {"pwned_path": PWNED_PATH}
    for name in ("zip_nested.pth", "legacy_nested.pth", "zip_noncontiguous.pth", "legacy_noncontiguous.pth",
                 "legacy_view.pth", "zip_archive_little.pth"):
        expected[name] = describe(unwrap(torch.load(path(name), map_location="cpu")))
    expected["small.safetensors"] = describe(safetensors_tensors())
    with open(path("expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(path(name)):7d}  {name}")


if __name__ == "__main__":
    if "torch" not in sys.modules:
        sys.exit("needs torch: run with /usr/bin/python3")
    main()
