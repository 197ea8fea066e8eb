#!/usr/bin/env bash
# One GPU session's work, in one call (a lent GPU's time is short): train the shipped models on
# the DSB2018 `train` split with patches drawn by worker processes, then measure prediction speed.
#   DATA=path/to/dsb2018-stage1-train OUT=results_dir SECONDS_EACH=300 bash benchmarks/gpu_session.sh
# Needs torch with CUDA, numpy, scipy, scikit-image and tifffile; nothing else of the package's.
# The models are scored afterwards on `val` with generalisation.py (CPU is fine for that).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: "${OUT:?set OUT to a results folder}" "${SECONDS_EACH:=300}"
if [ -n "${DATA:-}" ]; then mkdir -p shared/data && ln -sfn "$(realpath "$DATA")" shared/data/dsb2018-stage1-train; fi
nvidia-smi -L
python3 -c "import torch, numpy, scipy, skimage, tifffile; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
# a few steps first, so a broken environment fails in seconds rather than after the long runs
python3 benchmarks/train_pretrained.py nuclei-stained --steps 20 --batch-size 16 --loader-workers 2 --out /tmp/smoke
python3 benchmarks/train_pretrained.py nuclei --resume --seconds "$SECONDS_EACH" --batch-size 16 --loader-workers 8 \
    --out "$OUT/nuclei" >"$OUT/nuclei.log" 2>&1 &
nuclei=$!
python3 benchmarks/train_pretrained.py nuclei-stained --seconds "$SECONDS_EACH" --batch-size 16 --loader-workers 5 \
    --out "$OUT/stained" >"$OUT/stained.log" 2>&1 &
stained=$!
wait "$nuclei" && wait "$stained" || { tail -n 20 "$OUT"/*.log; exit 1; }
tail -n 3 "$OUT/nuclei.log" "$OUT/stained.log"
python3 benchmarks/gpu_speed.py --size 4096 --out "$OUT/gpu_speed.json"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
