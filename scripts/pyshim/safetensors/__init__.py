"""Pure-Python stand-in for the `safetensors` package (acdtcm reference scripts only).

The real package is a Rust extension from PyPI, which this project's machines cannot reach. The
file format is simple: an 8-byte little-endian header length, a JSON header mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows the
header) plus an optional "__metadata__" string map, then the raw little-endian tensor bytes.
Only what transformers 4.50 / PEFT 0.15 / accelerate 1.6 call is implemented: safe_open (keys,
metadata, get_tensor, get_slice), SafetensorError, and safetensors.torch's load_file, save_file,
load_model, storage_ptr and storage_size. Everything is read eagerly into memory; fine for the
tiny checkpoints these scripts use.
"""
import json
import struct

__version__ = "0.5.3+acdtcm.shim"


class SafetensorError(Exception):
    pass


def read_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    metadata = header.pop("__metadata__", None)
    return header, metadata, data


class _Slice:
    """What safe_open(...).get_slice returns: dtype/shape without a copy, indexing loads."""

    def __init__(self, handle, name):
        self._handle = handle
        self._name = name

    def get_dtype(self):
        return self._handle._header[self._name]["dtype"]

    def get_shape(self):
        return list(self._handle._header[self._name]["shape"])

    def __getitem__(self, index):
        return self._handle.get_tensor(self._name)[index]


class safe_open:
    def __init__(self, filename, framework="pt", device="cpu"):
        if framework not in ("pt", "torch", "pytorch"):
            raise SafetensorError(f"framework {framework!r}: this shim only does PyTorch")
        self._header, self._metadata, self._data = read_header(filename)
        self._device = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def keys(self):
        return sorted(self._header)

    def offset_keys(self):
        return sorted(self._header, key=lambda k: self._header[k]["data_offsets"][0])

    def metadata(self):
        return self._metadata

    def get_slice(self, name):
        if name not in self._header:
            raise SafetensorError(f"no tensor {name!r}")
        return _Slice(self, name)

    def get_tensor(self, name):
        from .torch import _decode

        if name not in self._header:
            raise SafetensorError(f"no tensor {name!r}")
        t = _decode(self._header[name], self._data)
        if self._device not in (None, "cpu") and not (isinstance(self._device, int) and self._device < 0):
            t = t.to(self._device)
        return t
