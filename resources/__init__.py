"""Sample data shipped with napari-unet (installed as ``napari_unet.resources_data``).

Use :func:`napari_unet.io.resources.resource_path` to find a file here.
"""
