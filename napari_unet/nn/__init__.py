"""Neural network: the U-Net, device choice, checkpoints, tiled inference, training."""
