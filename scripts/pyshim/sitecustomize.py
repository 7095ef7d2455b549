"""Torch 2.x names that transformers 4.50 / PEFT 0.15 touch at import time, added to Debian's
torch 1.13 (acdtcm reference scripts only; see README.md). Nothing here computes: each entry
only fills a name that torch 1.13 lacks and is never used to override an existing one.
"""
import importlib.util
import sys


def _patch_torch():
    import types

    import torch

    if not hasattr(torch, "compiler"):
        compiler = types.ModuleType("torch.compiler")

        def disable(fn=None, recursive=True):
            # torch.compiler.disable: a decorator that keeps torch.compile out of fn; no compiler
            # here, so it returns fn unchanged.
            if fn is None:
                return lambda f: f
            return fn

        compiler.disable = disable
        compiler.is_compiling = lambda: False
        compiler.is_dynamo_compiling = lambda: False
        torch.compiler = compiler
        sys.modules["torch.compiler"] = compiler

    # Debian's torch 1.13 predates Python 3.11: importing torch.distributed.fsdp / ._shard fails
    # (a dataclass with a mutable default). These scripts run one process on CPU, so report
    # torch.distributed as unavailable and transformers/accelerate skip their FSDP checks.
    if torch.__version__.startswith("1.") and sys.version_info >= (3, 11):
        torch.distributed.is_available = lambda: False

    # Module.load_state_dict(assign=...) is torch>=2.1. transformers passes assign=True only when
    # the checkpoint tensors already have the parameters' dtype (check_support_param_buffer_
    # assignment); copying them into the existing parameters instead gives the same values.
    import inspect

    load = torch.nn.Module.load_state_dict
    if "assign" not in inspect.signature(load).parameters:

        def load_state_dict(self, state_dict, strict=True, assign=False):
            return load(self, state_dict, strict=strict)

        torch.nn.Module.load_state_dict = load_state_dict


if importlib.util.find_spec("torch") is not None:
    _patch_torch()

# This shadows Debian's /etc/python3.11/sitecustomize.py, which only installs the apport crash hook.
