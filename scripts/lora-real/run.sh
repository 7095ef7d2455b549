#!/usr/bin/env bash
# Reproduces BENCHMARKS.md "LoRA fine-tuning on real photos (tiny preset)": LoRA on a tiny
# random Qwen2.5-VL checkpoint, trained on 300 real ACNE04 train photos (the first version of
# 300 source photos evenly spaced through the manifest) and validated on 80 evenly spaced valid
# photos. Needs ../shared/datasets/acne04-detection and bin/acdtcm (make build).
#   bash scripts/lora-real/run.sh [WORKDIR]      (default runs/lora-real; ~15-25 min on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN="${ACDTCM:-bin/acdtcm}"
W="${1:-runs/lora-real}"
DATA="${ACNE04:-../shared/datasets/acne04-detection}"
[ -d "$DATA" ] || { echo "no ACNE04 export at $DATA" >&2; exit 2; }
mkdir -p "$W"
"$BIN" dataset import --format acne04-voc "$DATA" --out "$W/acne04" >/dev/null
# The subset keeps the manifest's relative image paths, so it lives beside it.
# Evenly spaced through the manifest (which is ordered by grade), so every grade is in both.
awk -v NTRAIN=300 -v NVALID=80 '
	function fields() {
		split_ = ""; src = ""
		if (match($0, /"split":"[a-z]+"/)) split_ = substr($0, RSTART + 9, RLENGTH - 10)
		if (match($0, /"source_id":"[^"]*"/)) src = substr($0, RSTART + 13, RLENGTH - 14)
	}
	FNR == NR { fields(); if (split_ == "train" && !(src in c)) { c[src] = 1; tn++ } else if (split_ == "valid") vn++; next }
	{ fields() }
	split_ == "train" && !(src in seen) { seen[src] = 1; if (int((ti + 1) * NTRAIN / tn) > int(ti * NTRAIN / tn)) print; ti++; next }
	split_ == "valid" { if (int((vi + 1) * NVALID / vn) > int(vi * NVALID / vn)) print; vi++ }
' "$W/acne04/manifest.jsonl" "$W/acne04/manifest.jsonl" >"$W/acne04/sub.jsonl"
echo "subset: $(grep -c '"split":"train"' "$W/acne04/sub.jsonl") train, $(grep -c '"split":"valid"' "$W/acne04/sub.jsonl") valid photos"
rm -rf "$W/tiny" "$W/run"
"$BIN" model init --preset tiny --seed 7 --out "$W/tiny"
echo "== before training"
"$BIN" eval --model "$W/tiny" --data "$W/acne04/sub.jsonl" --split valid --bootstrap 0 --out "$W/eval-before" | grep -iE 'accuracy|auc' | head -4
echo "== training"
/usr/bin/time -f 'train: %e s wall, max RSS %M KiB' "$BIN" train --config configs/train-qwen-lora.yaml --base-model "$W/tiny" \
	--data "$W/acne04/sub.jsonl" --out "$W/run" --epochs 3 --batch-size 8 --grad-accum 1 --lora-r 8 --lora-alpha 16 \
	--lr 1e-3 --warmup-steps 5 --progress=false
echo "== after training (the last adapter: the best by macro-F1 ties with epoch 1 when the model only learns the majority grade)"
"$BIN" eval --model "$W/tiny" --adapter "$W/run/checkpoint-last" --data "$W/acne04/sub.jsonl" --split valid --bootstrap 0 \
	--out "$W/eval-after" | grep -iE 'accuracy|auc' | head -4
