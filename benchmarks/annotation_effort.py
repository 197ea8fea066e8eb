"""Annotation effort: how much a (simulated) user paints or corrects to reach a given AP@0.5.

The simulated user plays the dock's cycle through the same core code: train for T seconds
(warm start from the last model) -> predict its images -> pick a region -> annotate it ->
train again. "Annotate" is what a person does there, either
  strokes:  a few strokes drawn from the ground truth inside the region (the helpers that drew
            the shipped sample scribbles, resources/make_scribbles.py), or
  correct:  fix the prediction in the region (every object that does not match the truth at
            IoU 0.5 is one corrected object) and accept the region (functionals.corrections).
Region pickers: `random` (any open region), `uncertainty` (what "Suggest next" shows:
functionals.suggestions.SuggestionWalk on the uncertainty map: class entropy and split instability) and `oracle` (the open region
with the most object errors: an upper bound). Effort is counted as strokes (connected runs of
new paint per class), painted pixels and corrected objects; AP@0.5 is scored on `val` images
after each round. Compute minutes are training + prediction, the user's own time is not in them.

    python benchmarks/annotation_effort.py --dataset dsb --pool 4 --val 20 --rounds 8 --seconds 30
    python benchmarks/annotation_effort.py --dataset isbi --mode correct --rounds 6

Writes a markdown table to stdout, benchmarks/results/annotation_effort[_NAME].json and a PNG plot
of AP@0.5 against effort and against compute minutes (--plot; needs matplotlib).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # resources/make_scribbles.py: the helpers that drew the sample scribbles
sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py

from common import overrides  # noqa: E402
from effort_samples import Sample, dsb_samples, isbi_samples  # noqa: E402

from napari_unet.functionals.corrections import accept_region  # noqa: E402
from napari_unet.functionals.data import TrainingImage  # noqa: E402
from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.functionals.metrics import average_precision, instance_counts  # noqa: E402
from napari_unet.functionals.scale import AUTO  # noqa: E402
from napari_unet.functionals.suggestions import Region, SuggestionWalk, rank_regions  # noqa: E402
from napari_unet.functionals.uncertainty import split_instability, uncertainty_map  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.nn.training import TrainConfig, Trainer  # noqa: E402
from resources.make_scribbles import (  # noqa: E402
    BACKGROUND,
    OBJECT,
    strokes_in_objects,
    strokes_in_region,
)

PICKERS = ("random", "uncertainty", "oracle")


# --------------------------------------------------------------------------- effort


@dataclass
class Effort:
    strokes: int = 0
    pixels: int = 0
    objects: int = 0

    def __iadd__(self, other: Effort) -> Effort:
        self.strokes += other.strokes
        self.pixels += other.pixels
        self.objects += other.objects
        return self


def count_strokes(before: np.ndarray, after: np.ndarray) -> Effort:
    """Strokes = connected runs of new paint of one class; pixels = newly painted pixels."""
    new = (after != before) & (before == 0)
    strokes = sum(ndi.label(new & (after == value), structure=np.ones((3, 3)))[1] for value in np.unique(after[new]))
    return Effort(strokes=int(strokes), pixels=int(new.sum()))


def draw_strokes(annotations: np.ndarray, truth: np.ndarray, region: tuple[slice, slice], rng,
                 object_strokes: int = 3, background_strokes: int = 2) -> Effort:
    """Paint strokes drawn from the truth inside `region` (in place, only on unpainted pixels)."""
    before = annotations[region].copy()
    canvas = annotations[region]
    objects = truth[region]
    strokes_in_objects(canvas, objects, OBJECT, rng, count=object_strokes, radius=1, margin=1, min_area=20)
    background = ndi.binary_erosion(objects == 0, iterations=2)
    strokes_in_region(canvas, background, BACKGROUND, rng, count=background_strokes, radius=1, margin=2,
                      length=(12, 30))
    return count_strokes(before, canvas)


def correct_and_accept(annotations: np.ndarray, accepted: np.ndarray | None, truth: np.ndarray,
                       instances: np.ndarray, region: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray, Effort]:
    """Correct the predicted objects in `region` to the truth and accept the region.

    Each predicted object without a match at IoU 0.5 is deleted and each true object without one
    is drawn: one corrected object each. Returns new (annotations, accepted) and the effort.
    """
    tp, fp, fn = instance_counts(truth[region], instances[region], (0.5,))[0.5]
    mask = np.zeros(truth.shape, bool)
    mask[region] = True
    semantic = np.where(truth > 0, OBJECT, BACKGROUND).astype(np.uint8)
    accepted, annotations = accept_region(accepted, annotations, semantic, truth, mask)
    return annotations, accepted, Effort(objects=int(fp + fn))


# --------------------------------------------------------------------------- region pickers


@dataclass
class Picker:
    """Chooses the next region among the open grid regions of the pool; never one twice."""

    kind: str
    rng: np.random.Generator
    walk: SuggestionWalk = field(default_factory=SuggestionWalk)

    def pick(self, pool: list[Sample], states: list[dict], outputs: list[dict]) -> Region | None:
        planes = [(s.name, (), out["uncertainty"], state["done"]) for s, state, out in zip(pool, states, outputs)]
        if self.kind == "uncertainty":
            return self.walk.next(planes)
        regions = [r for plane in planes for r in rank_regions(plane[2], plane[3], image=plane[0])
                   if not self.walk.was_suggested(r)]
        if not regions:
            return None
        if self.kind == "random":
            choice = regions[int(self.rng.integers(len(regions)))]
        else:  # oracle: the most object errors at IoU 0.5, ties to the more uncertain
            by_name = {s.name: (s, out) for s, out in zip(pool, outputs)}

            def errors(r: Region) -> int:
                sample, out = by_name[r.image]
                _, fp, fn = instance_counts(sample.truth[r.slices], out["instances"][r.slices], (0.5,))[0.5]
                return fp + fn

            choice = max(regions, key=lambda r: (errors(r), r.score))
        self.walk.remember(choice)
        return choice


# --------------------------------------------------------------------------- the simulated user


def predict_all(segmenter: Segmenter, samples: list[Sample], params: InstanceParams | None = None, *,
                uncertainty: bool = True, diameter: float | str | None = None,
                diameters: dict[str, float] | None = None) -> list[dict]:
    """What the prediction worker computes per plane: instances and (uncertainty=True) the uncertainty
    map Suggest next ranks ("uncertainty": the class entropy) and, to compare with it, the map that
    also reads 255 on objects whose split changes with the threshold ("combined").

    params None: the model's own instance settings (tuned on its annotations), as the dock and CLI use.
    diameter: None predicts at the model's training diameter; AUTO measures each image's objects first
    (the dock's and CLI's default on images it did not train on). diameters: per sample name, the size
    that image was trained at (Trainer.diameters: the dock's `auto` on its own training images).
    """
    params = segmenter.instance_params if params is None else params
    outputs = []
    for s in samples:
        prediction = segmenter.predict(s.image, diameter=(diameters or {}).get(s.name, diameter))
        out = {"instances": segmenter.instances(prediction, params), "prediction": prediction}
        if uncertainty:
            unstable = split_instability(prediction, params, use_instance_heads=segmenter.instance_heads_trained)
            out.update(uncertainty=uncertainty_map(prediction), combined=uncertainty_map(prediction, unstable))
        outputs.append(out)
    return outputs


def error_correlation(segmenter: Segmenter, pool: list[Sample], outputs: list[dict],
                      params: InstanceParams | None = None) -> dict:
    """How well each candidate measure ranks regions by their object errors (Spearman rho over all regions).

    entropy: mean class entropy; split: objects that change between foreground thresholds 0.4
    and 0.6 (instability of the instance split); combined: the mean of the map that reads 1 on
    unstable objects and the entropy elsewhere (`uncertainty_map` with `split_instability`).
    Suggest next ranks by the entropy: the combined map ranked errors no better at the full
    size (BENCHMARKS.md section 5) and costs two more instance passes per plane.
    """
    from dataclasses import replace

    from scipy.stats import spearmanr

    params = segmenter.instance_params if params is None else params
    errors, entropy, split, combined = [], [], [], []
    for s, out in zip(pool, outputs):
        low = segmenter.instances(out["prediction"], replace(params, threshold=0.4))
        high = segmenter.instances(out["prediction"], replace(params, threshold=0.6))
        combined_scores = {(r.top, r.left): r.score for r in rank_regions(out["combined"])}
        for r in rank_regions(out["uncertainty"]):
            _, fp, fn = instance_counts(s.truth[r.slices], out["instances"][r.slices], (0.5,))[0.5]
            _, sfp, sfn = instance_counts(low[r.slices], high[r.slices], (0.5,))[0.5]
            errors.append(fp + fn)
            entropy.append(r.score)
            split.append(sfp + sfn)
            combined.append(combined_scores[(r.top, r.left)])

    def rho(values: list[float]) -> float | None:
        """Spearman's rank correlation with the errors; None where a list is constant (a tiny run): undefined."""
        if len(errors) < 2 or not np.ptp(values) or not np.ptp(errors):
            return None
        return round(float(spearmanr(values, errors)[0]), 3)

    return {f"rho_{name}": rho(values) for name, values in (("entropy", entropy), ("split", split),
                                                            ("combined", combined))}


def train(segmenter: Segmenter | None, pool: list[Sample], states: list[dict],
          config: TrainConfig) -> tuple[Segmenter, dict[str, float]]:
    """The trained model and the size each pool image was trained at (as the dock keeps them)."""
    from dataclasses import replace

    from common import run_training

    # The pairs the dock's training_items makes for an annotated 2D plane.
    items = [replace(TrainingImage.from_annotations(s.image, state["annotations"].copy(), state["accepted"],
                                                    name=s.name), source=s.name)
             for s, state in zip(pool, states) if state["annotations"].any()]
    trainer = Trainer(items, config, segmenter=segmenter)
    return run_training(trainer), trainer.diameters


def simulate(pool: list[Sample], val: list[Sample], picker: str, *, mode: str = "strokes", rounds: int = 5,
             config: TrainConfig, start: Segmenter | None = None, seed: int = 0,
             params: InstanceParams | None = None, restart: bool = False, log=print,
             on_round=None) -> list[dict]:
    """Rounds of train -> score -> predict -> pick -> annotate; one record per round (effort so far, AP@0.5).

    Scored as the dock predicts: val images (never trained on) at the `auto` diameter, the pool images
    trained on at the size each was trained at (the pool's images not annotated yet at `auto`);
    params None: the model's own instance settings after each training.
    restart: each round trains a fresh copy of `start` on all annotations so far, instead of
    continuing from the last round's model (measures drift away from a pretrained start).

    on_round: called with the records so far after each round (to save a long run as it goes).
    """
    rng = np.random.default_rng(seed)
    states = [{"annotations": np.zeros(s.truth.shape, np.uint8), "accepted": None} for s in pool]
    effort = Effort()
    first = pool[0]
    whole = (slice(0, first.truth.shape[0]), slice(0, first.truth.shape[1]))
    effort += draw_strokes(states[0]["annotations"], first.truth, whole, rng, object_strokes=4, background_strokes=4)
    chooser = Picker(picker, np.random.default_rng(seed + 1))
    segmenter, compute, records = start, 0.0, []
    truths = [s.truth for s in val]
    if start is not None:
        before = [out["instances"] for out in predict_all(start, val, params, uncertainty=False, diameter=AUTO)]
        pool_before = [out["instances"] for out in predict_all(start, pool, params, uncertainty=False, diameter=AUTO)]
        log(f"start model, no training: AP@0.5 {float(average_precision(truths, before, (0.5,))[0.5]):.4f} (val), "
            f"{float(average_precision([s.truth for s in pool], pool_before, (0.5,))[0.5]):.4f} (pool, auto diameter), "
            f"diameter {start.object_diameter}")
    for r in range(rounds):
        tic = time.perf_counter()
        base = copy.deepcopy(start) if restart and start is not None else segmenter
        segmenter, trained_at = train(base, pool, states, config)
        compute += time.perf_counter() - tic
        preds = [out["instances"] for out in predict_all(segmenter, val, params, uncertainty=False, diameter=AUTO)]
        ap50 = float(average_precision(truths, preds, (0.5,))[0.5])
        tic = time.perf_counter()
        outputs = predict_all(segmenter, pool, params, uncertainty=r < rounds - 1, diameter=AUTO, diameters=trained_at)
        compute += time.perf_counter() - tic
        pool_ap50 = float(average_precision([s.truth for s in pool], [out["instances"] for out in outputs], (0.5,))[0.5])
        records.append({"picker": picker, "mode": mode, "round": r, "strokes": effort.strokes,
                        "pixels": effort.pixels, "objects": effort.objects, "ap50": round(ap50, 4),
                        "ap50_pool": round(pool_ap50, 4), "diameter": segmenter.object_diameter,
                        "compute_min": round(compute / 60, 3)})
        log(_row(records[-1]))
        if r == rounds - 1:
            break
        records[-1].update(error_correlation(segmenter, pool, outputs, params))
        if on_round is not None:
            on_round(records)
        for state in states:
            state["done"] = state["annotations"] > 0
            if state["accepted"] is not None:
                state["done"] |= state["accepted"] > 0
        region = chooser.pick(pool, states, outputs)
        if region is None:
            log(f"{picker}: no open region left")
            break
        records[-1]["picked"] = [region.image, region.top, region.left, region.bottom, region.right]
        index = next(i for i, s in enumerate(pool) if s.name == region.image)
        state, sample = states[index], pool[index]
        if mode == "strokes":
            effort += draw_strokes(state["annotations"], sample.truth, region.slices, rng)
        else:
            state["annotations"], state["accepted"], fixed = correct_and_accept(
                state["annotations"], state["accepted"], sample.truth, outputs[index]["instances"], region.slices)
            effort += fixed
    return records


# --------------------------------------------------------------------------- report


def _row(r: dict) -> str:
    return (f"| {r['picker']} | {r['mode']} | {r['round']} | {r['strokes']} | {r['pixels']} | {r['objects']} | "
            f"{r['ap50']:.3f} | {r['ap50_pool']:.3f} | {r['diameter']} | {r['compute_min']:.2f} |")


HEADER = ("| picker | annotate by | round | strokes | painted px | corrected objects | AP@0.5 (val) | "
          "AP@0.5 (pool, trained on) | model diameter | compute min |\n|---|---|---|---|---|---|---|---|---|---|")


def effort_to_reach(rows: list[dict], target: float, key: str = "strokes") -> int | None:
    """The effort (`key`) of the first round whose AP@0.5 reaches `target`; None if none does."""
    return next((r[key] for r in rows if r["ap50"] >= target), None)


def summary(records: list[dict], target: float = 0.8) -> str:
    """Markdown: AP@0.5 (effort so far) per round and picker, the effort to reach `target` and
    its ratio uncertainty / random, and the mean Spearman rho of each region measure."""
    key = "strokes" if records[0]["mode"] == "strokes" else "objects"
    by_picker = {p: [r for r in records if r["picker"] == p] for p in PICKERS}
    by_picker = {p: rows for p, rows in by_picker.items() if rows}
    rounds = max(len(rows) for rows in by_picker.values())
    lines = ["| picker | " + " | ".join(f"round {i}" if i == 0 else str(i) for i in range(rounds))
             + f" | {key} to reach {target:.2f} | compute min |",
             "|---|" + "---|" * (rounds + 2)]
    reached = {}
    for picker, rows in by_picker.items():
        reached[picker] = effort_to_reach(rows, target, key)
        cells = [f"{r['ap50']:.2f} ({r[key]})" for r in rows] + ["-"] * (rounds - len(rows))
        lines.append(f"| {picker} | " + " | ".join(cells) + f" | {reached[picker] if reached[picker] is not None else 'not reached'}"
                     f" | {rows[-1]['compute_min']:.1f} |")
    if reached.get("uncertainty") is not None and reached.get("random"):
        lines.append(f"\n{key} to reach {target:.2f}, uncertainty / random: "
                     f"{reached['uncertainty'] / reached['random']:.2f}")
    for measure in ("rho_entropy", "rho_split", "rho_combined"):
        values = [r[measure] for r in records if r.get(measure) is not None]
        if values:
            lines.append(f"{measure}: mean {np.mean(values):.3f} over {len(values)} rounds "
                         "(Spearman, region measure vs object errors at IoU 0.5)")
    return "\n".join(lines)


def plot(records: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    mode = records[0]["mode"]
    effort_key = "strokes" if mode == "strokes" else "objects"
    for picker in PICKERS:
        rows = [r for r in records if r["picker"] == picker]
        if rows:
            axes[0].plot([r[effort_key] for r in rows], [r["ap50"] for r in rows], "o-", label=picker)
            axes[1].plot([r["compute_min"] for r in rows], [r["ap50"] for r in rows], "o-", label=picker)
    axes[0].set_xlabel("strokes painted" if mode == "strokes" else "objects corrected")
    axes[1].set_xlabel("compute minutes (training + prediction)")
    for ax in axes:
        ax.axhline(0.8, color="gray", linestyle="--", linewidth=1)  # issue 9's target
        ax.set_ylabel("AP@0.5 on val")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("dsb", "isbi"), default="dsb")
    p.add_argument("--pool", type=int, default=4, help="images the simulated user annotates")
    p.add_argument("--val", type=int, default=20, help="val images scored after each round")
    p.add_argument("--min-area", type=float, default=0,
                   help="dsb: only images whose median object area is at least this (700: nuclei of 30 px and more)")
    p.add_argument("--shape", default=None, metavar="HxW",
                   help="dsb: only images of this size, e.g. 360x360 (one experiment: a user's own images)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0, help="training per round (warm start)")
    p.add_argument("--steps", type=int, default=None, help="training steps per round instead of seconds")
    p.add_argument("--mode", choices=("strokes", "correct"), default="strokes")
    p.add_argument("--pickers", nargs="+", choices=PICKERS, default=list(PICKERS))
    p.add_argument("--start", default=None, help="a model file or shipped model name to start from (default: new)")
    p.add_argument("--restart", action="store_true",
                   help="each round fine-tunes a fresh copy of --start on all annotations so far (no drift)")
    p.add_argument("--preset", default="fast")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="TrainConfig overrides, e.g. learning_rate=3e-4 object_diameter=12.3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: fair on a shared, loaded CPU)")
    p.add_argument("--name", default="", help="suffix of the result files")
    p.add_argument("--plot", action="store_true", help="write the PNG plot (needs matplotlib)")
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                   help="no run: merge result files of runs split by picker into results/annotation_effort_NAME")
    args = p.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import RESULTS, machine, save

    name = "annotation_effort" + (f"_{args.name}" if args.name else "")
    if args.merge:
        return merge(args.merge, name, args.plot)

    if args.dataset == "dsb":
        pool, val = (dsb_samples(split, n, args.seed, min_area=args.min_area, shape=args.shape)
                     for split, n in (("train", args.pool), ("val", args.val)))
    else:
        pool, val = isbi_samples(list(range(args.pool))), isbi_samples(list(range(10, 10 + args.val)))
    settings = dict(preset=args.preset, seconds=None if args.steps else args.seconds, steps=args.steps,
                    seed=args.seed, threads=args.threads)
    config = TrainConfig(**{**settings, **overrides(args.set)})  # --set seed=S: another training seed, same images
    print(f"machine: {machine(args.threads)}\n{HEADER}", flush=True)
    records = []
    for picker in args.pickers:
        start = _load_start(args.start)
        done = list(records)
        records += simulate(pool, val, picker, mode=args.mode, rounds=args.rounds, config=config, start=start,
                            seed=args.seed, restart=args.restart, log=lambda line: print(line, flush=True),
                            on_round=lambda rows: save(name, {'args': vars(args), 'records': done + rows}))
    print(summary(records))
    print(f"results: {save(name, {'args': vars(args), 'records': records})}")
    if args.plot:
        print(f"plot: {plot(records, RESULTS / f'{name}.png', _title(vars(args), len(val)))}")
    return 0


