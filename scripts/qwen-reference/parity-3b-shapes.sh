#!/usr/bin/env bash
# Parity with Hugging Face transformers at the widths of Qwen2.5-VL-3B, in float32, on a CPU
# machine: the 3B-shaped random checkpoint (acdtcm model init --preset 3b --bf16) cut to its
# first 4 text layers and 8 vision blocks (full-attention block 7 included; 815 M parameters,
# 3 GiB in float32) by truncate.py, Qwen's real tokenizer; transformers records vision
# features, last-position logits and 8 greedy tokens for parity.py's image prompt, and
# TestParityWithTransformersExternal compares acdtcm with them.
#
#   bash scripts/qwen-reference/parity-3b-shapes.sh [WORKDIR]     # ~10 GB free disk, ~8 GB RAM
#
# Python: PYTHON (default: scripts/pyref-env.sh python3, see scripts/pyshim/README.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-$ROOT/out/parity-3b-shapes}"
PY="${PYTHON:-$ROOT/scripts/pyref-env.sh python3}"
TOKENIZER="${QWEN_TOKENIZER:-$ROOT/../shared/reference/qwen-tokenizer/tokenizer.json}"
cd "$ROOT"
mkdir -p "$WORK"
if [ ! -f "$WORK/qwen-3b/.complete" ]; then
	go run -tags noxla ./cmd/acdtcm model init --preset 3b --bf16 --seed 1 --tokenizer "$TOKENIZER" --out "$WORK/qwen-3b"
	touch "$WORK/qwen-3b/.complete"
fi
python3 scripts/qwen-reference/truncate.py "$WORK/qwen-3b" "$WORK/cut" --text-layers 4 --vision-blocks 8
$PY scripts/qwen-reference/parity.py "$WORK/cut" "$WORK/parity.json"
ACDTCM_PARITY_MODEL="$WORK/cut" ACDTCM_PARITY_FIXTURE="$WORK/parity.json" \
	go test -tags noxla ./internal/qwen/ -run TestParityWithTransformersExternal -count=1 -v -timeout 30m
