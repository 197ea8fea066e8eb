"""napari without Qt: reader, writer, sample data, and conversion of layers to core types."""
