"""Inference speed and memory: tiling overhead, CLI scaling, GFLOP/s, post-processing share.

Tiling overhead; CLI time and peak memory against image size; GFLOP/s against the CPU's
measured convolution peak; the share of instance post-processing.

    python benchmarks/inference_speed.py [--sizes 2048 4096 8192] [--preset fast]
        [--tiling-sizes 1024 2048] [--post-size 2048] [--sections tiling cli flops post]

Issue targets checked (on the machine that runs it; run on a quiet machine, timings are medians):
  1. tiling: tiled `predict` (tile 512, overlap 64) costs at most 1.25x one whole-image pass;
  2. cli: `napari-unet predict` of a 8192^2 uint16 image peaks under 2.5 GB, and its time per
     pixel stays within 15% from 2048^2 to 8192^2;
  3. flops: inference reaches at least 50% of the measured dense-convolution peak GFLOP/s;
  4. post: instance post-processing takes less than half the network's time.

The images are synthetic nuclei (Voronoi-clipped discs, blurred, with noise) in uint16. The
model is trained for `--train-steps` steps through the CLI on a 256^2 synthetic image first,
so predictions (and hence the watershed's work) look like a real model's; network speed does
not depend on the weights.

One module per section (inference_tiling, inference_cli, inference_gflops, inference_post), with
the synthetic images and model in synthetic_nuclei and the timers in inference_timing; this
file holds the targets, their verdicts and the command line.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import machine, save
from inference_cli import CLI_HEADER, cli_scaling
from inference_gflops import flops
from inference_post import post_share
from inference_tiling import TILING_HEADER, tiling
from synthetic_nuclei import make_model

from napari_unet.nn.segmenter import Segmenter

SECTIONS = ("tiling", "cli", "flops", "post")
TARGETS = {"tiling_ratio": 1.25, "peak_gb": 2.5, "linearity": 0.15, "inference_peak_fraction": 0.5,
           "post_share": 0.5}


def summarise(results: dict, sizes: list[int]) -> list[dict]:
    """One row per issue target: what was measured and whether it meets the target."""
    rows = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "met": "n/a" if met is None else ("yes" if met else "NO")})

    for r in results.get("tiling", []):
        add(f"tiled / one pass <= {TARGETS['tiling_ratio']} ({r['size']}^2)", f"{r['ratio_vs_one_tile']:.2f}",
            r["ratio_vs_one_tile"] <= TARGETS["tiling_ratio"])
    cli = results.get("cli", {}).get("rows", [])
    if cli:
        last = cli[-1]
        if last["size"] >= 8192:
            add(f"peak RSS < {TARGETS['peak_gb']} GB at 8192^2", f"{last['peak_gb']:.2f} GB at {last['size']}^2",
                last["peak_gb"] < TARGETS["peak_gb"])
        elif len(cli) >= 2 and last["size"] >= 2048:  # linear in pixels from the two largest sizes
            a, b = cli[-2], cli[-1]
            slope = (b["peak_gb"] - a["peak_gb"]) / (b["megapixels"] - a["megapixels"])
            estimate = b["peak_gb"] + slope * (8192**2 / 1e6 - b["megapixels"])
            add(f"peak RSS < {TARGETS['peak_gb']} GB at 8192^2",
                f"{estimate:.2f} GB extrapolated from {a['size']}^2 and {b['size']}^2", None)
        if len(cli) >= 2:
            first = cli[0]
            for key, what in (("time_per_px_vs_first", "wall"), ("compute_time_per_px_vs_first", "wall less startup")):
                add(f"time/px within {TARGETS['linearity']:.0%}, {first['size']}^2 to {last['size']}^2 ({what})",
                    f"{last[key]:.2f}x", abs(last[key] - 1) <= TARGETS["linearity"])
    if "flops" in results:
        f = results["flops"]
        for row in f["rows"]:
            target = row["what"].startswith("inference, predict")
            add(f"{row['what']} >= {TARGETS['inference_peak_fraction']:.0%} of peak" if target else
                f"{row['what']}: % of peak (no target)", f"{row['fraction_of_peak']:.1%} of "
                f"{f['peak_gflops']:.0f} GFLOP/s", row["fraction_of_peak"] >= TARGETS["inference_peak_fraction"]
                if target else None)
    if "post" in results:
        for row in results["post"]["rows"]:
            add(f"instances < {TARGETS['post_share']:.0%} of network ({row['case']})",
                f"{row['share_of_network']:.2f}", row["share_of_network"] < TARGETS["post_share"])
    return rows


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192], help="CLI image sizes")
    parser.add_argument("--tiling-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--post-size", type=int, default=2048, help="image size for the FLOP/s and post sections")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--repeats", type=int, default=3, help="timings are medians of this many runs")
    parser.add_argument("--cli-repeats", type=int, default=1, help="CLI runs per size (the 8192^2 one is long)")
    parser.add_argument("--train-steps", type=int, default=150, help="CLI training steps first (0: untrained)")
    parser.add_argument("--cli-diameter", choices=["auto", "trained", "canonical"], default="auto",
                        help="CLI section: predict at the measured diameter (auto), the training one, "
                             "or the network's own (canonical: no resampling)")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    results: dict = {"preset": args.preset, "targets": TARGETS, "train_steps": args.train_steps}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        model = make_model(args.preset, args.train_steps, folder)
        print(f"model: {args.preset}, trained {args.train_steps} steps in {time.perf_counter() - start:.0f} s",
              flush=True)
        segmenter = Segmenter.load(model)
        torch.set_num_threads(os.cpu_count() or 1)  # as the CLI and training do

        if "tiling" in args.sections:
            print(f"\n## Tiling overhead (target: tiled / one pass <= {TARGETS['tiling_ratio']})\n")
            print(TILING_HEADER, flush=True)
            results["tiling"] = tiling(segmenter, args.tiling_sizes, args.repeats)

        if "cli" in args.sections:
            print(f"\n## napari-unet predict through the CLI (targets: peak < {TARGETS['peak_gb']} GB at 8192^2, "
                  f"time/px within {TARGETS['linearity']:.0%} from 2048^2 to 8192^2)\n")
            print(CLI_HEADER, flush=True)
            results["cli"] = cli = cli_scaling(model, args.sizes, folder, args.cli_repeats, args.cli_diameter)
            print(f"\nstartup (64^2 image): {cli['startup_s']:.1f} s, {cli['startup_gb']:.2f} GB peak RSS")

        if "flops" in args.sections:
            print(f"\n## GFLOP/s against the measured convolution peak (target: inference >= "
                  f"{TARGETS['inference_peak_fraction']:.0%})\n")
            results["flops"] = f = flops(segmenter, args.post_size, args.repeats)
            print("| dense convolution | GFLOP/s |\n|---|---|")
            for row in f["conv_shapes"]:
                print(f"| {row['conv']} | {row['gflops']:.1f} |")
            print(f"\npeak: {f['peak_gflops']:.1f} GFLOP/s; U-Net {args.preset}: {f['mflops_per_pixel']:.4f} "
                  f"MFLOP per pixel forward\n")
            print("| workload | GFLOP/s | % of peak |\n|---|---|---|")
            for row in f["rows"]:
                print(f"| {row['what']} | {row['gflops']:.1f} | {row['fraction_of_peak']:.0%} |")

        if "post" in args.sections:
            print(f"\n## Instance post-processing vs network, {args.post_size}^2 (target: < "
                  f"{TARGETS['post_share']:.0%} of the network time)\n")
            results["post"] = p = post_share(segmenter, args.post_size, args.repeats)
            print(f"predict {p['predict_s']:.2f} s (network forward passes {p['network_s']:.2f} s); "
                  f"semantic() {p['semantic_s']:.2f} s; {p['true_objects']} objects drawn\n")
            print("| prediction | instances (s) | objects | / predict | / network passes | "
                  "costliest functions (own time) |\n|---|---|---|---|---|---|")
            for row in p["rows"]:
                steps = ", ".join(f"{k} {v:.2f} s" for k, v in list(row["stages"].items())[:3])
                print(f"| {row['case']} | {row['instances_s']:.2f} | {row['objects']} | "
                      f"{row['share_of_predict']:.2f} | {row['share_of_network']:.2f} | {steps} |")

    verdicts = summarise(results, args.sizes)
    if verdicts:
        print("\n## Targets\n\n| target | measured | met |\n|---|---|---|")
        for row in verdicts:
            print(f"| {row['target']} | {row['measured']} | {row['met']} |")
        results["verdicts"] = verdicts
    print(f"\nresults: {save('inference_speed', results)}")


if __name__ == "__main__":
    main()
