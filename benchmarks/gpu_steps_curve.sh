#!/usr/bin/env bash
# Is a new model trained on 12 images limited by its steps or by its images? One GPU call (issue 8):
# generalisation.py trains the default recipe from scratch for each BUDGET (steps) and SEED, every pair
# in a process of its own, side by side on the GPU, and scores each model on every fluorescence `val`
# image (network on the GPU, the instance step on one CPU thread; budgets over 2000 steps score with two
# processes, since the short runs have ended by then and left their cores free; WORKERS=N: N for all).
#   DATA=path/to/dsb2018-stage1-train OUT=dir SEEDS="0 1 2 3 4 5" BUDGETS="1347 6735" bash benchmarks/gpu_steps_curve.sh
#   (BUDGETS=3 SEEDS=0 VAL=2: a smoke run of the plumbing, also on a CPU; K=24: train on 24 images, not 12)
# DATA needs index.csv whole, and the images of the seeds' 12 and of `val` only. Writes the logs and
# results JSON into OUT/curve.tgz: every 20 s while running (in case the call is cut), and at the end
# or at DEADLINE seconds, whichever comes first. Needs torch, numpy, scipy, scikit-image and tifffile.
set -u
: "${OUT:?set OUT to a results folder}" "${DATA:?set DATA to the dsb2018-stage1-train folder}"
mkdir -p "$OUT"
DATA=$(realpath "$DATA") OUT=$(realpath "$OUT") L=$(mktemp -d)
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 PYTHONPATH="$(realpath ..)" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s)
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
collect() {
  cp results/gpu_curve_*.json "$L/" 2>/dev/null
  local tmp; tmp=$(mktemp "$OUT/.partial.XXXX") && tar czf "$tmp" -C "$L" . && mv "$tmp" "$OUT/curve.tgz"
}
for s in ${SEEDS:-0 1 2 3 4 5}; do
  for n in ${BUDGETS:-1347 6735}; do
    w=1; [ "$n" -gt 2000 ] && w=2; w=${WORKERS:-$w}
    name="curve${K:+_k$K}_${n}_s$s"
    ( python3 generalisation.py --steps "$n" --seeds "$s" --k "${K:-12}" --threads 1 --workers "$w" \
        --data "$DATA" ${VAL:+--val "$VAL"} --name "gpu_$name" >"$L/$name.log" 2>&1 \
        || echo "${K:+K=$K, }$n steps seed $s failed"
      echo "${K:+K=$K, }$n steps seed $s done at $(( $(date +%s) - start )) s" ) &
  done
done
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - start )) -lt "${DEADLINE:-480}" ]; do sleep 20; collect; done
echo "collecting at $(( $(date +%s) - start )) s"
collect
python3 - <<'PY'
import glob, json
for f in sorted(glob.glob("results/gpu_curve_*.json")):
    for row in json.load(open(f))["rows"]:
        if "ap50" in row:
            print(f.split("/")[-1], row.get("method"), row.get("seed"), row.get("steps"),
                  "AP@0.5 %.3f DSB %.3f" % (row["ap50"], row["dsb"]))
PY
