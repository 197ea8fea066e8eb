"""Pure functions on arrays: normalisation, targets, sampling, instances, corrections, metrics."""
