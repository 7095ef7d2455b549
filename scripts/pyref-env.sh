#!/usr/bin/env bash
# Runs a command with the pure-Python Hugging Face reference stack on PYTHONPATH, on CPU, with
# Debian's python3-torch 1.13 (no PyPI needed). See scripts/pyshim/README.md for how to get the
# sources at the pinned commits into $PYREF_DIR and for what the shims replace.
#
#   PYREF_DIR=/path/to/pyref scripts/pyref-env.sh python3 scripts/qwen-reference/parity.py /tmp/qwen-tiny
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ref="${PYREF_DIR:-$HOME/.cache/acdtcm-pyref}"
for d in transformers/src peft/src hub/src accelerate/src; do
	if [ ! -d "$ref/$d" ]; then
		echo "pyref-env: $ref/$d is missing; see scripts/pyshim/README.md" >&2
		exit 2
	fi
done
export PYTHONPATH="$here/pyshim:$ref/transformers/src:$ref/peft/src:$ref/hub/src:$ref/accelerate/src${PYTHONPATH:+:$PYTHONPATH}"
# PYTHONHASHSEED: PEFT keeps target_modules in a set, so its saved order follows string hashing.
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
# Debian's torch, not whatever python3 a version manager puts first on PATH.
if [ "${1:-}" = python3 ] || [ "${1:-}" = python ]; then
	shift
	exec /usr/bin/python3 "$@"
fi
exec "$@"
