"""safetensors.torch for the pure-Python shim (see safetensors/__init__.py)."""
import json
import os
import struct

import torch

from . import SafetensorError, read_header

# safetensors dtype name -> (torch dtype, same-width integer dtype used to move the raw bytes;
# numpy has no bfloat16, so every tensor goes through an integer view of the same width).
_DTYPES = {
    "F64": (torch.float64, torch.int64),
    "F32": (torch.float32, torch.int32),
    "F16": (torch.float16, torch.int16),
    "BF16": (torch.bfloat16, torch.int16),
    "I64": (torch.int64, torch.int64),
    "I32": (torch.int32, torch.int32),
    "I16": (torch.int16, torch.int16),
    "I8": (torch.int8, torch.int8),
    "U8": (torch.uint8, torch.uint8),
    "BOOL": (torch.bool, torch.uint8),
}
_NAMES = {dt: name for name, (dt, _) in _DTYPES.items()}


def _decode(info, data):
    name = info["dtype"]
    if name not in _DTYPES:
        raise SafetensorError(f"dtype {name} is not supported by this shim")
    dtype, raw = _DTYPES[name]
    begin, end = info["data_offsets"]
    shape = list(info["shape"])
    buf = bytearray(data[begin:end])
    if len(buf) == 0:
        return torch.empty(shape, dtype=dtype)
    t = torch.frombuffer(buf, dtype=raw)
    if dtype != raw:
        t = t.view(dtype)
    return t.reshape(shape).clone()


def load_file(filename, device="cpu"):
    header, _, data = read_header(filename)
    out = {k: _decode(v, data) for k, v in header.items()}
    if device not in (None, "cpu"):
        out = {k: v.to(device) for k, v in out.items()}
    return out


def load(data):
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    return {k: _decode(v, data[8 + n :]) for k, v in header.items()}


def _encode(tensor):
    t = tensor.detach().to("cpu").contiguous()
    if t.dtype not in _NAMES:
        raise SafetensorError(f"dtype {t.dtype} is not supported by this shim")
    name = _NAMES[t.dtype]
    raw = _DTYPES[name][1]
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    elif t.dtype != raw:
        t = t.view(raw)
    return name, list(tensor.shape), t.numpy().tobytes()


def save(tensors, metadata=None):
    header = {}
    blobs = []
    offset = 0
    # Like the real library: larger-alignment dtypes first, then by name, so offsets stay aligned.
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    for k in order:
        name, shape, blob = _encode(tensors[k])
        header[k] = {"dtype": name, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def save_file(tensors, filename, metadata=None):
    data = save(tensors, metadata)
    with open(os.fspath(filename), "wb") as f:
        f.write(data)


def load_model(model, filename, strict=True, device="cpu"):
    state = load_file(filename, device=device)
    return model.load_state_dict(state, strict=strict)


def storage_ptr(tensor):
    try:
        return tensor.untyped_storage().data_ptr()
    except (AttributeError, NotImplementedError):
        try:
            return tensor.storage().data_ptr()
        except NotImplementedError:
            return 0


def storage_size(tensor):
    try:
        return tensor.untyped_storage().nbytes()
    except (AttributeError, NotImplementedError):
        try:
            return tensor.storage().size() * tensor.element_size()
        except NotImplementedError:
            return tensor.nelement() * tensor.element_size()
