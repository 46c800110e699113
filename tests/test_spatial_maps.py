"""Spatial quality maps (ASNA.map) and their rendering (asna_metric.viz).

tests/test_metric.py already checks, for an ensemble of two attention
networks, that the map pools to the score for every self-ensemble mode, tiled
and untiled, and the equivariance of one network under two transforms. Here:
mixed ensembles (with the ConvLSTM member, whose map is not spatial), batches
and odd sizes, all 8 dihedral transforms, locality, rendering, and, with the
shipped weights, that the map finds a local distortion.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asna_metric.data.distortions import gaussian_blur, white_noise
from asna_metric.ensemble import apply_dihedral
from asna_metric.errors import InputError
from asna_metric.inputs import to_batch
from asna_metric.metric import ASNA
from asna_metric.nets import build_net
from asna_metric.viz import (
    box_mask,
    mask_iou,
    paste_region,
    render_heatmap,
    save_heatmap,
    worst_pixels,
)

SMALL = {"encoder_widths": [4, 4, 4, 4], "decoder_widths": [4, 4, 4, 4], "head_hidden": 4}
EXTRA = {
    "asna": {
        "head_widths": [4, 4],
        "attention_width": 4,
        "residual_blocks": 1,
        "receptive_margin": 48,  # small tiles in the tiling test (not exact tiling)
    },
    "siamese_diff": {"head_widths": [4, 4], "receptive_margin": 48},
    "siamese_diff_convlstm": {"head_widths": [4, 4], "lstm_hidden": 4, "lstm_kernel": 3},
}


@functools.cache
def random_net(arch: str, seed: int) -> torch.nn.Module:
    """A small random network with a non-flat map (ASNA.from_networks copies it)."""
    probe = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(99))
    for attempt in range(50):
        torch.manual_seed(100 * seed + attempt)
        net = build_net(arch, {**SMALL, **EXTRA[arch]}).eval()
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
            net.head.out.weight.mul_(20.0)
            quality, weight = net.forward_maps(probe, probe.flip(-1))
        if quality.std() > 1e-3 and weight.std() > 1e-3:
            return net
    raise RuntimeError(f"no random {arch} network with a varying map")


def mixed_metric(mode: str, tile_size: int = 512) -> ASNA:
    """Three members of the three architectures: two spatial maps and the ConvLSTM's."""
    nets = [random_net(arch, i) for i, arch in enumerate(EXTRA)]
    return ASNA.from_networks(nets, self_ensemble=mode, tile_size=tile_size)  # type: ignore[arg-type]


def pair(seed: int, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.nn.functional.avg_pool2d(torch.rand(n, 3, h + 2, w + 2, generator=g), 3, 1)
    dist = (ref + 0.2 * torch.randn(n, 3, h, w, generator=g) * torch.linspace(0, 1, w)).clamp(0, 1)
    return dist, ref


def pooled(quality: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights * quality).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))


# --- the map: pooling, shapes, equivariance, locality -------------------------------------


