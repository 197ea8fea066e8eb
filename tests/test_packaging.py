"""Packaging: Qt-free core, a valid npe2 manifest, installed entry points."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_unet

ROOT = Path(__file__).resolve().parent.parent
QT_IMPORTS = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt")
GUI_IMPORTS = QT_IMPORTS + ("napari", "magicgui")  # napari.layers itself imports magicgui
# Subpackages by what they may import: the core none of the GUI packages, napari_unet.napari
# napari but no Qt, napari_unet.widgets anything.
NAPARI_PACKAGE = "napari_unet.napari"
WIDGETS_PACKAGE = "napari_unet.widgets"


def modules_under(prefix: str | None = None) -> list[str]:
    """Every napari_unet module, or those in one subpackage (prefix)."""
    mods = ["napari_unet"]
    for info in pkgutil.walk_packages(napari_unet.__path__, "napari_unet."):
        if info.name != "napari_unet.__main__":  # importing it runs the command line
            mods.append(info.name)
    if prefix is None:
        return sorted(mods)
    return sorted(m for m in mods if m == prefix or m.startswith(prefix + "."))


def core_modules() -> list[str]:
    """Every napari_unet module outside the napari and widgets subpackages."""
    gui = set(modules_under(NAPARI_PACKAGE)) | set(modules_under(WIDGETS_PACKAGE))
    return [m for m in modules_under() if m not in gui]


def _imported_top_levels(mods: list[str], banned: tuple[str, ...]) -> list[str]:
    """Import mods in a fresh interpreter; return the banned top-level packages it loaded."""
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for m in {mods!r}:
            importlib.import_module(m)
        bad = sorted(m for m in sys.modules if m.split('.')[0] in {banned!r})
        print(repr(sorted({{m.split('.')[0] for m in bad}})))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return eval(res.stdout.strip().splitlines()[-1])


def test_core_imports_no_gui():
    mods = core_modules()
    for expected in ("napari_unet.conventions", "napari_unet.cli", "napari_unet.nn.training",
                     "napari_unet.functionals.data", "napari_unet.io.ome_zarr_dataset"):
        assert expected in mods
    assert not any(m.startswith((NAPARI_PACKAGE, WIDGETS_PACKAGE)) for m in mods)
    assert _imported_top_levels(mods, GUI_IMPORTS) == []


def test_post_processing_imports_no_torch():
    mods = ["napari_unet.functionals.prediction", "napari_unet.functionals.instances",
            "napari_unet.functionals.corrections", "napari_unet.functionals.layout"]
    assert _imported_top_levels(mods, ("torch",)) == []


def test_napari_package_imports_no_qt():
    mods = modules_under(NAPARI_PACKAGE)
    assert "napari_unet.napari.reader" in mods
    assert _imported_top_levels(mods, QT_IMPORTS) == []


def _listed_packages() -> set[str]:
    """[tool.setuptools] packages of pyproject.toml (tomllib from Python 3.11, a plain parse before)."""
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one list this test needs
        block = re.search(r"^\[tool\.setuptools\]$.*?^packages = \[(.*?)\]", text, re.S | re.M)
        return set(re.findall(r'"([^"]+)"', block.group(1)))
    return set(tomllib.loads(text)["tool"]["setuptools"]["packages"])


def test_all_subpackages_listed_in_pyproject():
    listed = _listed_packages()
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "napari_unet").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    missing = found - listed
    assert not missing, f"add these packages to [tool.setuptools] packages: {sorted(missing)}"
    assert "napari_unet.resources_data" in listed


def test_manifest_file_valid():
    import npe2

    mf = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    assert mf.name == "napari-unet"
    assert mf.display_name == "napari-unet"
    keys = {s.key for s in mf.contributions.sample_data}
    assert {"nuclei", "em"} <= keys
    # the package copy npe2 reads is the same file
    pkg_copy = ROOT / "napari_unet" / "napari.yaml"
    assert pkg_copy.read_text() == (ROOT / "napari.yaml").read_text()


def _installed_manifest():
    import npe2

    try:
        return npe2.PluginManifest.from_distribution("napari-unet")
    except (md.PackageNotFoundError, ValueError) as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"napari-unet is not installed (pip install -e .): {e}")


def test_manifest_from_distribution():
    import npe2

    mf = _installed_manifest()
    assert mf.name == "napari-unet"
    ref = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    assert [c.id for c in mf.contributions.commands] == [
        c.id for c in ref.contributions.commands
    ]


def test_console_script_entry_point():
    try:
        dist = md.distribution("napari-unet")
    except md.PackageNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("napari-unet is not installed")
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert eps.get("napari-unet") == "napari_unet.cli:main"


def test_every_command_resolves_to_callable():
    import npe2

    mf = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    for cmd in mf.contributions.commands:
        assert cmd.python_name, cmd.id
        modname, _, attr = cmd.python_name.partition(":")
        obj = importlib.import_module(modname)
        for part in attr.split("."):
            obj = getattr(obj, part)
        assert callable(obj), cmd.python_name
    # every contribution points at a declared command
    ids = {c.id for c in mf.contributions.commands}
    contribs = mf.contributions
    for group in ("sample_data", "widgets", "readers", "writers"):
        for item in getattr(contribs, group) or []:
            assert item.command in ids, (group, item.command)


def test_resources_found():
    from napari_unet.io.resources import resource_path, resources_dir

    for name in (
        "nuclei_dsb2018_image.tif",
        "nuclei_dsb2018_instances.tif",
        "nuclei_dsb2018_scribbles.tif",
        "em_isbi2012_image.tif",
        "em_isbi2012_labels.tif",
        "em_isbi2012_scribbles.tif",
        "LICENSES.md",
    ):
        assert resource_path(name).is_file()
    with pytest.raises(FileNotFoundError, match="available"):
        resource_path("no_such_file.tif")
    total = sum(p.stat().st_size for p in resources_dir().rglob("*") if p.is_file())
    # Samples (~0.5 MB) plus the shipped pretrained models (fast preset, ~2 MB each) for offline use.
    assert total < 8_000_000, f"resources/ is {total / 1e6:.1f} MB; keep it under 8 MB"
    licences = (resources_dir() / "LICENSES.md").read_text()
    for p in resources_dir().glob("*.tif"):
        assert p.name in licences, f"{p.name} has no entry in resources/LICENSES.md"


def test_resources_found_from_a_source_checkout_that_is_not_installed(monkeypatch):
    """A bare checkout on PYTHONPATH (a GPU machine, a cluster node) finds resources/ beside napari_unet/."""
    from napari_unet.io import resources

    monkeypatch.setitem(sys.modules, resources.RESOURCES_PACKAGE, None)  # import fails: not installed
    assert resources.resources_dir() == ROOT / "resources"
    assert (resources.resources_dir() / "models" / "nuclei.pt").is_file()


def test_ci_runs_the_readme_test_command():
    """.ci/run's last command is the test command written in README.md."""
    lines = [
        ln.strip()
        for ln in (ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    test_cmd = lines[-1]
    assert "pytest" in test_cmd
    readme = (ROOT / "README.md").read_text()
    assert f"`{test_cmd}`" in readme or f"&& {test_cmd}\n" in readme
    # torch is installed before the project, from the local CPU wheel
    assert re.search(r"pip install (-q )?torch==", (ROOT / ".ci" / "run").read_text())


def test_pretrained_registry_names_the_choices():
    from napari_unet.errors import UserInputError
    from napari_unet.io.pretrained import available_models, model_path

    names = available_models()
    assert names == sorted(names)
    for name in names:
        assert model_path(name).is_file()
    with pytest.raises(UserInputError, match="no pretrained model named 'no-such-model'"):
        model_path("no-such-model")