def _title(args: dict, n_val: int) -> str:
    start = f", from '{args['start']}'" if args.get("start") else ", new model"
    return (f"{args['dataset']}: {args['pool']} images annotated, {n_val} val, {args['rounds']} rounds of "
            f"{args['steps'] or args['seconds']:g} {'steps' if args['steps'] else 's'}{start}, by {args['mode']}")


def merge(paths: list[Path], name: str, with_plot: bool) -> int:
    """One result file, table and plot from runs of the same configuration split by picker."""
    import json

    from common import RESULTS, save

    runs = [json.loads(path.read_text()) for path in paths]
    records = [r for run in runs for r in run["records"]]
    args = {**runs[0]["args"], "pickers": sorted({r["picker"] for r in records}, key=PICKERS.index),
            "rounds": max(r["round"] for r in records) + 1}  # the rounds done: a run may have been stopped
    print(summary(records))
    print(f"results: {save(name, {'args': args, 'merged': [str(p.name) for p in paths], 'records': records})}")
    if with_plot:
        print(f"plot: {plot(records, RESULTS / f'{name}.png', _title(args, args['val']))}")
    return 0


def _load_start(start: str | None) -> Segmenter | None:
    if not start:
        return None
    try:
        from napari_unet.io.pretrained import available_models, model_path

        if start in available_models():
            start = model_path(start)
    except ImportError:
        pass
    return Segmenter.load(start)


if __name__ == "__main__":
    raise SystemExit(main())
