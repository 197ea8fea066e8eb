import subprocess
import sys

import numpy as np
import pytest

from napari_unet.errors import UserInputError
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter


def _segmenter() -> Segmenter:
    import torch

    torch.manual_seed(0)
    seg = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])
    seg.history.append({"steps": 3, "loss": 0.5, "images": 1})
    return seg


def test_checkpoint_round_trip_is_bitwise_identical_in_another_process(tmp_path):
    seg = _segmenter()
    path = seg.save(tmp_path / "model.pt")
    image = np.random.default_rng(0).normal(size=(1, 40, 50)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    here = seg.predict(image).probabilities
    code = (
        "import numpy as np, sys; from napari_unet.nn.segmenter import Segmenter;"
        f"s = Segmenter.load({str(path)!r});"
        f"np.save({str(tmp_path / 'out.npy')!r}, s.predict(np.load({str(tmp_path / 'image.npy')!r})).probabilities)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.array_equal(here, np.load(tmp_path / "out.npy"))
    loaded = Segmenter.load(path)
    assert loaded.class_names == ["background", "nucleus"]
    assert loaded.config == seg.config and loaded.fingerprint() == seg.fingerprint()
    card = loaded.model_card()
    assert card["classes"] == ["background", "nucleus"] and card["steps"] == 3 and card["input_channels"] == 1


def test_foreign_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        Segmenter.load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserInputError, match="not a napari-unet model checkpoint"):
        Segmenter.load(tmp_path / "junk.pt")
    import torch

    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserInputError, match="not a napari-unet model checkpoint"):
        Segmenter.load(tmp_path / "other.pt")


def test_failed_save_keeps_previous_model(tmp_path, monkeypatch):
    seg = _segmenter()
    path = seg.save(tmp_path / "model.pt")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("napari_unet.nn.segmenter.os.replace", broken_replace)
    with pytest.raises(UserInputError, match="Not enough disk space to save model.pt: free some space"):
        seg.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_channel_mismatch_is_explained():
    with pytest.raises(UserInputError, match="expects 1 input channel"):
        _segmenter().predict(np.zeros((3, 16, 16), np.float32))
