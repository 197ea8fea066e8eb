"""BioImage.IO model packages: export a napari-unet model, and read one back.

The package (bioimage.io spec 0.5) holds weights (a PyTorch state dict with a self-contained
architecture file, and TorchScript) that take a percentile-normalised (batch, channel, y, x)
image and give the activated outputs: class probabilities, then the boundary and distance
heads, so any BioImage.IO consumer can run it. The napari-unet checkpoint travels inside as an attachment with the class names and
instance parameters in `config`, so `predict --model model.zip` and the dock get back
exactly the model that was exported. Building a package needs the optional
`bioimageio` extra; reading one back needs nothing beyond the core.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import keyword
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from napari_unet import __version__
from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.io import atomic
from napari_unet.nn import model as model_module
from napari_unet.nn.model import ModelConfig, UNet

if TYPE_CHECKING:
    from napari_unet.nn.segmenter import Segmenter

CHECKPOINT_NAME = "napari_unet_checkpoint.pt"
TEST_SIZE = 128  # test tensors are TEST_SIZE x TEST_SIZE: a multiple of every allowed 2**depth
UNET_DOI = "10.1007/978-3-319-24574-4_28"


def is_package(path: str | os.PathLike) -> bool:
    """Whether `path` is a BioImage.IO package (a zip with an rdf.yaml; torch checkpoints are zips too)."""
    if not (Path(path).is_file() and zipfile.is_zipfile(path)):
        return False
    try:
        with zipfile.ZipFile(path) as package:
            return any(name in package.namelist() for name in ("rdf.yaml", "bioimageio.yaml"))
    except (zipfile.BadZipFile, OSError):
        return False


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The napari-unet checkpoint inside a BioImage.IO package exported by napari-unet."""
    try:
        with zipfile.ZipFile(path) as package:
            if CHECKPOINT_NAME not in package.namelist():
                raise UserInputError(
                    f"{path} is a zip file without a napari-unet model in it: napari-unet reads back the "
                    "BioImage.IO packages it exported (they hold the checkpoint as an attachment)"
                )
            data = package.read(CHECKPOINT_NAME)
    except (zipfile.BadZipFile, OSError) as error:
        raise UserInputError(f"could not read {path} as a BioImage.IO package: {error}") from error
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class ActivatedUNet(torch.nn.Module):
    """The U-Net with softmax over the classes and sigmoid on the instance heads: what consumers use.

    Its source and that of nn/model.py form the package's architecture file, so it is built
    from keyword arguments and needs nothing but torch.
    """

    def __init__(self, in_channels: int, n_classes: int, depth: int, base_width: int, norm: str):
        super().__init__()
        self.net = UNet(ModelConfig(in_channels, n_classes, depth, base_width, norm))
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x).float()
        return torch.cat([logits[:, : self.n_classes].softmax(1), logits[:, self.n_classes :].sigmoid()], 1)


def _activated(segmenter) -> ActivatedUNet:
    net = ActivatedUNet(**segmenter.config.to_dict())
    net.net.load_state_dict(segmenter.net.state_dict())
    return net.eval()


def _architecture_source() -> str:
    """nn/model.py followed by ActivatedUNet: one file that builds the network from its keyword arguments."""
    return inspect.getsource(model_module) + "\n\n" + inspect.getsource(ActivatedUNet)


EXPORT_STAGES = 3  # progress(done, EXPORT_STAGES): checkpoint read, tensors and weights made, package zipped


