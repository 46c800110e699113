"""Tests of asna_metric.nets: shapes, pooled head, config round trip, locality."""

from __future__ import annotations

import json

import pytest
import torch

from asna_metric.errors import InputError
from asna_metric.nets import ARCHITECTURES, ASNANet, SiameseDiffNet, build_net
from asna_metric.nets._blocks import ConvLSTMCell, TileSequenceConvLSTM
from helpers import assert_receptive_margin

TINY = {
    "encoder_widths": [4, 4, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "head_hidden": 4,
}
TINY_CONFIGS = {
    "asna": {**TINY, "attention_width": 4, "residual_blocks": 1},
    "asna_id": {
        "stem_channels": 4,
        "encoder_widths": [4, 4],
        "decoder_widths": [4, 4],
        "head_widths": [4, 4],
        "content_width": 4,
        "residual_blocks": 1,
        "head_hidden": 4,
    },
    "efficientnet_lite0": {
        "tap_width": 4,
        "fuse_width": 4,
        "attention_width": 4,
        "residual_blocks": 1,
        "head_hidden": 4,
    },
    "siamese_diff": TINY,
    "siamese_diff_convlstm": {**TINY, "lstm_hidden": 4, "lstm_kernel": 3},
}


def _pair(generator: torch.Generator, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.rand(n, 3, h, w, generator=generator)
    noise = 0.1 * torch.randn(n, 3, h, w, generator=generator)
    return (ref + noise).clamp(0, 1), ref


def _randomise_bn(net: torch.nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm layers non-trivial running statistics (as after training)."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    if hasattr(net, "head"):  # asna_id has no LocationHead
        with torch.no_grad():  # a random head is nearly flat: make the maps vary
            net.head.out.weight.mul_(30.0)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_maps_shapes_ranges_and_pooled_score(arch: str, generator: torch.Generator) -> None:
    net = build_net(arch, TINY_CONFIGS[arch]).eval()
    assert net.arch == arch
    h, w = 2 * net.size_multiple, 3 * net.size_multiple
    dist, ref = _pair(generator, 2, h, w)
    with torch.no_grad():
        quality, weight = net.forward_maps(dist, ref)
        score = net(dist, ref)
    assert quality.shape == weight.shape == (2, 1, h // net.map_stride, w // net.map_stride)
    assert quality.min() >= 0 and quality.max() <= 1
    assert weight.min() > 0
    pooled = (weight * quality).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))
    assert score.shape == (2,)
    torch.testing.assert_close(score, pooled)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_config_round_trip(arch: str, generator: torch.Generator) -> None:
    net = build_net(arch, TINY_CONFIGS[arch]).eval()
    _randomise_bn(net, generator)
    config = json.loads(json.dumps(net.config))  # JSON-serialisable
    rebuilt = build_net(net.arch, config).eval()
    assert rebuilt.arch == net.arch
    assert rebuilt.config == net.config
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    dist, ref = _pair(generator, 1, net.size_multiple, net.size_multiple)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(dist, ref), net(dist, ref), rtol=0, atol=0)


def test_defaults_follow_the_paper() -> None:
    net = ASNANet()
    assert net.size_multiple == 16 and net.map_stride == 8
    assert net.config["encoder_widths"] == [8, 16, 32, 64]
    assert net.config["encoder_kernels"] == [5, 5, 3, 3]
    assert net.config["decoder_widths"] == [64, 64, 32, 16]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == pytest.approx(1e-3) for m in bns)
    # The backbone ends at full resolution with 16 + 8 channels, as in the paper.
    assert net.backbone.out_channels == 24
    # Parameters without the paper's flatten+dense head (which held ~332k of ~529k).
    assert sum(p.numel() for p in net.parameters()) == 196_212
    plain = SiameseDiffNet()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    lstm = build_net("siamese_diff_convlstm", {})
    assert lstm.size_multiple == 64 and lstm.map_stride == 8
    assert not lstm.spatially_faithful and plain.spatially_faithful


def test_convlstm_map_is_repeated_over_the_grid(generator: torch.Generator) -> None:
    net = build_net("siamese_diff_convlstm", TINY_CONFIGS["siamese_diff_convlstm"]).eval()
    dist, ref = _pair(generator, 1, 64, 128)
    with torch.no_grad():
        quality, weight = net.forward_maps(dist, ref)
    assert quality.shape == (1, 1, 8, 16)
    tile = quality[..., :2, :4]
    torch.testing.assert_close(quality, tile.repeat(1, 1, 4, 4), rtol=0, atol=0)
    torch.testing.assert_close(weight, weight[..., :2, :4].repeat(1, 1, 4, 4), rtol=0, atol=0)


