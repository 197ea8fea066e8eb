"""Plot AP@0.5 on unseen images against training time, from scratch and from a pretrained model.

    python benchmarks/plot_generalisation.py results/generalisation.json results/generalisation_nuclei.json

Reads `generalisation.py` result files; x is training in quiet-machine seconds (steps
divided by the quiet machine's steps per second, see generalisation.py), y the mean
AP@0.5 over seeds with the range as error bars; rows of one method are pooled over the
files (a later file's row of the same budget and seed replaces an earlier one). Needs
matplotlib (extra `benchmarks`).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from generalisation import STEPS_PER_QUIET_SECOND  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "generalisation.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rename", nargs="+", default=[], metavar="OLD=NEW",
                        help="plot method OLD as NEW (e.g. one model scored from two paths)")
    args = parser.parse_args()
    names = dict(pair.split("=", 1) for pair in args.rename)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    # Rows of one method from several files (e.g. seeds run apart) are pooled, a later file's row
    # replacing an earlier one of the same budget and seed (a rerun); a reference is drawn once.
    by_method: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    references: dict[str, float] = {}
    for path in args.results:
        payload = json.loads(path.read_text())
        for row in payload["rows"]:
            row["method"] = names.get(row["method"], row["method"])
            if "budget_steps" in row and row.get("diameter", "auto") in ("auto", "None"):
                by_method[row["method"]][row["budget_steps"]][row.get("seed", 0)] = row["ap50"]
            elif "budget_steps" not in row:
                references.setdefault(row["method"], row["ap50"])
    for method, ap50 in references.items():
        ax.axhline(ap50, color="grey", linestyle=":", linewidth=1)
        ax.annotate(method, (0, ap50), fontsize=7, color="grey", va="bottom")
    for method, by_budget in by_method.items():
        budgets = {steps: list(seeds.values()) for steps, seeds in by_budget.items()}
        xs = sorted(budgets)
        means = [sum(budgets[x]) / len(budgets[x]) for x in xs]
        low = [m - min(budgets[x]) for m, x in zip(means, xs)]
        high = [max(budgets[x]) - m for m, x in zip(means, xs)]
        seconds = [x / STEPS_PER_QUIET_SECOND for x in xs]
        ax.errorbar(seconds, means, yerr=[low, high], marker="o", capsize=3, label=method)
    ax.axhline(0.80, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("training (seconds on the quiet 2-core CPU)")
    ax.set_ylabel(f"AP@0.5 on unseen val images ({payload['val_images']})")
    ax.set_title("DSB2018 fluorescence: train on 12 images, score all val images", fontsize=9)
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
