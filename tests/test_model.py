import pytest
import torch

from napari_unet.nn.model import INSTANCE_CHANNELS, PRESETS, ModelConfig, UNet


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 1, 37, 53), (1, 1, 5, 9)])
def test_any_input_size_gives_same_size_output(shape):
    net = UNet(ModelConfig(depth=3, base_width=4, n_classes=3))
    out = net(torch.zeros(shape))
    assert out.shape == (shape[0], 3 + INSTANCE_CHANNELS, *shape[2:])


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_normalisations_and_channels(norm):
    net = UNet(ModelConfig(in_channels=3, depth=2, base_width=8, norm=norm))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 2 + INSTANCE_CHANNELS, 32, 32)


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="normalisation"):
        UNet(ModelConfig(norm="weird"))


def test_presets_grow():
    sizes = [sum(p.numel() for p in UNet(ModelConfig(**kw)).parameters()) for kw in PRESETS.values()]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_skip_connections_carry_fine_detail():
    # With skips, a single-pixel input change reaches the output at that pixel.
    torch.manual_seed(0)
    net = UNet(ModelConfig(depth=3, base_width=4, norm="none")).eval()
    x = torch.zeros(1, 1, 32, 32)
    y0 = net(x)
    x[0, 0, 10, 10] = 5.0
    diff = (net(x) - y0).abs().sum(dim=1)[0]
    assert diff[10, 10] > 0


def test_receptive_field_is_local():
    # Positive weights, no bias: a single bright pixel raises every activation it can reach (ReLU
    # and max-pooling pass it on), so the changed output region *is* the receptive field.
    net = UNet(ModelConfig(depth=3, base_width=4, norm="none")).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.05) if p.ndim > 1 else p.zero_()
    x = torch.zeros(1, 1, 256, 256)
    y0 = net(x)
    x[0, 0, 128, 128] = 1.0
    changed = ((net(x) - y0).abs().sum(dim=1)[0] > 0).nonzero()
    reach = int((changed - 128).abs().max())
    # depth 3: two 3x3 convolutions per level on 1, 2, 4, 8-pixel grids, up and down: ~46 px
    assert 30 < reach < 64
    assert len(changed) > 0.5 * (2 * reach) ** 2  # the whole neighbourhood responds, not a few pixels
