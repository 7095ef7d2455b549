#!/usr/bin/env bash
# Train the built-in grader on a device machine's GPU (issue #4): the grader's training is
# compute-bound on the 2-core development VM (~16 min per epoch for a 64-channel counter), and
# the device machine sees only the repository, so the photos travel packed (pack-grader-data.py)
# and the XLA binary travels xz-compressed. See scripts/gpu/README.md ("Grader training").
#
# Prepare (development machine), then one device call:
#   make build-xla && xz -T2 -9 -kf bin/acdtcm-xla
#   /usr/bin/python3 scripts/gpu/pack-grader-data.py data/acne04/manifest.jsonl gpu-data/acne04-224
#   device run: command "bash scripts/gpu/grader.sh", carry ["bin/acdtcm-xla.xz", "gpu-data/acne04-224"]
#
# Stages: smoke (one epoch on 64 + 16 photos through XLA; retried without the PJRT client
# options if it fails), then train with `timeout -s INT` inside GRADER_BUDGET_S (the
# trainer stops cleanly on SIGINT and keeps best.ckpt/last.ckpt). Back in $OUT: grader.log,
# metrics.jsonl, best.ckpt, last.ckpt, config.json. Locally, `acdtcm train --calibrate-only`
# on a run directory holding them fits the calibration and scores valid (see the README).
#
# Knobs: GRADER_CONFIG (default configs/train-grader-mobilenetv2.yaml, the v1.5.0 recipe on the
# pretrained MobileNetV2 backbone; configs/train-grader.yaml is the from-scratch network),
# GRADER_ARGS (extra train flags; default 20 epochs of v1.8.0's recipe: --copy-links applies
# the copy links found on the original photos, configs/acne04-copy-links.json, so the split
# is v1.8.0's although the packed photos match fewer copies), GRADER_BUDGET_S
# (540), DATA (gpu-data/acne04-224), GPU_DRYRUN=1 (the same flow on a CPU machine with
# bin/acdtcm, --backend go and 4 steps).
set -u -o pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/gpu/env.sh
source "$ROOT/scripts/gpu/env.sh"
OUT="${OUT:-$ROOT/out/grader-gpu$([ "${GPU_DRYRUN:-0}" = 1 ] && echo -dryrun)}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/grader.log") 2>&1

T0=$(date +%s)
BUDGET="${GRADER_BUDGET_S:-540}"
DATA="${DATA:-$ROOT/gpu-data/acne04-224}"
WORK="${GPU_WORK:-$([ -d /dev/shm ] && [ "${GPU_DRYRUN:-0}" != 1 ] && echo /dev/shm/acdtcm-grader || echo "$ROOT/out/grader-work")}"
mkdir -p "$WORK"
echo "=== scripts/gpu/grader.sh $(date -u +%FT%TZ), budget ${BUDGET}s, data $DATA, work $WORK, dryrun=${GPU_DRYRUN:-0}"
if [ ! -f "$DATA/manifest.jsonl" ]; then
	echo "FATAL: $DATA/manifest.jsonl is missing: pack it (scripts/gpu/pack-grader-data.py) and carry it"
	exit 1
fi
if [ "${GPU_DRYRUN:-0}" = 1 ]; then
	ACDTCM="$ROOT/bin/acdtcm" BACKEND=go BACKEND_PLAIN=go PLUGIN=""
	ARGS="${GRADER_ARGS:---epochs 2 --holdout-frac 0.2}"
	SMOKE_ARGS="--epochs 1 --holdout-frac 0.2"
	TRAIN_DATA="$WORK/smoke.jsonl" # the dry run trains on the smoke subset
else
	PY="${PYTHON:-python3}"
	find_plugin
	command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
	ACDTCM="$WORK/acdtcm-xla"
	if [ -f "$ROOT/bin/acdtcm-xla.xz" ]; then
		python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
			"$ROOT/bin/acdtcm-xla.xz" "$ACDTCM" && chmod +x "$ACDTCM" || exit 1
	else
		ACDTCM="$ROOT/bin/acdtcm-xla"
	fi
	ARGS="${GRADER_ARGS:---epochs 20 --patience 0 --average-last 6 --loss-ordinal 1 --copy-links configs/acne04-copy-links.json}"
	SMOKE_ARGS="--epochs 1 --holdout-frac 0.2"
	TRAIN_DATA="$DATA/manifest.jsonl"
fi
"$ACDTCM" version || exit 1
# The smoke run trains one whole epoch (a run stopped inside its first epoch keeps no
# checkpoint) on a subset: 64 train and 16 valid photos, with absolute image paths.
python3 - "$DATA" "$WORK/smoke.jsonl" <<'PYEOF' || exit 1
import json, os, sys
data, out = sys.argv[1], sys.argv[2]
want = {"train": 64, "valid": 16}
with open(os.path.join(data, "manifest.jsonl")) as f, open(out, "w") as g:
    for line in f:
        r = json.loads(line)
        if want.get(r.get("split"), 0) > 0:
            want[r["split"]] -= 1
            r["image"] = os.path.join(os.path.abspath(data), r["image"])
            g.write(json.dumps(r, ensure_ascii=False) + "\n")
PYEOF
common=(train --config "${GRADER_CONFIG:-configs/train-grader-mobilenetv2.yaml}" --cache-dir "$WORK/cache" --progress=false)

echo
echo "=== [smoke] at +$(($(date +%s) - T0))s"
ok=""
for b in "$BACKEND" "$BACKEND_PLAIN"; do
	rm -rf "$WORK/smoke"
	# shellcheck disable=SC2086 # SMOKE_ARGS is a list of flags
	if timeout -k 10 240 bash -c 'source "$0"; goenv "$@"' "$ROOT/scripts/gpu/env.sh" "$ACDTCM" "${common[@]}" --data "$WORK/smoke.jsonl" --backend "$b" --out "$WORK/smoke" $SMOKE_ARGS; then
		ok="$b"
		break
	fi
	echo "=== [smoke] failed with $b"
	[ "$b" = "$BACKEND_PLAIN" ] && break
done
[ -n "$ok" ] || { echo "=== smoke failed: no training run"; exit 1; }
echo "=== [smoke] ok with $ok at +$(($(date +%s) - T0))s"

left=$((T0 + BUDGET - $(date +%s) - 25))
echo
echo "=== [train] at +$(($(date +%s) - T0))s, ${left}s left: $ARGS"
rm -rf "$WORK/run"
# shellcheck disable=SC2086 # ARGS is a list of flags
timeout -s INT -k 20 "$left" bash -c 'source "$0"; goenv "$@"' "$ROOT/scripts/gpu/env.sh" "$ACDTCM" "${common[@]}" --data "$TRAIN_DATA" --backend "$ok" --out "$WORK/run" $ARGS
rc=$?
echo "=== [train] rc=$rc at +$(($(date +%s) - T0))s$([ "$rc" = 124 ] && echo ' (cut by the budget: best.ckpt and last.ckpt are the last complete epochs)')"
for f in metrics.jsonl best.ckpt last.ckpt config.json; do
	[ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/"
done
grep -ao '"type":"epoch"[^}]*' "$OUT/metrics.jsonl" 2>/dev/null | tail -5
ls -la "$OUT"
