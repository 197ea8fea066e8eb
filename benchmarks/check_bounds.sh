#!/usr/bin/env bash
# Check that the lower bounds in pyproject.toml are true: install exactly the oldest versions
# they allow (wheels only) in a fresh venv without any Qt binding, then run the core tests and
# the command line there. Needs network access to PyPI; torch 2.3 from PyPI is the CUDA build
# (about 3 GB with its nvidia wheels), so this takes minutes and is kept out of CI.
#
#   bash benchmarks/check_bounds.sh            # PYTHON=python3.11 VENV=/tmp/bounds to override
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
WORK=$(mktemp -d)
VENV=${VENV:-$WORK/venv}
CONSTRAINTS=$WORK/lower-bounds.txt

# name>=X in [project] dependencies -> name==X
"$PYTHON" - "$ROOT/pyproject.toml" > "$CONSTRAINTS" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", dep)
    if match:
        print(f"{match.group(1)}=={match.group(3)}")
PY
echo "== lower bounds"; cat "$CONSTRAINTS"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# ome-zarr-models: the tests validate the OME-Zarr they write with it (a testing extra)
"$VENV/bin/python" -m pip install -q --only-binary=:all: -c "$CONSTRAINTS" "$ROOT" pytest ome-zarr-models
echo "== installed"; "$VENV/bin/python" -m pip freeze | grep -iE "^($(cut -d= -f1 "$CONSTRAINTS" | paste -sd'|'))=="

echo "== no Qt binding, and the command line works"
if "$VENV/bin/python" -c "import PyQt5" 2>/dev/null || "$VENV/bin/python" -c "import PyQt6" 2>/dev/null \
   || "$VENV/bin/python" -c "import PySide6" 2>/dev/null; then
    echo "a Qt binding was installed without the [pyqt5] extra"; exit 1
fi
"$VENV/bin/napari-unet" --help > /dev/null
(cd "$WORK" && "$VENV/bin/python" - <<'PY'
import numpy as np, tifffile
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter
Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "object"]).save("m.pt")
tifffile.imwrite("img.tif", np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
PY
"$VENV/bin/napari-unet" predict --model m.pt --image img.tif --instances inst.tif --semantic sem.png --quiet)
echo "napari-unet --help and predict: ok"

echo "== core tests (no display, no Qt)"
cd "$ROOT"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" \
    tests/test_model.py tests/test_segmenter.py tests/test_training.py tests/test_inference_and_instances.py \
    tests/test_targets_and_data.py tests/test_normalisation.py tests/test_metrics.py tests/test_corrections.py \
    tests/test_image_io.py tests/test_ome_zarr_io.py tests/test_cli.py tests/faults/test_cli_numbers.py \
    tests/faults/test_cli_sizes.py tests/faults/test_cli_outputs.py
