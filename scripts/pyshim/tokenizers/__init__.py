"""Import-only stub for the Rust `tokenizers` package (acdtcm reference scripts only).

transformers 4.50 imports `tokenizers` unconditionally in a few modules (integrations/ggml.py,
integrations/mistral.py, tokenization_utils_fast.py, convert_slow_tokenizer.py) even when only
the pure-Python slow tokenizers are used. This stub lets those imports succeed; every class is a
placeholder that raises if instantiated. There is deliberately no dist-info for it, so
transformers' is_tokenizers_available() stays False and the slow Qwen2Tokenizer is used.
"""
from ._stub import placeholder

__version__ = "0.0.0+acdtcm.stub"


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder(__name__, name)