@pytest.mark.parametrize("mode", ["none", "flips"])
@pytest.mark.parametrize("size", [(45, 77), (33, 130)])
def test_mixed_ensemble_map_shapes_and_pooling(mode: str, size: tuple[int, int]) -> None:
    metric = mixed_metric(mode)
    dist, ref = pair(1, 3, *size)
    quality, weights = metric.map(dist, ref, return_weights=True)
    assert quality.shape == weights.shape == (3, 1, *size)
    assert quality.dtype == weights.dtype == torch.float32
    assert quality.min() >= 0 and quality.max() <= 1 and weights.min() > 0
    torch.testing.assert_close(weights.sum(dim=(1, 2, 3)), torch.ones(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled(quality, weights), metric(dist, ref), rtol=0, atol=1e-6)
    # Each image of the batch gets its own map.
    alone = metric.map(dist[1:2], ref[1:2])
    torch.testing.assert_close(alone, quality[1:2], rtol=0, atol=1e-6)
    assert (quality[0] - quality[2]).abs().max() > 1e-5


def test_tiled_mixed_ensemble_map_pools_to_the_score() -> None:
    # The spatial members are tiled, the ConvLSTM member is processed whole; the
    # map must still pool to the score. With the ConvLSTM member the margins
    # are rounded up to its size multiple (64): tiles of 192 px, cores of 64.
    metric = mixed_metric("none", tile_size=192)
    dist, ref = pair(2, 2, 200, 203)
    quality, weights = metric.map(dist, ref, return_weights=True)
    assert quality.shape == (2, 1, 200, 203)
    torch.testing.assert_close(pooled(quality, weights), metric(dist, ref), rtol=0, atol=1e-6)
    untiled = mixed_metric("none", tile_size=1024)
    # The attention block's channel gate sees the whole tile: tiling is close, not exact.
    torch.testing.assert_close(untiled.map(dist, ref), quality, rtol=0, atol=2e-2)


@pytest.mark.parametrize("k", range(8))
def test_flips_map_follows_every_dihedral_transform(k: int) -> None:
    # Sizes multiples of the ConvLSTM member's size multiple (64): the padding
    # (bottom and right) does not break the symmetry. Non-square: the odd
    # elements transpose the image.
    metric = mixed_metric("flips")
    dist, ref = pair(3, 1, 64, 128)
    quality, weights = metric.map(dist, ref, return_weights=True)
    moved_q, moved_w = metric.map(
        apply_dihedral(dist, k), apply_dihedral(ref, k), return_weights=True
    )
    assert moved_q.shape[-2:] == apply_dihedral(quality, k).shape[-2:]
    torch.testing.assert_close(moved_q, apply_dihedral(quality, k), rtol=0, atol=1e-5)
    torch.testing.assert_close(moved_w, apply_dihedral(weights, k), rtol=0, atol=1e-7)


def test_map_of_a_local_network_changes_only_near_the_change() -> None:
    # siamese_diff is strictly local: measured receptive radius 68 px (nets/siamese.py).
    metric = ASNA.from_networks([random_net("siamese_diff", 1)], self_ensemble="none")
    dist, ref = pair(4, 1, 192, 192)
    changed = paste_region(dist, 1 - dist, (0, 0, 16, 16))
    before, after = metric.map(dist, ref), metric.map(changed, ref)
    reach = 16 + 80 + 8  # box, the default margin (above the radius), one map block
    far = ~box_mask(before.shape, (0, 0, reach, reach))
    assert (after - before).abs()[box_mask(before.shape, (0, 0, 16, 16))].max() > 1e-4
    torch.testing.assert_close(after[far], before[far], rtol=0, atol=1e-6)


def test_convlstm_member_map_repeats_over_its_grid() -> None:
    # The ConvLSTM member's map describes a position in every one of the 4x4
    # tiles: a change in the last tile shows in the first one, 180 px away.
    metric = ASNA.from_networks([random_net("siamese_diff_convlstm", 2)], self_ensemble="none")
    dist, ref = pair(5, 1, 256, 256)  # tiles of 64 px
    quality = metric.map(dist, ref)
    tiles = quality.unfold(-2, 64, 64).unfold(-2, 64, 64)  # (1, 1, 4, 4, 64, 64)
    torch.testing.assert_close(tiles, tiles[:, :, :1, :1].expand_as(tiles), rtol=0, atol=0)
    changed = paste_region(dist, 1 - dist, (200, 200, 16, 16))
    ghost = (metric.map(changed, ref) - quality)[..., 8:24, 8:24]
    assert ghost.abs().max() > 1e-6


# --- helpers of asna_metric.viz --------------------------------------------------------


def test_worst_pixels_marks_the_lowest_fraction() -> None:
    quality = torch.arange(200.0).reshape(1, 1, 10, 20) / 200
    mask = worst_pixels(torch.cat([quality, quality.flip(-1)]), 0.1)
    assert mask.shape == (2, 1, 10, 20) and mask.dtype == torch.bool
    assert mask.sum(dim=(1, 2, 3)).tolist() == [20, 20]
    assert mask[0, 0, 0].all() and not mask[0, 0, 1:].any()
    with pytest.raises(InputError, match="fraction"):
        worst_pixels(quality, 0.0)


def test_mask_iou_and_box_mask() -> None:
    a = box_mask((2, 1, 10, 10), (0, 0, 4, 4))
    b = box_mask((2, 1, 10, 10), (2, 2, 4, 4))
    torch.testing.assert_close(mask_iou(a, b), torch.full((2,), 4 / 28))
    torch.testing.assert_close(mask_iou(a, a), torch.ones(2))
    with pytest.raises(InputError, match="inside"):
        box_mask((10, 10), (8, 8, 4, 4))
    with pytest.raises(InputError, match="same shape"):
        mask_iou(a, b[:1])


def test_paste_region_changes_only_the_box() -> None:
    ref = torch.rand(2, 3, 40, 50)
    out = paste_region(ref, 1 - ref, (5, 10, 8, 12))
    inside = box_mask(out.shape, (5, 10, 8, 12))
    assert torch.equal(out[~inside], ref[~inside])
    assert torch.equal(out[inside], (1 - ref)[inside])
    with pytest.raises(InputError, match="shape"):
        paste_region(ref, ref[..., :49], (0, 0, 4, 4))


# --- rendering -----------------------------------------------------------------------------


def test_render_heatmap_has_colour_bar_on_the_score_scale_and_score_title() -> None:
    dist, _ = pair(6, 1, 40, 60)
    quality = torch.linspace(0.2, 0.9, 60).expand(1, 1, 40, 60)
    fig = render_heatmap(dist, quality, score=0.61234, title="case")
    assert "0.6123" in fig._suptitle.get_text()  # type: ignore[attr-defined]
    bar = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(bar) == 1 and "higher is better" in bar[0].get_ylabel()
    # Identical pairs score about 0.8-0.9 with the shipped weights, not 1.
    assert "1 = identical" not in bar[0].get_ylabel() and "0.8-0.9" in bar[0].get_ylabel()
    assert bar[0].get_ylim() == pytest.approx((0.0, 1.0))
    auto = render_heatmap(dist, quality, value_range="auto")
    auto_bar = next(ax for ax in auto.axes if ax.get_ylabel())
    assert auto_bar.get_ylim() == pytest.approx((0.2, 0.9), abs=1e-6)
    with_ref = render_heatmap(dist, quality, ref=dist)
    assert len(with_ref.axes) == len(fig.axes) + 2


@pytest.mark.parametrize("with_ref", [False, True])
def test_long_titles_are_wrapped_inside_the_figure(with_ref: bool) -> None:
    """The CLI's title (file names, weights, mode, score) is not cut at the figure's edges."""
    dist, _ = pair(7, 1, 288, 288)
    quality = torch.rand(1, 1, 288, 288)
    title = "dist.png vs ref.png (asna-quarter-kadid-synth, self-ensemble none)"
    fig = render_heatmap(dist, quality, ref=dist if with_ref else None, score=0.1567, title=title)
    fig.canvas.draw()
    heading = fig._suptitle  # type: ignore[attr-defined]
    assert " ".join(heading.get_text().split()) == f"{title}: ASNA 0.1567"
    box, page = heading.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
    for ax in fig.axes:  # nothing else leaves the figure either
        extent = ax.get_tightbbox()
        assert page.x0 - 1 <= extent.x0 and extent.x1 <= page.x1 + 1
        assert not extent.overlaps(box)


def test_save_heatmap_writes_an_image_with_the_map_in_it(tmp_path: Path) -> None:
    from PIL import Image

    dist = torch.full((1, 3, 64, 96), 0.5)
    quality = torch.ones(1, 1, 64, 96)
    quality[..., 16:48, 48:80] = 0.0  # the worst place: brightest in the default colours
    path = save_heatmap(tmp_path / "sub" / "heat.png", dist, quality, score=0.9, alpha=1.0)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert width >= 96 and height >= 64 and width < 2000 and height < 1500
    assert pixels.max() - pixels.min() > 100
    again = save_heatmap(tmp_path / "again.png", dist, quality, score=0.9, alpha=1.0)
    assert again.read_bytes() == path.read_bytes()  # deterministic


def test_render_heatmap_rejects_bad_arguments() -> None:
    dist, _ = pair(7, 2, 40, 40)
    quality = torch.rand(1, 1, 40, 40)
    with pytest.raises(InputError, match="one image"):
        render_heatmap(dist, quality)
    with pytest.raises(InputError, match="40x40"):
        render_heatmap(dist[0], quality[..., :32])
    with pytest.raises(InputError, match="alpha"):
        render_heatmap(dist[0], quality, alpha=1.5)
    with pytest.raises(InputError, match="value_range"):
        render_heatmap(dist[0], quality, value_range=(1.0, 0.0))
    with pytest.raises(InputError, match="cmap"):
        render_heatmap(dist[0], quality, cmap="no-such-map")
    with pytest.raises(InputError, match="suffix"):
        save_heatmap("heat.nope", dist[0], quality)


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"asna-metric\[eval\]"):
        render_heatmap(torch.rand(3, 32, 32), torch.rand(32, 32))


