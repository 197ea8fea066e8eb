"""Train a shipped starting model on the DSB2018 `train` split and write it with its model card.

    python benchmarks/train_pretrained.py nuclei --seconds 2700 --threads 1
    python benchmarks/train_pretrained.py nuclei-stained --seconds 1800
    python benchmarks/train_pretrained.py nuclei --resume --seconds 6000 --threads 1 --out /tmp/pre
    python benchmarks/train_pretrained.py nuclei --resume --seconds 330 --batch-size 16 --loader-workers 8

On a GPU the patches are drawn by `--loader-workers` processes (one core cannot keep it busy).

`--resume` continues from the shipped model (a fresh learning-rate schedule over the new budget);
the card then counts the steps and seconds of every run. `--out DIR` writes there instead of
resources/models, so a candidate can be scored before it replaces the shipped one.

`nuclei` learns from every fluorescence `train` image, `nuclei-stained` from every colour
one, with the default recipe (fast preset, objects resampled to the canonical diameter);
`val` images are never seen. Writes resources/models/NAME.pt and NAME.json; the card's
val scores come from `generalisation.py --pretrained NAME --steps 0`, run afterwards
(`--card-scores benchmarks/results/FILE.json` copies them in).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from common import machine, run_training
from generalisation import DATA, index, load

from napari_unet.functionals.data import TrainingImage
from napari_unet.io.pretrained import card_path, checkpoint_path, model_card
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import TrainConfig, Trainer

MODELS = {
    "nuclei": ("fluorescence", "Cell nuclei in fluorescence images (DAPI, Hoechst and similar stains), one channel."),
    "nuclei-stained": ("colour", "Cell nuclei in brightfield images of stained tissue (e.g. H&E), RGB."),
}
CITATION = ("Caicedo, J.C., Goodman, A., Karhohs, K.W. et al. Nucleus segmentation across imaging experiments: "
            "the 2018 Data Science Bowl. Nat Methods 16, 1247-1253 (2019). doi:10.1038/s41592-019-0612-7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("--seconds", type=float, default=2700)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default=TrainConfig.preset, help="model size (a new model only)")
    parser.add_argument("--patch-size", type=int, default=TrainConfig.patch_size)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--learning-rate", type=float, default=3e-3,
                        help="peak rate, also when resuming: it continues on all the data, so it is not a fine-tune")
    parser.add_argument("--loader-workers", type=int, default=0, help="processes drawing patches (GPU only)")
    parser.add_argument("--resume", action="store_true", help="continue from the shipped model of that name")
    parser.add_argument("--out", type=Path, help="folder for NAME.pt and NAME.json (default: resources/models)")
    parser.add_argument("--card-scores", type=Path, help="generalisation.py results to copy into the card")
    args = parser.parse_args()
    if args.card_scores:
        return add_scores(args.name, args.card_scores)
    modality, description = MODELS[args.name]
    entries = [e for e in index(DATA) if e.split == "train" and e.modality == modality]
    items = [TrainingImage.from_instances(*load(DATA, e), name=e.id) for e in entries]
    config = TrainConfig(seconds=None if args.steps else args.seconds, steps=args.steps, seed=args.seed,
                         threads=args.threads, validation_fraction=0.0, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, loader_workers=args.loader_workers,
                         preset=args.preset, patch_size=args.patch_size)
    start = Segmenter.load(checkpoint_path(args.name)) if args.resume else None
    earlier = model_card(args.name)["training"] if args.resume else None
    tick = time.perf_counter()
    segmenter = run_training(Trainer(items, config, segmenter=start, class_names=["background", "nucleus"]), 500)
    out_pt = args.out / f"{args.name}.pt" if args.out else checkpoint_path(args.name)
    out_card = args.out / f"{args.name}.json" if args.out else card_path(args.name)
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    segmenter.save(out_pt)
    run = segmenter.history[-1]
    command = "python benchmarks/" + " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
    training = {"steps": run["steps"], "seconds": run["seconds"], "batch_size": config.batch_size,
                "date": date.today().isoformat(),
                "machine": machine(), "command": command}
    if earlier:
        training = {"steps": earlier["steps"] + run["steps"], "seconds": round(earlier["seconds"] + run["seconds"], 2),
                    "date": training["date"], "machine": training["machine"],
                    "runs": earlier.get("runs", [earlier]) + [training]}
    card = {
        "name": args.name,
        "description": description,
        "classes": segmenter.class_names,
        "input_channels": segmenter.config.in_channels,
        "preset": config.preset,
        "object_diameter": segmenter.object_diameter,
        "canonical_diameter": segmenter.canonical_diameter,
        "data": f"2018 Data Science Bowl stage-1 training set (BBBC038) with the community's annotation fixes: "
                f"the {len(items)} {modality} images of the fixed `train` split; `val` images were not seen",
        "licence": "CC0 1.0 (data); the weights are released under the package's licence",
        "citation": CITATION,
        "training": training,
        "val_scores": None,
    }
    out_card.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out_pt} ({run['steps']} steps in {time.perf_counter() - tick:.0f} s)")


def add_scores(name: str, results: Path) -> None:
    """Copy the no-training row of a generalisation.py run into the model card."""
    payload = json.loads(results.read_text())
    row = next(r for r in payload["rows"] if r.get("budget_steps") == 0)
    card = json.loads(card_path(name).read_text())
    card["val_scores"] = {
        "images": payload["val_images"],
        "ap50": round(row["ap50"], 3),
        "ap70": round(row["ap70"], 3),
        "ap90": round(row["ap90"], 3),
        "dsb_score": round(row["dsb"], 3),
        "command": payload["command"],
        "date": payload["date"],
    }
    card_path(name).write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["val_scores"], indent=2))


if __name__ == "__main__":
    main()
