#!/usr/bin/env bash
# Issue 9's annotation-effort benchmark at full size, in one GPU call: 15 simulated annotators side by side
# (one process each, one torch thread, the network on the GPU): strokes from a new model (seed 0) and from
# `nuclei` (seeds 0 and 1), correct & accept from `nuclei` (seed 0), the same restarting from `nuclei` each
# round, each with the random, uncertainty and oracle pickers; 3 `train` images annotated, 20 `val` images
# scored, 341 steps a round.
#   DATA=folder-with-the-dsb2018-fluorescence-images OUT=results_dir [ROUNDS=10] [TIMEOUT=450] \
#       bash benchmarks/gpu_effort.sh   (ROUNDS=2 STEPS=2 VAL=1: a smoke run of the plumbing)
# Needs torch, numpy, scipy, scikit-image, tifffile and matplotlib; no napari, Qt, zarr or dask. Each run saves
# its rounds as it goes, so one stopped by TIMEOUT keeps the rounds it finished. Results come back as one tar.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: "${OUT:?set OUT to a results folder}" "${DATA:?set DATA to the dsb2018-stage1-train folder}"
DATA=$(realpath "$DATA") OUT=$(realpath "$OUT")
mkdir -p shared/data "$OUT/logs" && ln -sfn "$DATA" shared/data/dsb2018-stage1-train
nvidia-smi -L || true
cd benchmarks
common=(--dataset dsb --pool 3 --val "${VAL:-20}" --rounds "${ROUNDS:-10}" --steps "${STEPS:-341}" --threads 1)
# a few steps first, so a broken environment fails in seconds rather than after the long runs
python3 annotation_effort.py --pool 1 --val 2 --rounds 1 --steps 3 --pickers uncertainty --name gpu_smoke || exit 1
# name and options of each run; every run goes once per picker
runs=("scratch_s0|--seed 0" "nuclei_s0|--seed 0 --start nuclei" "nuclei_s1|--seed 1 --start nuclei"
      "correct_s0|--seed 0 --start nuclei --mode correct" "restart_s0|--seed 0 --start nuclei --mode correct --restart")
for run in "${runs[@]}"; do
    for picker in random uncertainty oracle; do
        # shellcheck disable=SC2086  # the run's options are a list
        timeout "${TIMEOUT:-450}" python3 annotation_effort.py "${common[@]}" ${run#*|} --pickers "$picker" \
            --name "gpu_${run%%|*}_$picker" >"$OUT/logs/${run%%|*}_$picker.log" 2>&1 &
    done
done
wait
tail -n 4 "$OUT"/logs/*.log
for run in "${runs[@]}"; do
    python3 annotation_effort.py --merge results/annotation_effort_gpu_"${run%%|*}"_*.json --name "gpu_${run%%|*}" \
        --plot >"$OUT/logs/merge_${run%%|*}.log" 2>&1 && cat "$OUT/logs/merge_${run%%|*}.log"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
tar czf "$OUT/effort.tar.gz" results/annotation_effort_gpu_* "$OUT/logs" 2>/dev/null
