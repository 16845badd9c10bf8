"""Minimal safetensors writer/reader (no dependency on the `safetensors` package).

File layout: 8-byte little-endian unsigned header length N, then N bytes of
UTF-8 JSON {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {str: str}}, padded with spaces to a multiple of 8, then the
raw little-endian, C-contiguous tensor data (offsets relative to the end of
the header).  Tensors are written in the order given.
"""
import json
import struct

import numpy as np

_DT = {
    np.dtype("float32"): "F32", np.dtype("float64"): "F64",
    np.dtype("float16"): "F16", np.dtype("int64"): "I64",
    np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}
_DT_INV = {v: k for k, v in _DT.items()}


def _to_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(t)


def save(path, tensors, metadata=None):
    """tensors: dict-like name -> torch.Tensor or np.ndarray (insertion order kept)."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        a = _to_numpy(t)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes(order="C")
        header[name] = {"dtype": _DT[np.dtype(a.dtype.name)], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> np.ndarray, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        dt = _DT_INV[h["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(data[base + b: base + e], dtype=dt).reshape(h["shape"]).copy()
    return out, meta
