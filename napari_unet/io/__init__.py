"""Reading and writing: images, OME-Zarr datasets, bundled resources."""
