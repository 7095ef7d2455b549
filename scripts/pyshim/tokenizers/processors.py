"""Import-only stub (see tokenizers/__init__.py)."""
from ._stub import placeholder


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder(__name__, name)
