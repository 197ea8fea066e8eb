"""The command line's grammar: every option, its help and its range, checked as the core checks it.

Kept apart from `cli`, which runs the commands, so either can be read on its own.
"""

from __future__ import annotations

import argparse

from napari_unet import __version__, limits
from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.scale import AUTO
from napari_unet.nn.device import DEVICE_CHOICES
from napari_unet.nn.inference import DEFAULT_FLIPS, FLIP_CHOICES

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block would bury the one line that matters."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole(low: int, high: int | None = None):
    """argparse type: a whole number in [low, high], checked as the core checks it."""

    def convert(text: str) -> int:
        try:
            return limits.whole_number("the value", int(text), low, high)
        except (ValueError, UserInputError) as error:
            raise argparse.ArgumentTypeError(_reason(text, error, "a whole number")) from error

    return convert


def _real(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite number in a range (NaN and infinity are never a setting)."""

    def convert(text: str) -> float:
        try:
            return limits.real_number("the value", float(text), low, high, low_open=low_open, high_open=high_open)
        except (ValueError, UserInputError) as error:
            raise argparse.ArgumentTypeError(_reason(text, error, "a number")) from error

    return convert


def _reason(text: str, error: Exception, kind: str) -> str:
    return str(error) if isinstance(error, UserInputError) else f"{text!r} is not {kind}"


class _AppendLabels(argparse.Action):
    """Collect --instances/--scribbles in the order given, so they pair with --image in order."""

    def __call__(self, parser, namespace, values, option_string=None):
        kind = option_string.lstrip("-")
        namespace.labels = [*(namespace.labels or []), (kind, values)]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-unet", description="Train and apply napari-unet U-Nets headless.")
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train (or continue training) a model on annotated images")
    train.add_argument("--image", action="append", default=[], help="training image; repeat for more")
    train.add_argument("--instances", action=_AppendLabels, dest="labels", help="dense instance labels for the image")
    train.add_argument("--scribbles", action=_AppendLabels, dest="labels",
                       help="sparse labels: 0 = not annotated, 1 = background, 2.. = classes")
    train.add_argument("--dataset", action="append", default=[], help="napari-unet OME-Zarr dataset to train on")
    train.add_argument("--out", required=True, help="where to save the model checkpoint (.pt)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=_real(0.0, low_open=True), help="training time budget in seconds (default 60)")
    budget.add_argument("--steps", type=_whole(1), help="number of training steps")
    train.add_argument("--resume", help="checkpoint file or shipped model name (napari-unet models) to fine-tune")
    train.add_argument("--preset", default="fast", help="model size: fast, balanced or accurate (default fast)")
    train.add_argument("--classes", nargs="+", help="class names for labels 1..K, background first")
    train.add_argument("--patch-size", type=_whole(16, limits.MAX_PATCH_SIZE), help="training patch side in pixels (default 128)")
    train.add_argument("--batch-size", type=_whole(1, limits.MAX_BATCH_SIZE), help="patches per step (default 4)")
    train.add_argument("--learning-rate", type=_real(0.0, 1.0, low_open=True),
                       help="peak learning rate (default 0.003 for a new model, 0.001 to fine-tune --resume)")
    train.add_argument("--blend-with-start", type=_real(0.0, 1.0), help="after fine-tuning, move the weights this fraction "
                       "back to the --resume model's, or to the model it was itself blended back to (default 0.5 if "
                       "it learnt from more images than these, else 0)")
    train.add_argument("--seed", type=_whole(0, 2**32 - 1), default=0)
    train.add_argument("--loader-workers", type=_whole(0, 64), default=0,
                       help="processes drawing training patches on a GPU, which one core cannot keep busy (default 0)")
    train.add_argument("--diameter", type=_real(0.0, low_open=True),
                       help="typical object diameter in pixels (default: measured from --instances)")
    _add_common(train)

    predict = sub.add_parser("predict", help="segment images with a trained model (one, or a batch with --out-dir)")
    predict.add_argument("--model", required=True, help="model checkpoint (.pt), BioImage.IO package (.zip) or shipped model name")
    predict.add_argument("--image", action="append", required=True,
                         help="image file; for a batch repeat it, or give a folder or a quoted glob ('imgs/*.tif')")
    predict.add_argument("--instances", help="output: instance labels (one id per object)")
    predict.add_argument("--semantic", help="output: class per pixel (1 = background, 2.. = classes)")
    predict.add_argument("--probabilities", help="output: per-class probabilities (K, H, W) float32")
    predict.add_argument("--diameter", default=AUTO,
                         help="typical object diameter in pixels, or auto: measured from a first pass (default; "
                         "with --out-zarr: the training images' diameter)")
    predict.add_argument("--flips", type=int, choices=FLIP_CHOICES, default=DEFAULT_FLIPS,
                         help="test-time flips: average the network over this many mirrored/turned copies of "
                         f"each tile (1: off; N times the network time; default {DEFAULT_FLIPS})")
    predict.add_argument("--tile-size", type=_whole(32, limits.MAX_TILE_SIZE), default=512)
    predict.add_argument("--overlap", type=_whole(0, limits.MAX_TILE_SIZE), default=64)
    _add_instance_options(predict)
    predict.add_argument("--z-anisotropy", type=_real(0.0, low_open=True), default=1.0,
                         help="z step / pixel size of a stack, for its 3D objects (default 1)")
    predict.add_argument("--frames", action="store_true",
                         help="the stack axis of a 3-D image is time: objects per frame, not 3D objects")
    predict.add_argument("--out-zarr", help="output for an image bigger than memory: one zarr store with "
                         "semantic, instances (and probabilities if --outputs names them), written block by block")
    predict.add_argument("--block", type=_whole(16, limits.MAX_TILE_SIZE), default=2048, help="block edge in pixels for --out-zarr (default 2048)")
    batch = predict.add_argument_group("batch (several images, on dask.distributed)")
    batch.add_argument("--out-dir", help="write DIR/<image stem>_<output>.tif for every image")
    batch.add_argument("--into-zarr", action="store_true",
                       help="write the outputs into each OME-Zarr input (every field of a plate) as its label "
                       "images labels/instances, labels/semantic, instead of files in --out-dir")
    batch.add_argument("--outputs", nargs="+", choices=["instances", "semantic", "probabilities"],
                       default=["instances"], help="what to write per image with --out-dir or --out-zarr "
                       "(default instances)")
    batch.add_argument("--scheduler", help="address of a running dask scheduler (tcp://HOST:PORT); "
                       "default: a local cluster on this machine (for a batch, or the blocks of --out-zarr)")
    batch.add_argument("--workers", type=_whole(1, 256), help="local worker processes (default: one per core; "
                       "--out-zarr with 1: in this process)")
    batch.add_argument("--resume-batch", action="store_true",
                       help="skip images whose outputs already exist (continue a stopped batch)")
    _add_common(predict)

    export = sub.add_parser("export-bioimageio", help="write a model as a BioImage.IO model package (.zip)")
    export.add_argument("--model", required=True, help="model checkpoint (.pt)")
    export.add_argument("--out", required=True, help="package to write (.zip)")
    export.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the weights (default CC-BY-4.0)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing package")
    _add_instance_options(export)

    gui = sub.add_parser("gui", help="open napari with the napari-unet dock and sample data")
    gui.add_argument("--sample", default="nuclei", choices=["nuclei", "em", "none"],
                     help="sample to open with its example scribbles (default nuclei)")
    gui.add_argument("images", nargs="*", help="image files or napari-unet datasets (.zarr) to open as well")

    sub.add_parser("models", help="list the shipped pretrained models with their model cards")

    evaluate = sub.add_parser("evaluate", help="instance AP of predictions against ground truth, and the kinds of mistake")
    evaluate.add_argument("--truth", action="append", required=True, help="ground-truth instance labels")
    evaluate.add_argument("--pred", action="append", required=True, help="predicted instance labels")
    return parser


def _add_instance_options(parser: argparse.ArgumentParser) -> None:
    """How objects are split from the network's outputs (InstanceParams), checked as the core checks them.

    Each defaults to the model's own value (tuned on its training annotations, else InstanceParams'):
    None here means "not given", so only the options typed on the command line override the model.
    """
    model = " (default: the model's, tuned on its training annotations; else {})"
    parser.add_argument("--threshold", type=_real(0.0, 1.0, low_open=True, high_open=True),
                        help="foreground probability threshold" + model.format(InstanceParams.threshold))
    parser.add_argument("--min-size", type=_whole(0),
                        help="smallest object kept, in pixels" + model.format(InstanceParams.min_size))
    parser.add_argument("--seed-spacing", type=_whole(1, limits.MAX_SEED_SPACING),
                        help="seeds closer than this merge, in pixels" + model.format(InstanceParams.seed_spacing))
    parser.add_argument("--seed-prominence", type=_real(0.0, 1.0),
                        help="how far a distance-map peak must rise above its surroundings to seed an object"
                        + model.format(InstanceParams.seed_prominence))
    parser.add_argument("--border-evidence", type=_real(0.0, 1.0),
                        help="two touching objects stay apart only where the boundary head marks their border at "
                             "least this fraction as clearly as the objects' outer edges (0: keep every split)"
                        + model.format(InstanceParams.border_evidence))
    parser.add_argument("--min-confidence", type=_real(0.0, 1.0),
                        help="an object stays if its mean foreground probability is at least this fraction of the "
                             "image's surest objects' (their 90th percentile; 0: keep every object)"
                        + model.format(InstanceParams.min_confidence))


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--channel-axis", type=int, help="axis holding channels of a multichannel 2D image")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
