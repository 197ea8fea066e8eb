"""The 2D U-Net: encoder, decoder and skip connections, with semantic and instance heads.

Output channels, in order: `n_classes` semantic logits (class 0 = background), then
`INSTANCE_CHANNELS` instance heads: a boundary logit and a distance-map logit
(sigmoid gives each object's distance to its border, 1 at its centre).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

INSTANCE_CHANNELS = 2
BOUNDARY_CHANNEL = 0  # offsets within the instance heads
DISTANCE_CHANNEL = 1
NORMS = ("batch", "group", "instance", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored in checkpoints."""

    in_channels: int = 1
    n_classes: int = 2
    depth: int = 3
    base_width: int = 16
    norm: str = "batch"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def out_channels(self) -> int:
        return self.n_classes + INSTANCE_CHANNELS

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to a multiple of this so every pooling step divides evenly."""
        return 2**self.depth


# Model size presets shown in the widget and CLI: (depth, base_width).
PRESETS: dict[str, dict[str, int]] = {
    "fast": {"depth": 3, "base_width": 16},
    "balanced": {"depth": 4, "base_width": 24},
    "accurate": {"depth": 4, "base_width": 32},
}


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORMS}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
            _norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias),
            _norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A U-Net that accepts any input size: it pads to a multiple of 2**depth and crops back."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = [config.base_width * 2**i for i in range(config.depth + 1)]
        self.encoders = nn.ModuleList()
        c_in = config.in_channels
        for w in widths:
            self.encoders.append(ConvBlock(c_in, w, config.norm))
            c_in = w
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w_skip, w_deep in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.upsamples.append(nn.ConvTranspose2d(w_deep, w_skip, 2, stride=2))
            self.decoders.append(ConvBlock(2 * w_skip, w_skip, config.norm))
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)
        # channels_last convolutions run about 1.2x (training) to 2x (inference) faster on CPU,
        # and use tensor cores on GPU; load_state_dict and .to(device) keep the layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        h, w = x.shape[-2:]
        m = self.config.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            mode = "reflect" if h > pad_h and w > pad_w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            if i < len(self.encoders) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for upsample, decoder, skip in zip(self.upsamples, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)[..., :h, :w]