def export_package(
    model: str | os.PathLike | Segmenter,
    out: str | os.PathLike,
    *,
    params: InstanceParams = InstanceParams(),
    license: str = "CC-BY-4.0",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `model` (a napari-unet checkpoint file, or a Segmenter in memory) as a BioImage.IO package `out` (.zip).

    A Segmenter is moved to the CPU: pass a copy of one that is in use.
    progress(done, EXPORT_STAGES) after each stage, for the dock's progress bar.
    """
    from napari_unet.nn.segmenter import Segmenter

    spec = _bioimageio_spec()
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserInputError(f"a BioImage.IO package is a .zip file: name it {out.with_suffix('.zip').name}")
    report = progress or (lambda done, total: None)
    with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-") as tmp:
        folder = Path(tmp)
        if isinstance(model, Segmenter):  # the checkpoint travels in the package: write it first
            segmenter, model = model, model.save(folder / CHECKPOINT_NAME)
        else:
            segmenter = Segmenter.load(model)
        report(1, EXPORT_STAGES)
        description = _describe(spec, segmenter, Path(model), folder, params, license)
        report(2, EXPORT_STAGES)
        packed = folder / out.name
        try:
            spec.save_bioimageio_package(description, output_path=packed)
            atomic.write_file(out, lambda temp: shutil.move(packed, temp))  # a killed write leaves no half file
        except OSError as error:
            raise UserInputError(f"could not write {out}: {error.strerror or error}") from error
        report(3, EXPORT_STAGES)
    return out


def check_extra() -> None:
    """Refuse with the install command when the optional `bioimageio` extra is missing (without importing it)."""
    if importlib.util.find_spec("bioimageio") is None or importlib.util.find_spec("bioimageio.spec") is None:
        raise UserInputError(
            "BioImage.IO export needs the bioimageio extra: pip install 'napari-unet[bioimageio]'"
        )


def _bioimageio_spec():
    check_extra()
    import bioimageio.spec as spec

    return spec


def _describe(spec, segmenter, model: Path, folder: Path, params: InstanceParams, license: str):
    """The spec 0.5 model description, with its files (weights, test tensors, cover, docs) in `folder`."""
    from bioimageio.spec.model import v0_5 as v

    config = segmenter.config
    net = _activated(segmenter.to(torch.device("cpu")))
    image = _test_image(config.in_channels)
    np.save(folder / "test_input.npy", image)
    with torch.inference_mode():
        output = net(torch.from_numpy(_normalised(image, segmenter.normalisation))).numpy()
    np.save(folder / "test_output.npy", output)
    with torch.no_grad(), warnings.catch_warnings():
        # The padding branch is traced away: the package declares sizes that need no padding.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, torch.from_numpy(_normalised(image, segmenter.normalisation)))
    traced.save(str(folder / "weights_torchscript.pt"))
    torch.save(net.state_dict(), folder / "weights.pt")
    (folder / "napari_unet_architecture.py").write_text(_architecture_source())
    if model != folder / CHECKPOINT_NAME:
        (folder / CHECKPOINT_NAME).write_bytes(model.read_bytes())
    _cover(image, output, folder / "cover.png")
    (folder / "README.md").write_text(_documentation(segmenter, params))

    multiple = config.size_multiple
    norm = segmenter.normalisation
    input_tensor = v.InputTensorDescr(
        id=v.TensorId("image"),
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(f"channel{i}") for i in range(config.in_channels)]),
            v.SpaceInputAxis(id=v.AxisId("y"), size=v.ParameterizedSize(min=multiple, step=multiple)),
            v.SpaceInputAxis(id=v.AxisId("x"), size=v.ParameterizedSize(min=multiple, step=multiple)),
        ],
        test_tensor=v.FileDescr(source=folder / "test_input.npy"),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[
            v.ScaleRangeDescr(
                kwargs=v.ScaleRangeKwargs(
                    axes=(v.AxisId("y"), v.AxisId("x")),
                    min_percentile=norm.low_percentile,
                    max_percentile=norm.high_percentile,
                )
            )
        ],
    )
    output_tensor = v.OutputTensorDescr(
        id=v.TensorId("probabilities"),
        description="class probabilities (softmax), then the boundary and distance heads (sigmoid)",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(n) for n in _channel_names(segmenter.class_names)]),
            v.SpaceOutputAxis(id=v.AxisId("y"), size=v.SizeReference(tensor_id=v.TensorId("image"), axis_id=v.AxisId("y"))),
            v.SpaceOutputAxis(id=v.AxisId("x"), size=v.SizeReference(tensor_id=v.TensorId("image"), axis_id=v.AxisId("x"))),
        ],
        test_tensor=v.FileDescr(source=folder / "test_output.npy"),
        data=v.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
    classes = ", ".join(segmenter.class_names[1:]) or "objects"
    return v.ModelDescr(
        name=" ".join(re.sub(r"[^A-Za-z0-9_+\- ()]+", " ", f"napari-unet {classes}").split())[:128],  # spec alphabet
        description=f"A 2D U-Net trained with napari-unet to segment {classes} (semantic classes and instances).",
        authors=[v.Author(name="napari-unet developers")],
        cite=[
            v.CiteEntry(text="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
                        "Segmentation. MICCAI 2015", doi=v.Doi(UNET_DOI)),
        ],
        license=v.LicenseId(license),
        tags=["napari-unet", "unet", "2d", "segmentation", "instance-segmentation", "semantic-segmentation"],
        covers=[v.FileDescr(source=folder / "cover.png")],
        documentation=v.FileDescr(source=folder / "README.md"),
        inputs=[input_tensor],
        outputs=[output_tensor],
        weights=v.WeightsDescr(
            pytorch_state_dict=v.PytorchStateDictWeightsDescr(
                source=folder / "weights.pt",
                architecture=v.ArchitectureFromFileDescr(
                    source=folder / "napari_unet_architecture.py",
                    callable=v.Identifier("ActivatedUNet"),
                    kwargs=config.to_dict(),
                ),
                pytorch_version=v.Version(torch.__version__),
            ),
            torchscript=v.TorchscriptWeightsDescr(
                source=folder / "weights_torchscript.pt",
                pytorch_version=v.Version(torch.__version__),
                parent="pytorch_state_dict",
            ),
        ),
        attachments=[v.FileDescr(source=folder / CHECKPOINT_NAME)],
        config=v.Config(
            napari_unet={
                "checkpoint": CHECKPOINT_NAME,
                "napari_unet_version": __version__,
                "class_names": list(segmenter.class_names),
                "label_values": "annotation and semantic labels: 1 = background, 2.. = the classes in order",
                "instance_parameters": params.to_dict(),
                "instance_heads_trained": segmenter.instance_heads_trained,
                "normalisation": norm.to_dict(),
                "rgb": segmenter.rgb,
                "architecture": config.to_dict(),
            }
        ),
    )


def _channel_names(class_names: list[str]) -> list[str]:
    """Channel names the spec accepts (distinct Python identifiers, no keywords) for the classes and heads."""
    names = []
    for name in [*class_names, "boundary", "distance"]:
        ident = re.sub(r"\W+", "_", name.strip()).strip("_") or "class"
        ident = ident if ident[0].isalpha() else f"c_{ident}"
        ident = f"{ident}_" if keyword.iskeyword(ident) else ident
        while ident in names:
            ident = f"{ident}_{len(names)}"
        names.append(ident)
    return names


def _test_image(channels: int) -> np.ndarray:
    """A deterministic test input: bright blobs on a noisy background, (1, C, TEST_SIZE, TEST_SIZE)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:TEST_SIZE, :TEST_SIZE]
    image = rng.normal(20.0, 5.0, (channels, TEST_SIZE, TEST_SIZE))
    for cy, cx in rng.integers(12, TEST_SIZE - 12, (12, 2)):
        image += 100.0 * ((y - cy) ** 2 + (x - cx) ** 2 < 49)
    return image[None].astype(np.float32)


