"""Count the convolution FLOPs of a network, for throughput figures (GFLOP/s) in benchmarks.

Only Conv2d and ConvTranspose2d are counted: they are nearly all of a U-Net's arithmetic
(normalisation, ReLU, pooling and concatenation are memory-bound and add well under 1%).
One multiply-add counts as 2 FLOPs. A training step costs about 3x the forward FLOPs
(the backward pass computes both the input and the weight gradients).
"""

from __future__ import annotations

import torch
from torch import nn

TRAINING_FACTOR = 3.0


def conv_macs(net: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of every convolution in one forward pass of `example`."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def transposed_hook(module: nn.ConvTranspose2d, inputs, output) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        # every input value is scattered through a kh x kw kernel into each output channel
        total += inputs[0].numel() * (module.out_channels // module.groups) * kh * kw

    handles = []
    for module in net.modules():
        if isinstance(module, nn.ConvTranspose2d):
            handles.append(module.register_forward_hook(transposed_hook))
        elif isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
    was_training = net.training
    try:
        net.eval()
        with torch.inference_mode():
            net(example)
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def flops_per_pixel(net: nn.Module, in_channels: int, size: int = 256) -> float:
    """Forward FLOPs per input pixel (2 x MACs), measured on a size x size input.

    Choose `size` a multiple of the network's size multiple so no padding is counted.
    """
    device = next(net.parameters()).device
    example = torch.zeros(1, in_channels, size, size, device=device)
    return 2.0 * conv_macs(net, example) / (size * size)
