"""Install metadata that is true: Python and dependency bounds, licence, citation, napari hub pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _bounds(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
        assert match, f"{requirement!r} has no lower bound"
        found[match.group(1).lower()] = match.group(2)
    return found


def test_every_dependency_has_the_lower_bound_the_code_needs():
    bounds = _bounds(PROJECT["dependencies"])
    assert PROJECT["requires-python"] == ">=3.11"  # zarr 3, ome-zarr 0.17, napari 0.9
    assert bounds["ome-zarr"] == "0.17"  # ome_zarr.axes.KNOWN_SPATIAL_UNITS
    assert bounds["torch"] == "2.3"  # torch.amp.GradScaler
    assert bounds["zarr"].startswith("3")
    for name in ("numpy", "scikit-image", "scipy", "napari", "tifffile", "imageio", "dask"):
        assert name in bounds


def test_no_qt_binding_without_an_extra_and_pyqt5_capped():
    qt = ("pyqt5", "pyqt6", "pyside2", "pyside6")
    assert not [d for d in PROJECT["dependencies"] if d.lower().startswith(qt) or "[pyqt" in d.lower()]
    (pyqt5,) = PROJECT["optional-dependencies"]["pyqt5"]
    assert pyqt5.replace(" ", "") == "napari[pyqt5]>=0.9,<0.10"  # napari drops PyQt5 after 0.9


def test_license_is_spdx_with_its_file():
    assert PROJECT["license"] == "BSD-3-Clause" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "napari-unet developers" in text
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in build  # SPDX license strings need setuptools 77


def test_citation_and_napari_hub_metadata():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "BSD-3-Clause"
    assert citation["title"] and citation["authors"] and citation["references"]
    import napari_unet

    assert citation["version"] == napari_unet.__version__
    hub = yaml.safe_load((ROOT / ".napari-hub" / "config.yml").read_text())
    assert hub["labels"]["terms"]
    assert (ROOT / ".napari-hub" / "DESCRIPTION.md").read_text().startswith("# napari-unet")
