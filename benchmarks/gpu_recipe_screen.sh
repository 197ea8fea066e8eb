#!/usr/bin/env bash
# Recipe variants screened on `train` images, in one GPU call (issue 8; BENCHMARKS.md section GPU).
# Each VARIANT:SEED pair trains a new model on that seed's 12 fluorescence `train` images (1347 steps,
# CUDA, all pairs side by side: recipe_variants.py), then instance_tuning.py tunes it on those 12 and
# scores it on 60 other `train` images (network on the CPU, one process and one thread per model).
#   DATA=path/to/dsb2018-stage1-train OUT=dir PAIRS="base:0 base:1 lr2:0 lr2:1" bash benchmarks/gpu_recipe_screen.sh
#   (STEPS=3 UNSEEN=2: a smoke run of the plumbing, also on a CPU)
# DATA needs index.csv whole, and the images of the seeds' 12 + 60 only. Writes each variant's models
# (models_VARIANT.tgz; MODELS=0: none) and the logs and results JSON (logs_results.tgz; PREFIX names them,
# gpu_screen by default) into OUT, whatever finished by DEADLINE seconds; after each scoring, the results
# so far (results_so_far.tgz), in case the call is cut.
# Needs torch, numpy, scipy, scikit-image and tifffile.
set -u
: "${OUT:?set OUT to a results folder}" "${DATA:?set DATA to the dsb2018-stage1-train folder}" "${PAIRS:?set PAIRS}"
mkdir -p "$OUT"
DATA=$(realpath "$DATA") OUT=$(realpath "$OUT") M=$(mktemp -d) L=$(mktemp -d)
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 PYTHONPATH="$(realpath ..)" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s)
nvidia-smi -L || true
python3 -c "import torch, numpy, scipy, skimage, tifffile; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
job() {
  local v=$1 s=$2
  python3 recipe_variants.py "$v" "$s" "$M/${v}_$s.pt" --data "$DATA" --steps "${STEPS:-1347}" >"$L/train_${v}_$s.log" 2>&1 \
    || { echo "training $v $s failed"; return; }
  echo "trained $v $s at $(( $(date +%s) - start )) s"
  python3 instance_tuning.py --model "$M/${v}_$s.pt" --seed "$s" --threads 1 --unseen "${UNSEEN:-60}" \
    --name "${PREFIX:-gpu_screen}_${v}_s$s" --data "$DATA" >"$L/tune_${v}_$s.log" 2>&1 || { echo "scoring $v $s failed"; return; }
  echo "scored $v $s at $(( $(date +%s) - start )) s"
  # the results so far, in case the call is cut before the end (written aside, then moved: jobs end together)
  local tmp; tmp=$(mktemp "$OUT/.partial.XXXX") && tar czf "$tmp" results/"${PREFIX:-gpu_screen}"_*.json && mv "$tmp" "$OUT/results_so_far.tgz"
}
for pair in $PAIRS; do job "${pair%:*}" "${pair#*:}" & done
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - start )) -lt "${DEADLINE:-480}" ]; do sleep 5; done
echo "collecting at $(( $(date +%s) - start )) s"
if [ "${MODELS:-1}" = 1 ]; then
  for v in $(printf '%s\n' $PAIRS | cut -d: -f1 | sort -u); do (cd "$M" && tar czf "$OUT/models_$v.tgz" "${v}"_*.pt); done
fi
cp results/"${PREFIX:-gpu_screen}"_*.json "$L/" 2>/dev/null
tar czf "$OUT/logs_results.tgz" -C "$L" .
PREFIX=${PREFIX:-gpu_screen} python3 - <<'PY'
import glob, json, os
for f in sorted(glob.glob(f"results/{os.environ['PREFIX']}_*.json")):
    r = json.load(open(f))
    row = next(x for x in r["picked_with_min_confidence"] if x["picked"])
    print(f.split("/")[-1], "own AP@0.5 %.3f unseen %.3f" % (row["own"]["ap50"], row["unseen"]["ap50"]), r["picked"]["params"])
PY
