"""The shipped pretrained models: they load offline, segment a shipped sample and fine-tune to other classes."""

import numpy as np
import pytest
import tifffile
from test_training import run_to_end

from napari_unet.cli import main
from napari_unet.errors import UserInputError
from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.metrics import average_precision
from napari_unet.io.pretrained import available_models, model_card, model_path, resolve
from napari_unet.io.resources import NUCLEI_IMAGE, NUCLEI_INSTANCES, read_tif
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import WARM_START_LEARNING_RATE, TrainConfig, Trainer


@pytest.mark.parametrize(("name", "channels", "val_images"), [("nuclei", 1, 100), ("nuclei-stained", 3, 10)])
def test_shipped_models_have_complete_model_cards(name, channels, val_images):
    assert name in available_models()
    card = model_card(name)
    assert "Caicedo" in card["citation"] and "CC0" in card["licence"]
    assert card["classes"] == ["background", "nucleus"] and card["input_channels"] == channels
    assert 5 < card["object_diameter"] < 60
    assert card["val_scores"]["ap50"] > 0.5 and card["val_scores"]["images"] > val_images


def test_nuclei_stained_segments_an_rgb_image_and_refuses_grayscale():
    segmenter = Segmenter.load(model_path("nuclei-stained"))
    yy, xx = np.mgrid[:96, :96]
    stained = np.stack([np.full((96, 96), 0.85), np.full((96, 96), 0.7), np.full((96, 96), 0.8)])
    for cy, cx in ((30, 30), (30, 66), (66, 48)):  # three purple nuclei on a pink background
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 10**2
        stained[:, disc] = np.array([0.35, 0.2, 0.5])[:, None]
    labels = segmenter.instances(segmenter.predict((stained * 255).astype(np.uint8)))
    assert labels.shape == (96, 96) and 2 <= len(np.unique(labels[labels > 0])) <= 4
    with pytest.raises(UserInputError, match="channel"):
        segmenter.predict(np.zeros((1, 64, 64), np.uint8))


def test_unknown_names_say_what_is_available():
    with pytest.raises(UserInputError, match="nuclei"):
        model_path("nucleus")
    with pytest.raises(UserInputError, match="neither a model file nor a shipped model"):
        resolve("nucleus")
    assert resolve("nuclei") == model_path("nuclei")


def test_nuclei_segments_the_shipped_sample_without_training():
    segmenter = Segmenter.load(model_path("nuclei"))
    assert segmenter.instance_heads_trained and segmenter.object_diameter is not None
    image, truth = read_tif(NUCLEI_IMAGE), read_tif(NUCLEI_INSTANCES)
    labels = segmenter.instances(segmenter.predict(image[None], diameter="auto"))
    assert average_precision([truth], [labels], thresholds=[0.5])[0.5] >= 0.75


@pytest.mark.parametrize("name", ["nuclei", "nuclei-stained"])
def test_shipped_instance_settings_are_the_ones_its_card_reports(name):
    """Settings picked on the model's `train` images (benchmarks/pretrained_instance_grid.py --ship) are what
    the CLI, the dock's sliders and a fine-tune's tuning start from."""
    segmenter, settings = Segmenter.load(model_path(name)), model_card(name)["instance_settings"]
    assert segmenter.instance_params == InstanceParams(**{k: settings[k] for k in InstanceParams().to_dict()})
    tuning = segmenter.instance_tuning
    assert tuning.tuned and "DSB2018 images it learnt from" in tuning.describe()
    assert settings["val_ap50"] >= settings["val_ap50_defaults"]  # the pick held on images it never saw


def test_nuclei_fine_tunes_to_another_class_list():
    segmenter = Segmenter.load(model_path("nuclei"))
    image, truth = read_tif(NUCLEI_IMAGE)[:128, :128], read_tif(NUCLEI_INSTANCES)[:128, :128]
    scribbles = np.where(truth > 0, 2, 1).astype(np.uint8)
    scribbles[:8, :8] = 3  # a third class the pretrained model never had
    config = TrainConfig(steps=2, patch_size=64, batch_size=2, device="cpu")
    trainer = Trainer([TrainingImage.from_scribbles(image[None], scribbles)], config, segmenter=segmenter,
                      class_names=["background", "cell", "debris"])
    _, tuned = run_to_end(trainer)
    assert tuned.class_names == ["background", "cell", "debris"] and tuned.config.n_classes == 3
    assert tuned.canonical_diameter == segmenter.canonical_diameter
    assert len(tuned.history) == len(segmenter.history) + 1
    assert tuned.predict(image[None]).probabilities.shape == (3, 128, 128)


def test_cli_lists_predicts_and_resumes_by_name(tmp_path, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "nuclei" in out and "Caicedo" in out and "expected object diameter" in out
    assert "instance settings (picked on its `train` images): threshold 0.4" in out
    image = read_tif(NUCLEI_IMAGE)[:160, :160]
    truth = read_tif(NUCLEI_INSTANCES)[:160, :160]
    tifffile.imwrite(tmp_path / "x.tif", image)
    tifffile.imwrite(tmp_path / "t.tif", truth)
    assert main(["predict", "--model", "nuclei", "--image", str(tmp_path / "x.tif"),
                 "--instances", str(tmp_path / "y.tif"), "--quiet"]) == 0
    assert tifffile.imread(tmp_path / "y.tif").max() > 5
    assert main(["train", "--resume", "nuclei", "--image", str(tmp_path / "x.tif"), "--instances",
                 str(tmp_path / "t.tif"), "--classes", "background", "cell", "--out", str(tmp_path / "m.pt"),
                 "--steps", "2", "--patch-size", "48", "--batch-size", "2", "--device", "cpu", "--quiet"]) == 0
    tuned = Segmenter.load(tmp_path / "m.pt")
    assert tuned.class_names == ["background", "cell"]
    assert tuned.history[-1]["config"]["learning_rate"] == WARM_START_LEARNING_RATE
    assert main(["predict", "--model", "nuclei", "--image", str(tmp_path / "x.tif"), "--diameter", "-3",
                 "--instances", str(tmp_path / "z.tif"), "--quiet"]) == 2
    assert "--diameter" in capsys.readouterr().err

