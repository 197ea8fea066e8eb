"""Command line: `napari-unet train | predict | evaluate | models | export-bioimageio`, the same core the widgets use, headless.

Every user mistake ends with one line on stderr and exit status 2, never a traceback
and never a half-written output (outputs are written atomically, models too).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from napari_unet.cli_parser import EXIT_USER_ERROR, build_parser
from napari_unet.cli_training_inputs import training_items_of
from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.scale import AUTO
from napari_unet.io.pretrained import available_models, describe, model_card, resolve
from napari_unet.nn.device import is_out_of_memory


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version or a usage error (already printed on one line)
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    try:
        commands = {"train": _train, "predict": _predict, "evaluate": _evaluate, "gui": _gui,
                    "export-bioimageio": _export_bioimageio, "models": _models}
        return commands[args.command](args)
    except UserInputError as error:
        print(f"napari-unet: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("napari-unet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output left (`napari-unet models | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as error:  # a bug or an environment problem: still one line unless --debug
        if args.debug:
            raise
        if is_out_of_memory(error):  # the user can fix it: smaller tiles, or the CPU
            print("napari-unet: error: out of GPU memory: lower --tile-size (and --block with --out-zarr) or use "
                  "--device cpu", file=sys.stderr)
            return EXIT_USER_ERROR
        gist = (str(error).strip().splitlines() or [""])[0]
        print(f"napari-unet: unexpected error: {type(error).__name__}: {gist} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


# --- train -------------------------------------------------------------------------------------


def _train(args) -> int:
    from napari_unet.io.outputs import check_destination
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.nn.training import TrainConfig, Trainer

    check_destination(args.out)  # before training: a model trained for an hour is never lost to a bad path
    _check_overwrite(args.overwrite, args.out)
    items = training_items_of(args)
    tuning = {"patch_size": args.patch_size, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
              "blend_with_start": args.blend_with_start}
    config = TrainConfig(
        preset=args.preset,
        **{name: value for name, value in tuning.items() if value is not None},
        steps=args.steps,
        seconds=args.seconds if args.seconds is not None or args.steps is not None else 60.0,
        device=args.device,
        seed=args.seed,
        object_diameter=args.diameter,
        loader_workers=args.loader_workers,
    )
    warm = Segmenter.load(resolve(args.resume)) if args.resume else None
    trainer = Trainer(items, config, segmenter=warm, class_names=args.classes)
    segmenter = _run_training(trainer, config, args.quiet)
    path = _save_or_rescue(segmenter, args.out)
    last = segmenter.history[-1]
    print(f"saved {path} ({last['steps']} steps in {last['seconds']:.0f} s, loss {last['loss']})")
    if trainer.tuning is not None:
        print(trainer.tuning.describe())
        if trainer.tuning.errors is not None:
            print(trainer.tuning.describe_errors(options=True))
    return 0


def _save_or_rescue(segmenter, out: str) -> Path:
    """Save the trained model to `out`; if that fails (a disk filled up while training), keep it in the
    temporary folder and say where, so the training run is not lost."""
    import tempfile

    try:
        return segmenter.save(out)
    except UserInputError as error:
        rescue = Path(tempfile.gettempdir()) / f"napari-unet-unsaved-{os.getpid()}-{Path(out).name}"
        try:
            segmenter.save(rescue)
        except UserInputError:
            raise error from None
        raise UserInputError(f"{error} The trained model was kept in {rescue}: move it where you want it") from error


def _run_training(trainer, config, quiet: bool):
    from tqdm import tqdm

    total = config.steps if config.steps is not None else config.seconds
    unit = "step" if config.steps is not None else "s"
    bar = tqdm(total=total, unit=unit, disable=quiet, desc="training", file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]{postfix}")
    generator = trainer.run()
    try:
        while True:
            record = next(generator)
            bar.n = record.step if config.steps is not None else min(record.elapsed, total)
            bar.set_postfix_str(record.stage or f"loss {record.loss:.3f}, {record.pixels_per_second / 1e6:.2f} Mpx/s, "
                                f"{record.device}", refresh=False)
            bar.refresh()
    except StopIteration as done:
        return done.value
    except KeyboardInterrupt:
        generator.close()  # the finally block records the run; keep what was learned
        print("\ninterrupted: saving the model trained so far", file=sys.stderr)
        return trainer.segmenter
    finally:
        bar.close()


# --- predict -----------------------------------------------------------------------------------


def _predict(args) -> int:
    from napari_unet.io.ome_zarr_plate import is_plate

    if args.out_dir or args.into_zarr or len(args.image) > 1 or is_plate(args.image[0]):
        return _predict_batch(args)  # a plate is a batch of fields
    folder = Path(args.image[0])
    if folder.is_dir() and folder.suffix.lower() != ".zarr":
        raise UserInputError(f"{folder} is a folder: give --out-dir to predict every image in it")
    if args.out_zarr:
        return _predict_to_zarr(args)
    from tqdm import tqdm

    from napari_unet.io.images import read_image
    from napari_unet.io.outputs import check_image_outputs, write_outputs
    from napari_unet.nn.device import pick_device
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.nn.volume import layout_of_file, predict_image

    outputs = [p for p in (args.instances, args.semantic, args.probabilities) if p]
    if not outputs:
        raise UserInputError("nothing to write: give at least one of --instances, --semantic, --probabilities "
                             "(or --out-dir)")
    check_image_outputs(outputs)
    _check_overwrite(args.overwrite, *outputs)
    segmenter = Segmenter.load(resolve(args.model), device=pick_device(args.device))
    image = read_image(args.image[0])
    layout = layout_of_file(tuple(image.shape), args.channel_axis, Path(args.image[0]).name)
    with tqdm(total=0, unit="tile", disable=args.quiet, desc="predicting", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        planes = len(layout.planes())
        result = predict_image(
            segmenter, image, layout, _instance_params(args, segmenter.instance_params) if args.instances else None,
            frames=args.frames,
            z_anisotropy=args.z_anisotropy, diameter=_diameter(args.diameter), tile_size=args.tile_size, overlap=args.overlap,
            probabilities=bool(args.probabilities), flips=args.flips,
            progress=(lambda done, total: bar.set_description(f"predicting plane {min(done + 1, total)}/{total}"))
            if planes > 1 else None,
            tile_progress=progress)
    results = {}
    if args.semantic:
        results[args.semantic] = result.semantic
    if args.probabilities:
        results[args.probabilities] = result.probabilities
    if args.instances:
        results[args.instances] = result.instances
    write_outputs(results)  # all or nothing
    if args.instances:
        print(f"{int(result.instances.max())} objects", file=sys.stderr)
    return 0


# --- export-bioimageio -------------------------------------------------------------------------


def _export_bioimageio(args) -> int:
    from napari_unet.io.bioimageio import export_package
    from napari_unet.io.outputs import check_destination

    check_destination(args.out)
    _check_overwrite(args.overwrite, args.out)
    path = export_package(args.model, args.out, params=_instance_params(args), license=args.license)
    print(f"saved {path}")
    return 0


def _instance_params(args, model: InstanceParams | None = None) -> InstanceParams:
    """The model's instance settings (`model`; None: read from --model) with the options given overriding them."""
    if model is None:
        from napari_unet.nn.segmenter import Segmenter

        model = Segmenter.load(resolve(args.model)).instance_params
    given = {name: getattr(args, name) for name in InstanceParams.__dataclass_fields__
             if getattr(args, name) is not None}
    return replace(model, **given)


