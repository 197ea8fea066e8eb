#!/usr/bin/env bash
# Does a larger network generalise better? One GPU call: train `nuclei` candidates of the
# `balanced` and `accurate` presets from scratch on the DSB2018 fluorescence `train` split, side
# by side, then score them and the shipped (fast preset) `nuclei` on every fluorescence `val` image.
#   DATA=path/to/dsb2018-stage1-train OUT=results_dir SECONDS_EACH=240 bash benchmarks/gpu_presets.sh
# Needs torch with CUDA, numpy, scipy, scikit-image and tifffile; the val images are predicted by
# 15 processes (`generalisation.py --workers`), the instance step on the CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: "${OUT:?set OUT to a results folder}" "${SECONDS_EACH:=240}" "${DATA:?set DATA to the dsb2018-stage1-train folder}"
DATA=$(realpath "$DATA") OUT=$(realpath "$OUT")  # VAL=n scores n val images only (a smoke run)
mkdir -p shared/data && ln -sfn "$DATA" shared/data/dsb2018-stage1-train
nvidia-smi -L
python3 benchmarks/train_pretrained.py nuclei --preset balanced --steps 20 --batch-size 16 --loader-workers 2 --out /tmp/smoke
for preset in balanced accurate; do
    python3 benchmarks/train_pretrained.py nuclei --preset "$preset" --seconds "$SECONDS_EACH" --batch-size 16 \
        --loader-workers "${LOADERS:-7}" --out "$OUT/$preset" >"$OUT/$preset.log" 2>&1 &
done
wait -n && wait -n || { tail -n 20 "$OUT"/*.log; exit 1; }
tail -n 2 "$OUT"/*.log
mkdir -p /tmp/candidates
cp "$OUT/balanced/nuclei.pt" /tmp/candidates/nuclei-balanced.pt
cp "$OUT/accurate/nuclei.pt" /tmp/candidates/nuclei-accurate.pt
cd benchmarks
python3 generalisation.py --rescore ../resources/models/nuclei.pt /tmp/candidates/nuclei-balanced.pt \
    /tmp/candidates/nuclei-accurate.pt --workers "${WORKERS:-15}" --name gpu_presets --data "$DATA" ${VAL:+--val "$VAL"}
cp results/gpu_presets.json "$OUT/"
