"""How much `auto` diameter depends on its first guess: a shipped model's AP@0.5 on `val` images predicted at
`auto`, with the model's training diameter (the first pass's guess) set to each of several sizes.

    python benchmarks/auto_first_guess.py --seeds 1 3 --guesses 16.56 25.6 38 --threads 1
    python benchmarks/auto_first_guess.py --seeds 0 --val 113 --guesses 16.56 --threads 1   # every fluorescence val image

`auto` should find each image's object size whatever it starts from; a fine-tuned model's training diameter
is the median of the images it learnt from, so a guess that moves with them moves its scores on other images.
Prints a table and writes benchmarks/results/auto_first_guess[_NAME].json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotation_effort import _load_start  # noqa: E402
from common import machine, save  # noqa: E402
from effort_samples import dsb_samples  # noqa: E402

from napari_unet.functionals.metrics import average_precision  # noqa: E402
from napari_unet.functionals.scale import AUTO  # noqa: E402
from napari_unet.nn.device import set_cpu_threads  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nuclei", help="shipped model name or file")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 3], help="seed S scores the 20 val images it draws")
    p.add_argument("--val", type=int, default=20)
    p.add_argument("--guesses", type=float, nargs="+", default=[16.56, 25.6, 38.0], help="training diameters, px")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    set_cpu_threads(args.threads)
    model = _load_start(args.model)
    print(f"machine: {machine(args.threads)}\n| seed | first guess (px) | AP@0.5 | passes per image: mean (most) | "
          f"seconds |\n|---|---|---|---|---|", flush=True)
    rows = []
    for seed in args.seeds:
        val = dsb_samples("val", args.val, seed)
        for guess in args.guesses:
            model.object_diameter = guess
            tick, passes, found = time.perf_counter(), [], []
            for s in val:
                reports = []  # tiles done so far: a pass starts where the count does not grow
                prediction = model.predict(s.image, diameter=AUTO, progress=lambda done, total: reports.append(done))
                found.append(model.instances(prediction))
                passes.append(1 + sum(b <= a for a, b in zip(reports, reports[1:])))
            ap50 = float(average_precision([s.truth for s in val], found, (0.5,))[0.5])
            rows.append({"seed": seed, "guess": guess, "ap50": round(ap50, 4), "passes": passes,
                         "seconds": round(time.perf_counter() - tick, 1)})
            print(f"| {seed} | {guess:g} | {ap50:.3f} | {np.mean(passes):.2f} ({max(passes)}) | {rows[-1]['seconds']} |",
                  flush=True)
    name = "auto_first_guess" + (f"_{args.name}" if args.name else "")
    print(f"results: {save(name, {'args': vars(args), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
