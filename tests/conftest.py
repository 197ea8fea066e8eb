"""Shared test setup for napari-unet (keep it small).

napari's pytest plugin (installed with napari) provides `make_napari_viewer`;
pytest-qt provides `qtbot`. GUI tests need a display: run under `xvfb-run -a`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds pyproject.toml, napari.yaml, resources/)."""
    return REPO_ROOT


@pytest.fixture
def napari_unet_plugin():
    """Make sure npe2's global plugin manager knows napari-unet.

    With the package installed (pip install -e .) napari discovers it through the
    `napari.manifest` entry point; in an uninstalled checkout the manifest is
    registered from napari.yaml so GUI tests can still run.
    """
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    if "napari-unet" not in pm:
        pm.register(npe2.PluginManifest.from_file(REPO_ROOT / "napari.yaml"))
    return pm


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    """Each test starts from default dock settings and never touches the user's own."""
    monkeypatch.setenv("NAPARI_UNET_SETTINGS", str(tmp_path / "napari-unet-settings.ini"))


@pytest.fixture
def nuclei_dock(make_napari_viewer, napari_unet_plugin):
    """(viewer, dock) on the nuclei sample (its image and scribbled annotations), with tiny training settings."""
    from dock_helpers import tiny_training

    from napari_unet.widgets import UNetWidget
    from napari_unet.widgets.launch import MAIN_WIDGET

    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", MAIN_WIDGET)
    assert isinstance(widget, UNetWidget)
    tiny_training(widget)
    return viewer, widget
