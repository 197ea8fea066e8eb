#!/usr/bin/env bash
# Images bigger than memory across dask workers (issue 11), one GPU call: `predict --out-zarr` on synthetic
# nuclei stores of 8192^2, 16384^2 and 32768^2 uint16 in blocks of 2048, WORKERS dask worker processes that
# each load the model on the GPU (the objects pass on their CPU cores). Per size: seconds, us/px, peak RSS
# of the main process and of any one worker, seconds per stage (`volumes.py scaling`).
#   OUT=results_dir [WHEELS=dir] [WORKERS=12] [SIZES="8192 16384 32768"] [TIMEOUT=330] [DEVICE=cuda] \
#       bash benchmarks/gpu_scaling.sh
# Needs torch, numpy, scipy, scikit-image, tifffile, psutil, tqdm, plus zarr, dask and distributed (installed
# from the wheels in WHEELS when given); no napari or Qt. A size that fails or passes TIMEOUT seconds is
# recorded as such and the next one runs; each row lands in $OUT/scaling_rows.jsonl as it finishes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: "${OUT:?set OUT to a results folder}"
mkdir -p "$OUT" && OUT=$(realpath "$OUT")
if [ -n "${WHEELS:-}" ]; then python3 -m pip install -q --no-index --find-links "$WHEELS" zarr dask distributed; fi
nvidia-smi -L || true
python3 -c "import sys, zarr, dask, distributed; print(sys.version.split()[0], 'zarr', zarr.__version__, 'dask', dask.__version__, 'distributed', distributed.__version__)"
cd benchmarks
# shellcheck disable=SC2086  # SIZES is a list
python3 volumes.py scaling --sizes ${SIZES:-8192 16384 32768} --block 2048 --workers "${WORKERS:-12}" --threads 1 \
    --device "${DEVICE:-cuda}" --diameter 17 --keep-input /tmp/nuclei_inputs --timeout "${TIMEOUT:-330}" \
    --results "$OUT" --log "$OUT/scaling_rows.jsonl" 2>&1 | tee "$OUT/scaling.log"
