"""`napari-unet predict --out-zarr`: a 2D image of any size into one zarr store, block by block.

Its blocks are spread over dask workers (`nn.chunked_jobs`: `--workers N`, by default one per
core, or `--scheduler ADDR`), or predicted in this process with `--workers 1` (`nn.chunked`,
what the dock runs). Lazy zarr / OME-Zarr inputs are read block by block; other files are read
whole (and copied into the store for the workers). This path imports
no napari, Qt or ome-zarr, so it runs on machines with only the compute stack.
"""

from __future__ import annotations

import os
import sys
import time

from napari_unet.functionals.instances import InstanceParams
from napari_unet.io.pretrained import resolve


def predict_to_zarr_command(args, params: InstanceParams | None, diameter: float | None) -> int:
    """Run the parsed `predict --out-zarr` arguments (already checked); returns the exit status."""
    from tqdm import tqdm

    from napari_unet.functionals.normalisation import as_channels_first
    from napari_unet.io.images import read_image
    from napari_unet.nn.chunked import limit_heap_arenas, predict_to_zarr
    from napari_unet.nn.device import pick_device
    from napari_unet.nn.segmenter import Segmenter

    limit_heap_arenas()  # before zarr starts its threads: memory stays bounded block after block
    workers = args.workers or os.cpu_count() or 1
    spread = bool(args.scheduler) or workers > 1
    # spread: this process only reads statistics and sends the model; the workers load it on --device
    segmenter = Segmenter.load(resolve(args.model), device=pick_device("cpu" if spread else args.device))
    settings = dict(block=args.block, margin=args.overlap, probabilities="probabilities" in args.outputs,
                    tile_size=args.tile_size, diameter=diameter, flips=args.flips)
    ends = [("start", time.perf_counter())]  # each stage and when its last task finished, in order
    with tqdm(total=0, unit="block", disable=args.quiet, desc="predicting", file=sys.stderr) as bar:

        def progress(stage: str, done: int, total: int) -> None:  # the bar starts again with each stage
            if done == 1 or bar.total != total:
                bar.set_description(stage, refresh=False)
                bar.reset(total)
            bar.n = done
            bar.refresh()
            if ends[-1][0] == stage:
                ends.pop()
            ends.append((stage, time.perf_counter()))

        if spread:
            from napari_unet.nn.chunked_jobs import BlockFailed, predict_to_zarr_on_cluster

            try:
                objects = predict_to_zarr_on_cluster(
                    segmenter, args.image[0], args.out_zarr, params, channel_axis=args.channel_axis,
                    device=args.device, threads=None if args.scheduler else max(1, (os.cpu_count() or 1) // workers),
                    scheduler=args.scheduler, n_workers=workers, progress=progress, **settings)
            except BlockFailed as error:
                bar.close()
                print(f"napari-unet: error: {error}; nothing was written to {args.out_zarr}", file=sys.stderr)
                return 1
        else:
            image = as_channels_first(read_image(args.image[0]), channel_axis=args.channel_axis)
            objects = predict_to_zarr(segmenter, image, args.out_zarr, params, progress=progress, **settings)
    seconds = [f"{stage} {end - before:.1f}" for (stage, end), (_, before) in zip(ends[1:], ends)]
    print(f"seconds per stage: {', '.join(seconds)}", file=sys.stderr)
    print(f"{objects} objects", file=sys.stderr)
    return 0
