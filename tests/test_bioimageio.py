"""BioImage.IO packages: bioimageio.core's own model test passes on an export, and napari-unet reads it back."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.cli import main
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter

bioimageio_core = pytest.importorskip(
    "bioimageio.core", reason="BioImage.IO export needs the bioimageio extra: pip install -e '.[bioimageio]'"
)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bioimageio")
    torch.manual_seed(0)
    segmenter = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])
    segmenter.history.append({"steps": 3, "loss": 0.5, "images": 1})
    segmenter.save(folder / "m.pt")
    assert main(["export-bioimageio", "--model", str(folder / "m.pt"), "--out", str(folder / "model.zip"),
                 "--threshold", "0.4"]) == 0
    return folder


@pytest.mark.slow
def test_bioimageio_core_model_test_passes(package):
    summary = bioimageio_core.test_model(package / "model.zip")
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    tested = {d.loc[1] for d in summary.details if len(d.loc) == 2 and d.loc[0] == "weights"}
    assert tested == {"pytorch_state_dict", "torchscript"}


def test_package_describes_classes_preprocessing_and_instance_parameters(package):
    from bioimageio.spec import load_description

    description = load_description(package / "model.zip")
    assert description.format_version.startswith("0.5")
    (image,) = description.inputs
    (step,) = [s for s in image.preprocessing if s.id == "scale_range"]  # the spec adds dtype steps around it
    assert (step.kwargs.min_percentile, step.kwargs.max_percentile) == (1.0, 99.8)
    (output,) = description.outputs
    assert [str(n) for n in output.axes[1].channel_names] == ["background", "nucleus", "boundary", "distance"]
    config = description.config.model_extra["napari_unet"]
    assert config["class_names"] == ["background", "nucleus"]
    assert config["instance_parameters"]["threshold"] == 0.4
    assert description.covers and description.cite and description.weights.torchscript is not None


def test_predict_accepts_the_package_and_gives_what_the_checkpoint_gives(package, capsys):
    d = package
    image = np.random.default_rng(1).normal(size=(60, 70)).astype(np.float32)
    tifffile.imwrite(d / "img.tif", image)
    for model, out in (("m.pt", "from_pt.npy"), ("model.zip", "from_zip.npy")):
        assert main(["predict", "--model", str(d / model), "--image", str(d / "img.tif"), "--quiet",
                     "--probabilities", str(d / out)]) == 0, capsys.readouterr().err
    assert np.array_equal(np.load(d / "from_pt.npy"), np.load(d / "from_zip.npy"))
    assert Segmenter.load(d / "model.zip").fingerprint() == Segmenter.load(d / "m.pt").fingerprint()


def test_a_foreign_package_is_a_clear_error(package, capsys):
    foreign = package / "foreign.zip"
    with zipfile.ZipFile(package / "model.zip") as source, zipfile.ZipFile(foreign, "w") as target:
        for name in source.namelist():
            if name != "napari_unet_checkpoint.pt":
                target.writestr(name, source.read(name))
    assert main(["predict", "--model", str(foreign), "--image", str(package / "m.pt"),
                 "--instances", str(package / "never.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert "exported" in err and len(err.splitlines()) == 1 and not (package / "never.tif").exists()


def test_export_refuses_a_name_without_zip_before_writing(package, capsys):
    assert main(["export-bioimageio", "--model", str(package / "m.pt"), "--out", str(package / "model.bioimage")]) == 2
    assert ".zip" in capsys.readouterr().err and not (package / "model.bioimage").exists()


def test_multichannel_models_with_any_class_names_export(tmp_path):
    from bioimageio.spec import load_description

    from napari_unet.io.bioimageio import export_package

    torch.manual_seed(0)
    config = ModelConfig(in_channels=3, n_classes=4, depth=4, base_width=4, norm="group")
    Segmenter.create(config, ["background", "class 1", "2nd", "for"]).save(tmp_path / "rgb.pt")
    export_package(tmp_path / "rgb.pt", tmp_path / "rgb.zip")
    description = load_description(tmp_path / "rgb.zip")
    assert description.name == "napari-unet class 1 2nd for"
    assert [str(n) for n in description.outputs[0].axes[1].channel_names] == [
        "background", "class_1", "c_2nd", "for_", "boundary", "distance"]
    assert description.config.model_extra["napari_unet"]["class_names"] == ["background", "class 1", "2nd", "for"]
    assert Segmenter.load(tmp_path / "rgb.zip").config == config
