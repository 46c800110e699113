"""Tests of asna_metric.metric: the ASNA module and ASNALoss, with tiny random networks."""

from __future__ import annotations

import copy
import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from asna_metric.ensemble import apply_view, invert_dihedral, views
from asna_metric.errors import InputError
from asna_metric.metric import ASNA, ASNALoss
from asna_metric.nets import build_net
from asna_metric.weights import save_ensemble

TINY = {
    "encoder_widths": [4, 4, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "head_hidden": 4,
}


def tiny_net(arch: str = "asna", seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A small random network whose maps vary (cached: ASNA.from_networks copies it)."""
    return _tiny_net(arch, seed, tuple(sorted(overrides.items())))


@functools.cache
def _tiny_net(arch: str, seed: int, overrides: tuple[tuple[str, object], ...]) -> torch.nn.Module:
    """Build the network of :func:`tiny_net`.

    BatchNorm gets non-trivial running statistics and the head's last layer is
    amplified; among the random initialisations derived from ``seed`` the
    first one whose quality and weight maps both vary on a probe pair is used
    (tiny random heads are often flat).
    """
    config: dict[str, object] = dict(TINY)
    if arch == "asna":
        config.update(attention_width=4, residual_blocks=1, receptive_margin=32)
    if arch == "siamese_diff_convlstm":
        config.update(lstm_hidden=4, lstm_kernel=3)
    config.update(dict(overrides))
    probe = pair(1000, 1, 64, 64)
    for attempt in range(100):
        torch.manual_seed(1000 * seed + attempt)
        net = build_net(arch, config).eval()
        generator = torch.Generator().manual_seed(attempt)
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                    module.running_var.uniform_(0.5, 2.0, generator=generator)
            net.head.out.weight.mul_(30.0)
            quality, weight = net.forward_maps(*probe)
        if quality.std() > 1e-3 and weight.std() > 1e-3:
            return net
    raise RuntimeError("no varying tiny network found")


def pair(seed: int, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.nn.functional.avg_pool2d(torch.rand(n, 3, h + 2, w + 2, generator=g), 3, 1)
    noise = 0.15 * torch.randn(n, 3, h, w, generator=g) * torch.linspace(0, 1, w)
    return (ref + noise).clamp(0, 1), ref


def pooled(quality: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights * quality).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_ensemble(path, [tiny_net(seed=0), tiny_net(seed=1)], name="tiny-test")
    return path


@pytest.fixture(scope="module")
def metric(weights_file: Path) -> ASNA:
    return ASNA(weights_file, self_ensemble="none")


def test_loads_weights_file_and_describes_itself(weights_file: Path) -> None:
    metric = ASNA(weights_file)
    assert len(metric.members) == 2
    assert metric.weights_name == "tiny-test" and metric.weights_revision is None
    text = repr(metric)
    assert "tiny-test" in text and "self_ensemble='none'" in text and "sha256=" in text
    assert ASNA.higher_is_better and ASNA.score_range == (0.0, 1.0)
    assert not metric.training
    assert all(not p.requires_grad for p in metric.parameters())


def test_output_shape_dtype_and_range(metric: ASNA) -> None:
    dist, ref = pair(0, 3, 40, 56)
    scores = metric(dist, ref)
    assert scores.shape == (3,) and scores.dtype == torch.float32
    assert scores.min() >= 0 and scores.max() <= 1
    single = metric(dist[0], ref[0])  # (3, H, W) input
    assert single.shape == (1,)
    torch.testing.assert_close(single, scores[:1])
    assert not scores.requires_grad
    scores.add_(0)  # a normal tensor, not an inference tensor


def test_batch_equals_items(metric: ASNA) -> None:
    dist, ref = pair(1, 3, 48, 48)
    batch = metric(dist, ref)
    items = torch.cat([metric(dist[i : i + 1], ref[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, items, rtol=0, atol=1e-6)


def test_identical_images_differ_from_distorted_ones(metric: ASNA) -> None:
    dist, ref = pair(2, 1, 64, 64)
    assert not torch.equal(metric(ref, ref), metric(dist, ref))


@pytest.mark.parametrize("size", [(32, 32), (45, 77), (288, 288)])
def test_sizes(metric: ASNA, size: tuple[int, int]) -> None:
    dist, ref = pair(3, 1, *size)
    score = metric(dist, ref)
    quality, weights = metric.map(dist, ref, return_weights=True)
    assert quality.shape == weights.shape == (1, 1, *size)
    assert torch.isfinite(score).all()
    torch.testing.assert_close(pooled(quality, weights), score, rtol=0, atol=1e-6)


def test_numpy_and_tensor_inputs_agree(metric: ASNA) -> None:
    dist, ref = pair(4, 1, 40, 40)
    arrays = [(t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t in (dist, ref)]
    tensors = [torch.from_numpy(a).permute(2, 0, 1).float().div(255) for a in arrays]
    torch.testing.assert_close(metric(*arrays), metric(*tensors), rtol=0, atol=0)


def test_invalid_inputs_and_options_raise(metric: ASNA, weights_file: Path) -> None:
    dist, ref = pair(5, 1, 40, 40)
    with pytest.raises(InputError, match="same shape"):
        metric(dist, ref[..., :39])
    with pytest.raises(InputError, match="at least 32x32"):
        metric(dist[..., :16, :16], ref[..., :16, :16])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        metric(dist * 255, ref)
    with pytest.raises(InputError, match="self_ensemble"):
        ASNA(weights_file, self_ensemble="everything")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="tile_size must be at least"):
        ASNA(weights_file, tile_size=64)
    with pytest.raises(InputError, match="at least one network"):
        ASNA.from_networks([])
    with pytest.raises(InputError, match="reduction"):
        ASNALoss.from_metric(metric, reduction="max")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["flips", "full"])
def test_self_ensemble_is_the_mean_of_its_views(mode: str) -> None:
    nets = [tiny_net(seed=0), tiny_net("siamese_diff", seed=1)]
    ensemble = ASNA.from_networks(nets, self_ensemble=mode)  # type: ignore[arg-type]
    singles = [ASNA.from_networks([net], self_ensemble="none") for net in nets]
    dist, ref = pair(6, 1, 32, 48)  # multiples of 16: views commute with the padding
    by_hand = torch.stack(
        [
            single(apply_view(dist, view), apply_view(ref, view))
            for single in singles
            for view in views(mode)  # type: ignore[arg-type]
        ]
    ).mean(dim=0)
    torch.testing.assert_close(ensemble(dist, ref), by_hand, rtol=0, atol=1e-6)
    # ... and the views do not all give the same score.
    per_view = [singles[0](apply_view(dist, v), apply_view(ref, v)) for v in views(mode)]  # type: ignore[arg-type]
    assert max(float((s - per_view[0]).abs().max()) for s in per_view) > 1e-6


def test_map_view_is_brought_back_to_the_original_orientation() -> None:
    net = tiny_net(seed=2)
    single = ASNA.from_networks([net], self_ensemble="none")
    dist, ref = pair(7, 1, 48, 64)
    k = 5  # a flip then a quarter turn
    rotated = single.map(apply_view(dist, views("flips")[k]), apply_view(ref, views("flips")[k]))
    back = invert_dihedral(rotated, k)
    assert back.shape == (1, 1, 48, 64)


@pytest.mark.parametrize("mode", ["none", "flips", "full"])
def test_map_pooling_equals_score(mode: str) -> None:
    metric = ASNA.from_networks([tiny_net(seed=0), tiny_net(seed=1)], self_ensemble=mode)  # type: ignore[arg-type]
    dist, ref = pair(8, 2, 45, 77)
    quality, weights = metric.map(dist, ref, return_weights=True)
    torch.testing.assert_close(weights.sum(dim=(1, 2, 3)), torch.ones(2), rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled(quality, weights), metric(dist, ref), rtol=0, atol=1e-6)
    assert quality.min() >= 0 and quality.max() <= 1
    assert quality.std() > 1e-4  # a real map, not a constant


@pytest.mark.parametrize("mode", ["none", "flips"])
def test_tiled_map_pooling_equals_tiled_score(mode: str) -> None:
    metric = ASNA.from_networks([tiny_net(seed=3)], self_ensemble=mode, tile_size=128)  # type: ignore[arg-type]
    dist, ref = pair(9, 1, 100, 141)  # cores of 64 px: 2 x 3 tiles
    quality, weights = metric.map(dist, ref, return_weights=True)
    assert quality.shape == (1, 1, 100, 141)
    torch.testing.assert_close(pooled(quality, weights), metric(dist, ref), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "overrides", "tolerance"),
    [
        # Strictly local networks with a margin >= their receptive radius
        # (measured: 68 px without attention and residual blocks): exact.
        ("siamese_diff", {}, 1e-5),
        ("asna", {"attention_width": 0, "residual_blocks": 0, "receptive_margin": 80}, 1e-5),
        # At half resolution (measured radius 151 px with one residual block).
        (
            "asna",
            {
                "attention_width": 0,
                "residual_blocks": 0,
                "receptive_margin": 160,
                "input_unshuffle": 2,
                "stem_channels": 12,
            },
            1e-5,
        ),
        # The attention block's channel gate averages over the whole tile: close only.
        ("asna", {}, 2e-3),
    ],
)
def test_tiled_result_is_close_to_untiled(arch: str, overrides: dict, tolerance: float) -> None:
    net = tiny_net(arch, seed=4, **overrides)
    margin = -(-net.receptive_margin // net.size_multiple) * net.size_multiple
    tile = 2 * margin + 64
    untiled = ASNA.from_networks([net], self_ensemble="none", tile_size=1024)
    tiled = ASNA.from_networks([net], self_ensemble="none", tile_size=tile)
    dist, ref = pair(10, 1, tile + 50, tile + 90)  # 2 x 3 tiles (the last ones shifted)
    torch.testing.assert_close(tiled(dist, ref), untiled(dist, ref), rtol=0, atol=tolerance)
    torch.testing.assert_close(
        tiled.map(dist, ref), untiled.map(dist, ref), rtol=0, atol=10 * tolerance
    )


def test_default_tile_size_is_the_smallest_of_the_members() -> None:
    half = tiny_net(input_unshuffle=2, stem_channels=12, receptive_margin=64)
    assert ASNA.from_networks([half]).tile_size == 1024
    assert ASNA.from_networks([half, tiny_net(seed=1)]).tile_size == 512
    assert ASNA.from_networks([half], tile_size=700).tile_size == 672  # multiple of 32
    with pytest.raises(InputError, match="tile_size must be an int or None"):
        ASNA.from_networks([half], tile_size=512.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 6])
def test_flips_ensemble_map_is_equivariant(k: int) -> None:
    metric = ASNA.from_networks([tiny_net(seed=5)], self_ensemble="flips")
    dist, ref = pair(11, 1, 48, 48)
    view = views("flips")[k]
    moved = metric.map(apply_view(dist, view), apply_view(ref, view))
    expected = apply_view(metric.map(dist, ref).expand(-1, 3, -1, -1), view)[:, :1]
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-5)
    # Without the self-ensemble the network alone is not equivariant.
    single = ASNA.from_networks([tiny_net(seed=5)], self_ensemble="none")
    moved = single.map(apply_view(dist, view), apply_view(ref, view))
    expected = apply_view(single.map(dist, ref).expand(-1, 3, -1, -1), view)[:, :1]
    assert (moved - expected).abs().max() > 1e-5


def test_gradients_reach_dist_not_weights(metric: ASNA) -> None:
    dist, ref = pair(12, 2, 40, 40)
    dist.requires_grad_(True)
    score = metric(dist, ref)
    assert score.requires_grad
    score.sum().backward()
    assert dist.grad is not None and torch.isfinite(dist.grad).all()
    assert dist.grad.abs().sum() > 0
    assert all(p.grad is None for p in metric.parameters())
    quality = metric.map(dist, ref)
    assert quality.requires_grad
    with torch.no_grad():
        assert not metric(dist, ref).requires_grad


def test_loss_decreases_along_its_gradient() -> None:
    metric = ASNA.from_networks([tiny_net(seed=6)], self_ensemble="flips")
    loss_fn = ASNALoss.from_metric(metric)
    dist, ref = pair(13, 2, 32, 32)
    dist = (0.1 + 0.8 * dist).requires_grad_(True)  # away from the clipping range
    loss = loss_fn(dist, ref)
    loss.backward()
    assert dist.grad is not None
    step = 1e-2 * dist.grad / dist.grad.abs().max()
    with torch.no_grad():
        assert loss_fn(dist - step, ref) < loss
        assert loss_fn(dist + step, ref) > loss
    none = ASNALoss.from_metric(metric, reduction="none")(dist, ref)
    total = ASNALoss.from_metric(metric, reduction="sum")(dist, ref)
    assert none.shape == (2,)
    torch.testing.assert_close(none, 1 - metric(dist, ref))
    torch.testing.assert_close(total, none.sum())
    torch.testing.assert_close(loss, none.mean())
    assert not ASNALoss.higher_is_better


def test_loss_accepts_overshoot_and_pushes_it_back_into_range() -> None:
    """A residual network's output slightly outside [0, 1] gives a finite loss, no error.

    The gradient of every pixel outside the range points back into it (a
    descent step moves it towards [0, 1]); the metric itself stays strict.
    """
    metric = ASNA.from_networks([tiny_net(seed=6)], self_ensemble="none")
    loss_fn = ASNALoss.from_metric(metric, reduction="none")
    dist, ref = pair(31, 2, 32, 40)
    dist = dist * 1.2 - 0.1  # about [-0.1, 1.1], like a residual network's output
    dist[0, 0, 0, 0], dist[1, 2, 5, 7] = 1.105, -0.08
    dist.requires_grad_(True)
    with pytest.raises(InputError, match=r"must hold values in \[0, 1\]"):
        metric(dist, ref)
    loss = loss_fn(dist, ref)
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert dist.grad is not None
    high, low = dist.detach() > 1, dist.detach() < 0
    assert high.any() and low.any()
    assert (dist.grad[high] > 0).all()  # descent lowers values above 1
    assert (dist.grad[low] < 0).all()  # and raises values below 0
    assert dist.grad[0, 0, 0, 0] > 0 and dist.grad[1, 2, 5, 7] < 0
    # Inside the range the loss is exactly 1 - score; the penalty only adds.
    clamped = dist.detach().clamp(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(loss_fn(clamped, ref), 1 - metric(clamped, ref))
        assert (loss_fn(dist, ref) > loss_fn(clamped, ref)).all()
        off = ASNALoss.from_metric(metric, reduction="none", range_weight=0.0)(dist, ref)
        torch.testing.assert_close(off, 1 - metric(clamped, ref))


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (float("nan"), "contains 1 NaN"),
        (float("inf"), "contains 1 NaN or infinite"),
        (1.6, r"tolerance 0\.5\). Fix: it looks like \[0, 255\]"),
        (-0.7, r"tolerance 0\.5\). Fix: it looks like \[-1, 1\]"),
    ],
)
def test_loss_still_rejects_non_finite_and_far_out_of_range_inputs(
    value: float, pattern: str
) -> None:
    loss_fn = ASNALoss.from_metric(ASNA.from_networks([tiny_net(seed=6)]))
    dist, ref = pair(32, 1, 32, 32)
    dist[0, 1, 2, 3] = value
    with pytest.raises(InputError, match=pattern):
        loss_fn(dist, ref)
    with pytest.raises(InputError, match="range_weight"):
        ASNALoss.from_metric(loss_fn.metric, range_weight=-1.0)


def test_deterministic(metric: ASNA) -> None:
    dist, ref = pair(14, 2, 45, 50)
    assert torch.equal(metric(dist, ref), metric(dist, ref))
    assert torch.equal(metric.map(dist, ref), metric.map(dist, ref))


def test_stays_in_eval_and_does_not_touch_the_given_networks() -> None:
    net = build_net("asna", TINY).train()
    metric = ASNA.from_networks([net])
    metric.train()
    assert not metric.training and not any(m.training for m in metric.modules())
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_members_are_averaged() -> None:
    nets = [tiny_net(seed=7), tiny_net("siamese_diff", seed=8)]
    dist, ref = pair(15, 2, 48, 48)
    both = ASNA.from_networks(nets, self_ensemble="none")(dist, ref)
    each = [ASNA.from_networks([n], self_ensemble="none")(dist, ref) for n in nets]
    torch.testing.assert_close(both, (each[0] + each[1]) / 2, rtol=0, atol=1e-6)


def test_convlstm_member_any_size_and_no_tiling() -> None:
    net = tiny_net("siamese_diff_convlstm", seed=9)
    metric = ASNA.from_networks([net], self_ensemble="none", tile_size=64)
    dist, ref = pair(16, 1, 45, 77)  # padded to 64 x 128 (several reflections)
    quality, weights = metric.map(dist, ref, return_weights=True)
    torch.testing.assert_close(pooled(quality, weights), metric(dist, ref), rtol=0, atol=1e-6)
    dist, ref = pair(17, 1, 128, 192)  # larger than tile_size, yet processed whole
    with torch.no_grad():
        torch.testing.assert_close(metric(dist, ref), net(dist, ref), rtol=0, atol=1e-6)


def test_lower_precision_members() -> None:
    metric = ASNA.from_networks([tiny_net("siamese_diff", seed=10)], self_ensemble="full")
    dist, ref = pair(18, 1, 32, 32)
    reference = metric(dist, ref)
    low = metric.to(torch.bfloat16)(dist, ref)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, reference, rtol=0, atol=2e-2)


@pytest.mark.slow
def test_large_pair_is_tiled() -> None:
    metric = ASNA.from_networks([tiny_net("siamese_diff", seed=11)], self_ensemble="none")
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 2048, 2048, generator=g)
    dist = (ref + 0.05).clamp(0, 1)
    score = metric(dist, ref)
    assert score.shape == (1,) and torch.isfinite(score).all()


@pytest.mark.parametrize("arch", ["asna", "siamese_diff", "siamese_diff_convlstm"])
def test_fast_inference_path_does_not_move_scores(arch: str) -> None:
    """channels_last and the single encoder pass for both images change scores by < 1e-5.

    The reference is the plain computation: the network in the default memory
    format with one encoder pass per image (as in training).
    """
    net = tiny_net(arch, seed=3)
    metric = ASNA.from_networks([net], self_ensemble="none")
    assert (
        metric.members[0].backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    )
    plain = copy.deepcopy(net).eval()
    plain.backbone.training = True  # separate encoder passes; BatchNorm stays in eval
    dist, ref = pair(21, 2, 128, 192)  # multiples of every size_multiple: no padding
    with torch.no_grad():
        expected = pooled(*plain.forward_maps(dist, ref))
        fast = metric.members[0].forward_maps(
            dist.contiguous(memory_format=torch.channels_last),
            ref.contiguous(memory_format=torch.channels_last),
        )
    torch.testing.assert_close(metric(dist, ref), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled(*fast), expected, rtol=0, atol=1e-5)


def test_compiled_networks_give_the_same_scores() -> None:
    """``ASNA.compile()`` compiles the members' maps; scores stay within 1e-5; copies work."""
    pytest.importorskip("torch._inductor")
    metric = ASNA.from_networks([tiny_net(seed=5)], self_ensemble="none")
    dist, ref = pair(22, 1, 48, 64)
    eager = metric(dist, ref)
    metric.compile(backend="eager")  # graph capture without a C++ toolchain: fast, portable
    torch.testing.assert_close(metric(dist, ref), eager, rtol=0, atol=1e-5)
    assert len(metric._compiled) == 1
    clone = copy.deepcopy(metric)
    assert clone._compiled == {} and clone._compile_options == {"backend": "eager"}
    torch.testing.assert_close(clone(dist, ref), eager, rtol=0, atol=1e-5)


@pytest.mark.parametrize("multiple", [16, 64])
def test_tile_grid_partitions_with_margins_and_balanced_tiles(multiple: int) -> None:
    from asna_metric.tiling import tile_grid as _tile_grid

    for length in range(multiple, 3000, multiple):
        for tile, margin in ((512, 80), (512, 96), (768, 144), (1024, 64)):
            margin = -(-margin // multiple) * multiple
            tile = tile // multiple * multiple
            grid = _tile_grid(length, tile, margin, multiple)
            cores = [(c0, c1) for _, _, c0, c1 in grid]
            assert cores[0][0] == 0 and cores[-1][1] == length
            assert all(a[1] == b[0] for a, b in itertools.pairwise(cores))
            sizes = {t1 - t0 for t0, t1, _, _ in grid}
            assert len(sizes) == 1 and max(sizes) <= tile  # one size, at most `tile`
            for t0, t1, c0, c1 in grid:
                assert 0 <= t0 <= c0 < c1 <= t1 <= length
                assert c0 - t0 >= margin or t0 == 0
                assert t1 - c1 >= margin or t1 == length
                assert all(v % multiple == 0 for v in (t0, t1, c0, c1))
    # A 1024 px axis with 512 px tiles and 80 px margins: three 448 px tiles, not 512.
    assert [t1 - t0 for t0, t1, _, _ in _tile_grid(1024, 512, 80)] == [448, 448, 448]
