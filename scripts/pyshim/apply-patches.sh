#!/usr/bin/env bash
# Applies the two import-level fixes that transformers 4.50.0 needs to run on Debian's torch 1.13
# without the `tokenizers` package (README.md, "Patches"). Idempotent; touches no numerics.
#   scripts/pyshim/apply-patches.sh "$PYREF_DIR"
set -euo pipefail
src="${1:?usage: apply-patches.sh PYREF_DIR}/transformers/src/transformers"
/usr/bin/python3 - "$src" <<'PY'
import sys

src = sys.argv[1]

# 1. modeling_utils.py imports torch.distributed.tensor (torch>=2.5) at module level and never
#    uses the name; every other use in 4.50 is behind is_torch_greater_or_equal("2.5").
p = f"{src}/modeling_utils.py"
s = open(p).read()
s = s.replace("import torch\nimport torch.distributed.tensor\n", "import torch\n", 1)
open(p, "w").write(s)

# 2. tokenization_utils_base.py's fallback AddedToken (used only when `tokenizers` is absent) is an
#    eq=True dataclass without fields: unhashable and lacking __setstate__, so every slow
#    tokenizer fails to load (huggingface/transformers#30696). Give it tokenizers.AddedToken's
#    semantics: hash and equality by content, __setstate__ updating attributes.
p = f"{src}/tokenization_utils_base.py"
s = open(p).read()
anchor = "        def __getstate__(self):\n            return self.__dict__\n"
extra = (
    "\n        def __setstate__(self, state):\n            self.__dict__.update(state)\n"
    "\n        def __hash__(self):\n            return hash(self.content)\n"
    "\n        def __eq__(self, other):\n"
    "            return isinstance(other, AddedToken) and self.content == other.content\n"
)
if "def __setstate__(self, state):\n            self.__dict__.update(state)" not in s:
    assert s.count(anchor) == 1, "tokenization_utils_base.py: fallback AddedToken not found"
    s = s.replace(anchor, anchor + extra)
    open(p, "w").write(s)
print("patched", src)
PY