def test_convlstm_sequence_is_row_major(generator: torch.Generator) -> None:
    lstm = TileSequenceConvLSTM(3, 4, 3, grid=2)
    x = torch.rand(1, 3, 8, 8, generator=generator)
    expected = None
    for tile in (x[..., :4, :4], x[..., :4, 4:], x[..., 4:, :4], x[..., 4:, 4:]):
        expected = lstm.cell(tile, expected)
    assert expected is not None
    torch.testing.assert_close(lstm(x), expected[0], rtol=0, atol=0)
    h, c = ConvLSTMCell(3, 5, 3)(x)
    assert h.shape == c.shape == (1, 5, 8, 8)


def test_decoder_starts_from_dist(generator: torch.Generator) -> None:
    net = build_net("asna", TINY_CONFIGS["asna"]).eval()
    _randomise_bn(net, generator)
    dist, ref = _pair(generator, 1, 32, 32)
    with torch.no_grad():
        forward, backward = net.forward_maps(dist, ref)[0], net.forward_maps(ref, dist)[0]
    assert (forward - backward).abs().max() > 0  # exactly symmetric if it used both


@pytest.mark.parametrize(
    ("arch", "extra"),
    [
        ("asna", {"attention_width": 0, "receptive_margin": 128}),
        ("asna", {"attention_width": 0, "receptive_margin": 192, "input_unshuffle": 2}),
        ("siamese_diff", {}),
    ],
)
def test_receptive_margin_bounds_the_influence_of_a_pixel(
    arch: str, extra: dict[str, int], generator: torch.Generator
) -> None:
    # Without the attention block's global gate the networks are strictly local:
    # changing one pixel leaves every map cell farther than the strict radius
    # (measured: 116 px for ASNA, 68 px for the plain variant, 151 px for this
    # tiny ASNA at half resolution) unchanged.
    config = {**TINY_CONFIGS[arch], **extra}
    net = build_net(arch, config).eval()
    _randomise_bn(net, generator)
    size, pixel = 320 * net.input_unshuffle if arch == "asna" else 320, 150
    dist, ref = _pair(generator, 1, size, size)
    assert_receptive_margin(net, dist, ref, pixel)


def test_input_unshuffle_runs_the_backbone_at_half_resolution(generator: torch.Generator) -> None:
    net = build_net("asna", {**TINY_CONFIGS["asna"], "input_unshuffle": 2, "stem_channels": 12})
    net.eval()
    _randomise_bn(net, generator)
    assert net.size_multiple == 32 and net.config["input_unshuffle"] == 2
    seen: list[tuple[int, ...]] = []
    net.backbone.stem.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    dist, ref = _pair(generator, 2, 64, 96)
    with torch.no_grad():
        quality, _ = net.forward_maps(dist, ref)
    # One pass over both images (eval), 12 channels at half resolution; the
    # map keeps one location per 8x8 input block.
    assert seen == [(4, 12, 32, 48)]
    assert quality.shape == (2, 1, 8, 12)
    # Every input pixel reaches the stem: changing one pixel of the 2x2 block
    # that a half-resolution position holds changes the map.
    changed = dist.clone()
    changed[0, :, 33, 49] = 1 - changed[0, :, 33, 49]
    with torch.no_grad():
        assert (net.forward_maps(changed, ref)[0] - quality).abs().max() > 0
    # Paper-shaped networks keep their configuration unchanged.
    assert "input_unshuffle" not in build_net("asna", TINY_CONFIGS["asna"]).config


def test_input_unshuffle_rejects_strides_the_map_cannot_keep() -> None:
    for factor in (3, 8):
        with pytest.raises(InputError, match="input_unshuffle must be one of"):
            build_net("asna", {**TINY_CONFIGS["asna"], "input_unshuffle": factor})


def test_build_net_rejects_unknown_names() -> None:
    with pytest.raises(InputError, match="unknown architecture"):
        build_net("vgg", {})
    with pytest.raises(InputError, match="does not take"):
        build_net("asna", {"width": 3})
    with pytest.raises(InputError, match="does not take"):
        build_net("siamese_diff_convlstm", {"convlstm": False})