def _normalised(image: np.ndarray, normalisation) -> np.ndarray:
    """What bioimageio's scale_range gives: percentiles of the whole plane, per channel."""
    low = np.percentile(image, normalisation.low_percentile, axis=(2, 3), keepdims=True)
    high = np.percentile(image, normalisation.high_percentile, axis=(2, 3), keepdims=True)
    return ((image - low) / (high - low + 1e-6)).astype(np.float32)


def _cover(image: np.ndarray, output: np.ndarray, path: Path) -> None:
    """Input and foreground probability side by side (2:1, as the spec recommends)."""
    import imageio.v3 as iio

    plane = image[0, 0]
    plane = (plane - plane.min()) / max(float(np.ptp(plane)), 1e-6)
    foreground = 1.0 - output[0, 0]
    iio.imwrite(path, (np.concatenate([plane, foreground], axis=1) * 255).astype(np.uint8))


def _documentation(segmenter, params: InstanceParams) -> str:
    card = segmenter.model_card()
    classes = "\n".join(f"- label {i + 1}: {name}" for i, name in enumerate(segmenter.class_names))
    return (
        "# napari-unet model\n\n"
        "A 2D U-Net trained interactively in napari with napari-unet (human-in-the-loop: sparse scribbles, "
        "corrected and accepted predictions).\n\n"
        f"## Classes\n\n{classes}\n\n"
        "## Inputs and outputs\n\n"
        f"Input: {card['input_channels']} channel(s), each scaled between its "
        f"{segmenter.normalisation.low_percentile} and {segmenter.normalisation.high_percentile} percentiles. "
        "Output: one probability per class (softmax), then the boundary and the distance-to-border maps "
        "(sigmoid). napari-unet splits objects by a seeded watershed of the distance map with the instance "
        f"parameters in `config.napari_unet` ({params.to_dict()}).\n\n"
        f"## Training\n\n{card['steps']} steps; final loss {card['final_loss']}; "
        f"validation {card['validation']}.\n\n"
        "Open the package in napari-unet (`napari-unet predict --model model.zip ...`) to get the original "
        "checkpoint back.\n"
    )
