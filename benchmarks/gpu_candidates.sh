#!/usr/bin/env bash
# Can the shipped `nuclei` model still gain from more training? One GPU call: two candidates resumed
# from it side by side on the DSB2018 fluorescence `train` split at a lower peak rate (1e-3 instead
# of the 3e-3 the earlier runs used): patches of 128 px (as before) and of 256 px (more context per
# object). Then the shipped model and both candidates are scored on every fluorescence `val` image,
# and the better candidate is fine-tuned on 12 `train` images (1347 steps, seeds 0-2) as in the
# headline's fine-tuning row.
#   DATA=path/to/dsb2018-stage1-train OUT=results_dir SECONDS_EACH=300 bash benchmarks/gpu_candidates.sh
#   (VAL=2 STEPS=20 FT_STEPS=5: a smoke run of the plumbing, also on a CPU)
# Writes the two candidates' .pt, their logs and the results JSON into OUT. Needs torch, numpy, scipy, scikit-image and tifffile; val images are predicted by 15 processes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: "${OUT:?set OUT to a results folder}" "${SECONDS_EACH:=300}" "${DATA:?set DATA to the dsb2018-stage1-train folder}"
DATA=$(realpath "$DATA") OUT=$(realpath "$OUT")
mkdir -p shared/data "$OUT" && ln -sfn "$DATA" shared/data/dsb2018-stage1-train
nvidia-smi -L || true
budget=(--seconds "$SECONDS_EACH")
[ -n "${STEPS:-}" ] && budget=(--steps "$STEPS")
common=(nuclei --resume --learning-rate 1e-3 --batch-size 16 --loader-workers "${LOADERS:-7}" "${budget[@]}")
python3 benchmarks/train_pretrained.py "${common[@]}" --out /tmp/p128 >"$OUT/p128.log" 2>&1 &
python3 benchmarks/train_pretrained.py "${common[@]}" --patch-size 256 --out /tmp/p256 >"$OUT/p256.log" 2>&1 &
wait -n && wait -n || { tail -n 20 "$OUT"/*.log; exit 1; }
tail -n 2 "$OUT"/*.log
mkdir -p /tmp/candidates
for c in p128 p256; do cp /tmp/$c/nuclei.pt /tmp/candidates/nuclei-$c.pt; cp /tmp/$c/nuclei.pt "$OUT/nuclei-$c.pt"; done
cd benchmarks
python3 generalisation.py --rescore ../resources/models/nuclei.pt /tmp/candidates/nuclei-p128.pt \
    /tmp/candidates/nuclei-p256.pt --workers "${WORKERS:-15}" --name gpu_candidates --data "$DATA" ${VAL:+--val "$VAL"}
cp results/gpu_candidates.json "$OUT/"
best=$(python3 -c "import json; rows = json.load(open('results/gpu_candidates.json'))['rows'][2:]; \
print(max(rows, key=lambda r: r['ap50'])['method'].split()[-1])")
echo "fine-tuning $best"
timeout "${FT_TIMEOUT:-170}" python3 generalisation.py --pretrained "/tmp/candidates/$best.pt" --steps "${FT_STEPS:-1347}" \
    --seeds 0 1 2 --workers "${WORKERS:-15}" --name gpu_candidates_ft --data "$DATA" ${VAL:+--val "$VAL"} || true
cp results/gpu_candidates_ft.json "$OUT/" 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
