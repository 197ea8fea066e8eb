"""How many training steps a time budget buys on this machine, for the headline's step budgets.

    python benchmarks/steps_per_budget.py [--seconds 30 120] [--seed 0] [--threads N]

The generalisation benchmarks budget in steps (341 and 1347: what 30 s and 120 s bought on the quiet
2-core machine of 2026-11-25), so that a shared machine trains the same amount. Machines differ: this
trains the default recipe on `generalisation.py`'s 12 fluorescence `train` images of `--seed` for each
budget in seconds, with the default threads (what the dock and the CLI use), and reports the steps
made, so the figures of a step budget can be read against this machine's seconds. Run it alone.
"""

from __future__ import annotations

import argparse
import time

from common import machine, run_training, save
from generalisation import DATA, index, load, pick_training

from napari_unet.functionals.data import TrainingImage
from napari_unet.nn.training import TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores, as the dock)")
    parser.add_argument("--name", default="steps_per_budget")
    args = parser.parse_args()
    entries = index(DATA)
    items = [TrainingImage.from_instances(*load(DATA, e), name=e.id)
             for e in pick_training(entries, "fluorescence", 12, args.seed)]
    rows = []
    for seconds in args.seconds:
        config = TrainConfig(seconds=seconds, seed=args.seed, threads=args.threads, tune_instances=False)
        tick = time.perf_counter()
        history = run_training(Trainer(items, config)).history[-1]
        rows.append({"seconds": seconds, "steps": history["steps"], "wall_seconds": round(time.perf_counter() - tick, 1),
                     "steps_per_second": round(history["steps"] / history["seconds"], 2)})
    print(f"machine: {machine(args.threads)}\n\n| budget | steps | steps/s | wall |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds']:g} s | {r['steps']} | {r['steps_per_second']:.2f} | {r['wall_seconds']:.0f} s |")
    print(f"results: {save(args.name, {'seed': args.seed, 'rows': rows})}")


if __name__ == "__main__":
    main()
