"""Placeholders for names that transformers imports from `tokenizers` at module level."""


def placeholder(module, name):
    def fail(*args, **kwargs):
        raise NotImplementedError(
            f"{module}.{name}: the `tokenizers` package here is an import-only stub "
            "(scripts/pyshim/README.md); use the slow tokenizers (use_fast=False)"
        )

    return type(name, (), {"__init__": fail, "__module__": module})
