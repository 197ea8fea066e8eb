"""Find the files shipped in the repository's ``resources/`` folder.

``resources/`` is installed as the package ``napari_unet.resources_data``
(see ``[tool.setuptools.package-dir]`` in pyproject.toml): a wheel copies it
there, and an editable install maps the name to the source folder. In a plain
source checkout that is not installed, the folder next to ``napari_unet/`` is
used. Imports no Qt or napari.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

RESOURCES_PACKAGE = "napari_unet.resources_data"

# Names of the sample files, for code that wants them without spelling paths.
NUCLEI_IMAGE = "nuclei_dsb2018_image.tif"
NUCLEI_INSTANCES = "nuclei_dsb2018_instances.tif"
NUCLEI_SCRIBBLES = "nuclei_dsb2018_scribbles.tif"
EM_IMAGE = "em_isbi2012_image.tif"
EM_LABELS = "em_isbi2012_labels.tif"
EM_SCRIBBLES = "em_isbi2012_scribbles.tif"


def resources_dir() -> Path:
    """The folder that holds the shipped resources."""
    try:
        root = importlib.resources.files(RESOURCES_PACKAGE)
    except ModuleNotFoundError:
        root = None
    if isinstance(root, Path) and root.is_dir():
        return root
    # not installed (e.g. a source checkout on sys.path): the sibling folder
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(name: str) -> Path:
    """Absolute path of the shipped resource file `name` (e.g. 'em_isbi2012_image.tif').

    Raises FileNotFoundError, naming the files that exist, if there is none.
    """
    path = resources_dir() / name
    if not path.is_file():
        folder = resources_dir()
        have = sorted(p.name for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        raise FileNotFoundError(
            f"napari-unet resource {name!r} not found in {folder}; available: {have}"
        )
    return path


def read_tif(name: str):
    """Read a shipped TIFF resource into a numpy array."""
    import tifffile

    return tifffile.imread(resource_path(name))