def _diameter(text: str) -> float | str:
    if text == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UserInputError(f"--diameter must be a positive number of pixels or {AUTO}, got {text!r}")
    return value


# --- models ------------------------------------------------------------------------------------


def _models(args) -> int:
    names = available_models()
    if not names:
        print("no pretrained models are installed")
    for name in names:
        print(describe(model_card(name)) + "\n")
    return 0


def _predict_to_zarr(args) -> int:
    """A 2D image of any size into one zarr store (`cli_zarr`)."""
    from napari_unet.cli_zarr import predict_to_zarr_command

    if any((args.instances, args.semantic, args.probabilities)):
        raise UserInputError("with --out-zarr choose outputs with --outputs, not --instances/--semantic/--probabilities")
    _check_overwrite(args.overwrite, args.out_zarr)
    diameter = _diameter(args.diameter)
    return predict_to_zarr_command(args, _instance_params(args) if "instances" in args.outputs else None,
                                   None if diameter == AUTO else diameter)  # auto: the model's


def _predict_batch(args) -> int:
    """Many images on dask.distributed; bad inputs are reported and skipped; exit 2 if any failed."""
    import os

    from tqdm import tqdm

    from napari_unet.nn.batch import BatchOptions, collect_inputs, run_batch

    if not args.out_dir and not args.into_zarr:
        raise UserInputError("several images: give --out-dir for their outputs (or --into-zarr for OME-Zarr inputs)")
    if args.out_dir and args.into_zarr:
        raise UserInputError("give either --out-dir (files) or --into-zarr (labels in each OME-Zarr input), not both")
    if any((args.instances, args.semantic, args.probabilities)):
        raise UserInputError("with --out-dir choose outputs with --outputs, not --instances/--semantic/--probabilities")
    inputs = collect_inputs(args.image)
    workers = args.workers or os.cpu_count() or 1
    options = BatchOptions(kinds=tuple(args.outputs), params=_instance_params(args), channel_axis=args.channel_axis,
                           frames=args.frames, z_anisotropy=args.z_anisotropy, tile_size=args.tile_size,
                           overlap=args.overlap, diameter=_diameter(args.diameter), flips=args.flips,
                           device=args.device,
                           threads=None if args.scheduler else max(1, (os.cpu_count() or 1) // workers),
                           into_zarr=args.into_zarr)
    with tqdm(total=len(inputs), unit="image", disable=args.quiet, desc="predicting", file=sys.stderr) as bar:

        def done(name: str, status: str, message: str) -> None:
            if status == "failed":
                bar.write(f"napari-unet: skipped {name}: {message}", file=sys.stderr)
            bar.update()

        summary = run_batch(args.model, inputs, args.out_dir, options, scheduler=args.scheduler,
                            n_workers=args.workers, overwrite=args.overwrite, resume=args.resume_batch, on_done=done)
    print(summary.line(), file=sys.stderr)
    return EXIT_USER_ERROR if summary.failed else 0


# --- evaluate ----------------------------------------------------------------------------------


def _evaluate(args) -> int:
    from napari_unet.functionals.error_kinds import total_error_kinds
    from napari_unet.functionals.metrics import instance_scores
    from napari_unet.io.images import read_labels

    if len(args.truth) != len(args.pred):
        raise UserInputError(f"got {len(args.truth)} --truth but {len(args.pred)} --pred: give them in pairs")
    truths = [read_labels(p) for p in args.truth]
    preds = [read_labels(p) for p in args.pred]
    for t, p, tp, pp in zip(truths, preds, args.truth, args.pred):
        if t.shape != p.shape:
            raise UserInputError(f"{tp} is {t.shape} but {pp} is {p.shape}: they must have the same shape")
    print(instance_scores(truths, preds).table())
    print(total_error_kinds(zip(truths, preds)).report())
    return 0


# --- gui ---------------------------------------------------------------------------------------


def _gui(args) -> int:
    from napari_unet.napari.rendering import ASYNC_ENVIRONMENT

    # napari reads big images' tiles off the GUI thread (napari/rendering.py); a user's own choice wins
    os.environ.setdefault(ASYNC_ENVIRONMENT, "1")
    from napari_unet.widgets.launch import launch  # napari and Qt load only here

    launch(None if args.sample == "none" else args.sample, args.images)
    return 0


# --- shared ------------------------------------------------------------------------------------


def _check_overwrite(overwrite: bool, *paths: str) -> None:
    from napari_unet.io.ome_zarr_write import looks_like_zarr

    for path in paths:
        if Path(path).exists() and not overwrite:
            raise UserInputError(f"{path} already exists: pass --overwrite to replace it")
        if Path(path).is_dir() and any(Path(path).iterdir()) and not looks_like_zarr(Path(path)):
            raise UserInputError(f"{path} is a folder that is not a zarr store: choose another name "
                                 "(--overwrite would delete all it holds)")
