"""Train one new model with a variant of the training recipe, for a screen on `train` images (issue 8).

    python benchmarks/recipe_variants.py VARIANT SEED OUT.pt [--steps 1347] [--data DSB2018]

Trains on seed SEED's 12 fluorescence `train` images as generalisation.py does (same images, steps,
one torch thread; CUDA when there is one) and saves the model untuned: `instance_tuning.py --model
OUT.pt --seed SEED` then tunes it on those 12 images and scores it on 60 other `train` images, so
`val` is not used to judge a variant. Variants of what TrainConfig does not expose (the patch
sampler's augmentation) are swapped in here, in this process only; `benchmarks/gpu_recipe_screen.sh`
runs many side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import run_training, shared_data
from generalisation import index, load, pick_training
from scipy import ndimage

import napari_unet.nn.patch_stream as patch_stream
from napari_unet.functionals.data import PatchSampler, TrainingImage
from napari_unet.nn.training import TrainConfig, Trainer


def stronger_intensity(self: PatchSampler, image: np.ndarray) -> np.ndarray:
    """PatchSampler._intensity with wider gamma, blur and noise, each on more of the patches."""
    rng = self.rng
    if rng.random() < 0.7:
        image = np.clip(image, 0.0, None) ** np.exp(rng.normal(0.0, 0.5))
    if rng.random() < 0.3:
        image = ndimage.gaussian_filter(image, (0, *(2 * [rng.uniform(0.5, 2.0)])))
    if rng.random() < 0.5:
        image = image + rng.normal(0.0, rng.uniform(0.01, 0.15), image.shape)
    return image


VARIANTS: dict[str, dict] = {
    "base": {},  # the shipped recipe
    "lr2": {"train": {"learning_rate": 2e-3}},  # peak rate 2e-3 instead of 3e-3
    "lr15": {"train": {"learning_rate": 1.5e-3}},
    "bpw2": {"train": {"boundary_pos_weight": 2.0}},  # boundary head's positive weight 2 instead of 3
    "group": {"train": {"norm": "group"}},  # GroupNorm: no running statistics carried to other images
    "sj50": {"sampler": {"scale_jitter": 0.5}},  # zoom up to 1.5x either way instead of 1.25x
    "int": {"intensity": stronger_intensity},
    # 2 patches a step instead of 4: a step costs half (BENCHMARKS.md), so the same seconds buy twice the
    # steps; run with --steps 2694 to match 1347 steps of 4
    "b2": {"train": {"batch_size": 2}},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("seed", type=int, help="whose 12 training images (generalisation.py's draw), and the training seed")
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=1347)
    p.add_argument("--data", type=Path, default=shared_data("dsb2018-stage1-train"))
    args = p.parse_args()
    variant = VARIANTS[args.variant]
    if "sampler" in variant:
        patch_stream.PatchSampler = lambda *a, **k: PatchSampler(*a, **{**k, **variant["sampler"]})
    if "intensity" in variant:
        PatchSampler._intensity = variant["intensity"]
    entries = index(args.data)
    items = [TrainingImage.from_instances(*load(args.data, e), name=e.id)
             for e in pick_training(entries, "fluorescence", 12, args.seed)]
    config = TrainConfig(steps=args.steps, seed=args.seed, threads=1, tune_instances=False, **variant.get("train", {}))
    segmenter = run_training(Trainer(items, config))
    segmenter.save(args.out)
    print(f"{args.variant} seed {args.seed}: {segmenter.history[-1]['steps']} steps, saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