# --- with the shipped weights -------------------------------------------------------------

#: An 88x88 square (7,744 px, 9.3% of the 288x288 photo), off-centre, on the 8-px grid.
REGION = (96, 152, 88, 88)


@pytest.fixture(scope="module", params=["none", "flips"])
def shipped(request: pytest.FixtureRequest) -> ASNA:
    # The default weights are embedded: failing to load them is a broken install, not a skip.
    return ASNA(self_ensemble=request.param)  # the default, and all 8 views mapped back


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_shipped_map_finds_a_local_distortion(shipped: ASNA, assets: Path, kind: str) -> None:
    ref = to_batch(assets / "asna_pair" / "ref.png", name="ref")  # 288x288 stone wall
    if kind == "blur":
        distorted = gaussian_blur(ref, 5.0)  # KADID's strongest blur level
    else:
        distorted = white_noise(ref, 0.01, generator=torch.Generator().manual_seed(0))
    dist = paste_region(ref, distorted, REGION)
    quality = shipped.map(dist, ref)
    region = box_mask(quality.shape, REGION)
    iou = float(mask_iou(worst_pixels(quality, 0.1), region)[0])
    inside, outside = float(quality[region].mean()), float(quality[~region].mean())
    print(
        f"{kind}: IoU of the worst 10% with the region {iou:.3f}; mean quality inside "
        f"{inside:.3f}, outside {outside:.3f}"
    )
    assert inside < outside
    assert iou > 0.5
