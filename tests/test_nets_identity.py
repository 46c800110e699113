"""The identity property of ``asna_id``: an identical pair scores exactly 1, a loss of 0.

Every test runs on random networks (several seeds, and parameters perturbed
far from their initialisation, BatchNorm statistics included), so the
property is checked as one of the architecture, not of trained weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asna_metric.errors import InputError
from asna_metric.inputs import to_batch
from asna_metric.metric import ASNA, ASNALoss
from asna_metric.nets import ARCHITECTURES, ASNAIdentityNet, build_net
from asna_metric.nets.asna_id import smooth_magnitude
from helpers import assert_receptive_margin

# A small network: the same layers as the default, narrow, for fast tests.
SMALL = {
    "stem_channels": 8,
    "encoder_widths": [8, 16],
    "decoder_widths": [16, 8],
    "head_widths": [8, 8],
    "content_width": 8,
    "residual_blocks": 2,
    "head_hidden": 8,
}
SEEDS = (0, 1, 2)


def _net(seed: int, *, perturb: bool, config: dict[str, object] | None = None) -> ASNAIdentityNet:
    """A random ``asna_id`` network in eval mode; ``perturb`` moves every parameter far."""
    torch.manual_seed(seed)
    net = build_net("asna_id", SMALL if config is None else config)
    assert isinstance(net, ASNAIdentityNet)
    if perturb:
        g = torch.Generator().manual_seed(1000 + seed)
        with torch.no_grad():
            for p in net.parameters():
                scale = float(p.abs().mean()) + 0.1
                p.add_(scale * torch.randn(p.shape, generator=g))
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-1.0, 1.0, generator=g)
                    m.running_var.uniform_(0.05, 3.0, generator=g)
    return net.eval()


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    """Real photographs (and crops of odd sizes) from tests/assets, ``(1, 3, H, W)``."""
    root = Path(__file__).parent / "assets"
    ref = to_batch(root / "asna_pair" / "ref.png", name="ref")
    tid = to_batch(root / "tid2013_i01" / "I01.png", name="tid")
    return [ref[..., :96, :128], tid[..., 100:181, 37:150], tid[..., :64, :64]]


def _images(photos: list[torch.Tensor]) -> list[torch.Tensor]:
    """Photographs, flat images (grey, black, white), noise and a ramp; sides multiples of 16."""
    g = torch.Generator().manual_seed(7)
    out = [p[..., :64, :96] for p in photos[:2]]
    out += [torch.full((1, 3, 48, 64), v) for v in (0.5, 0.0, 1.0)]
    out.append(torch.rand(2, 3, 64, 48, generator=g))
    ramp = torch.linspace(0, 1, 80).view(1, 1, 1, 80).expand(1, 3, 32, 80)
    out.append(ramp.contiguous())
    return out


# --------------------------------------------------------------------- pieces


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0])
def test_smooth_magnitude_is_exactly_zero_and_flat_at_zero(dtype: torch.dtype, eps: float) -> None:
    x = torch.zeros(5, dtype=dtype, requires_grad=True)
    y = smooth_magnitude(x, eps)
    assert (y == 0).all() and y.dtype == dtype
    y.sum().backward()
    assert x.grad is not None and (x.grad == 0).all()
    # The direct form is exact in float32 (a correctly rounded sqrt of a correctly
    # rounded square) but not in float16, where eps**2 falls to a subnormal.
    if dtype == torch.float16 and eps == 1e-3:
        e = torch.tensor(eps, dtype=dtype)
        assert torch.sqrt(torch.zeros((), dtype=dtype) ** 2 + e * e) - e != 0


def test_smooth_magnitude_equals_the_direct_form_and_does_not_overflow() -> None:
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    for eps in (1e-3, 0.1, 1.0):
        direct = torch.sqrt(x**2 + eps**2) - eps
        torch.testing.assert_close(smooth_magnitude(x, eps), direct, rtol=1e-12, atol=1e-12)
    assert (smooth_magnitude(x, 0.1) >= 0).all()
    big = torch.tensor([6e4, -6e4, 300.0], dtype=torch.float16)
    y = smooth_magnitude(big, 0.1)
    assert torch.isfinite(y).all() and (y > 0).all()  # x**2 would overflow float16


def test_quality_map_is_monotone_with_the_top_pinned_at_zero_distance() -> None:
    net = _net(0, perturb=True)
    d = torch.cat((torch.zeros(1), torch.logspace(-8, 3, 200)))
    r = net.impairment(d)
    assert r[0] == 0 and (r >= 0).all() and (r <= 1).all()
    assert (r[1:] >= r[:-1]).all() and r[-1] > 0.99
    assert r[1:].min() > 0  # strictly lower quality for any positive distance


def test_difference_path_has_no_bias_and_no_normalisation() -> None:
    net = _net(0, perturb=False)
    path = [net.bottom, *net.decoder, net.trunk, net.residuals, net.hidden]
    modules = [m for block in path for m in block.modules()]
    convs = [m for m in modules if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.bias is None for m in convs)
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in modules)


# ----------------------------------------------------------- the network alone


@pytest.mark.parametrize("perturb", [False, True], ids=["init", "perturbed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_identical_pair_scores_exactly_one(
    seed: int, perturb: bool, photos: list[torch.Tensor]
) -> None:
    net = _net(seed, perturb=perturb)
    for x in _images(photos):
        for layout in (torch.contiguous_format, torch.channels_last):
            xl = x.contiguous(memory_format=layout)
            with torch.no_grad():
                quality, weight = net.forward_maps(xl, xl.clone())
                distance, _ = net.distance_maps(xl, xl.clone())
                score = net(xl, xl.clone())
            assert (distance == 0).all()
            assert (quality == 1).all() and (weight > 0).all()
            assert (score == 1).all(), (tuple(x.shape), score)


@pytest.mark.parametrize("seed", SEEDS)
def test_identity_holds_in_training_mode_and_batched_with_other_pairs(
    seed: int, photos: list[torch.Tensor]
) -> None:
    net = _net(seed, perturb=True)
    x = photos[0][..., :64, :96]
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(
        0, 1
    )
    # An identical pair next to a distorted one in the batch, in both orders.
    dist = torch.cat((x, noisy, x.flip(-1)))
    ref = torch.cat((x, x, x.flip(-1)))
    for mode in (False, True):
        net.train(mode)
        score = net(dist, ref)
        assert score[0] == 1 and score[2] == 1 and score[1] < 1


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_is_exactly_zero_at_identity(seed: int, photos: list[torch.Tensor]) -> None:
    net = _net(seed, perturb=True)
    x = photos[1][..., :64, :96]
    dist = x.clone().requires_grad_(True)
    ref = x.clone().requires_grad_(True)
    loss = 1 - net(dist, ref)
    loss.sum().backward()
    assert loss.item() == 0
    assert dist.grad is not None and ref.grad is not None
    assert (dist.grad == 0).all() and (ref.grad == 0).all()
    # The parameters get no gradient from an identical pair either.
    assert all(p.grad is None or (p.grad == 0).all() for p in net.parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_distortions_score_below_one_with_a_gradient(seed: int, photos: list[torch.Tensor]) -> None:
    from asna_metric.data.distortions import distort

    net = _net(seed, perturb=False)
    x = photos[0][..., :96, :128]
    g = torch.Generator().manual_seed(seed)
    distorted = {
        "noise": (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "brighten_30": (x + 30 / 255).clamp(0, 1),
        "blur": distort(x, "GBLUR", 3, seed=0),
        "jpeg": distort(x, "JPEG", 4, seed=0),
        "one_pixel": x.clone().index_put_((torch.tensor([0]),) * 2, torch.tensor(1.0)),
    }
    for name, y in distorted.items():
        dist = y.clone().requires_grad_(True)
        score = net(dist, x)
        assert score.item() < 1, name
        score.sum().backward()
        assert dist.grad is not None and torch.isfinite(dist.grad).all(), name
        assert dist.grad.abs().max() > 0, name
    # Noise of increasing strength scores lower.
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        scores = [float(net((x + s * noise).clamp(0, 1), x)) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]


def test_paper_shaped_and_half_resolution_variants_keep_the_identity(
    photos: list[torch.Tensor],
) -> None:
    x = photos[0][..., :64, :96]
    paper = {"encoder_widths": [4, 4, 8, 8], "encoder_kernels": [5, 5, 3, 3]}
    half = {"encoder_widths": [8, 8, 16], "encoder_kernels": [3, 3, 3]}
    for config in (
        {**paper, "input_unshuffle": 1, "decoder_widths": [8, 8, 4, 4], "stem_kernel": 5},
        {**half, "input_unshuffle": 2, "decoder_widths": [16, 8, 8]},
        {"distortion_weighting": False, "batch_norm": False, "quality_terms": 1},
    ):
        net = _net(3, perturb=True, config={**SMALL, **config})
        with torch.no_grad():
            assert net(x, x).item() == 1
            assert net((x + 0.1).clamp(0, 1), x).item() < 1


def test_config_round_trip_and_rejected_shapes() -> None:
    assert ARCHITECTURES["asna_id"] is ASNAIdentityNet
    net = _net(0, perturb=True)
    config = json.loads(json.dumps(net.config))
    rebuilt = build_net("asna_id", config)
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    assert rebuilt.config == net.config and net.size_multiple == 16 and net.map_stride == 8
    with pytest.raises(InputError, match="1/8"):
        three_levels = {"encoder_widths": [8, 8, 8], "encoder_kernels": [3, 3, 3]}
        build_net("asna_id", {**three_levels, "decoder_widths": [8, 8, 8]})
    with pytest.raises(InputError, match="input_unshuffle"):
        build_net("asna_id", {"input_unshuffle": 3})
    with pytest.raises(InputError, match="magnitude_eps"):
        build_net("asna_id", {"magnitude_eps": 0.0})


# ------------------------------------------------------------ through the metric


def _metric(seed: int, *, perturb: bool = True, **options: object) -> ASNA:
    return ASNA.from_networks([_net(seed, perturb=perturb)], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["none", "flips", "full"])
def test_metric_scores_identity_exactly_one_in_every_self_ensemble_mode(
    mode: str, photos: list[torch.Tensor]
) -> None:
    metric = _metric(0, self_ensemble=mode)
    # Odd sizes: ASNA pads them (reflection) to a multiple of 16.
    x = torch.cat((photos[1], photos[1].flip(-2)))  # (2, 3, 81, 113)
    flat = torch.full((1, 3, 37, 45), 0.5)
    for img in (x, flat, photos[2]):
        assert (metric(img, img.clone()) == 1).all()
        assert (metric.map(img, img.clone()) == 1).all()
    y = (x + 0.05).clamp(0, 1)
    assert (metric(y, x) < 1).all()


def test_metric_is_exact_tiled_and_untiled() -> None:
    x = to_batch(Path(__file__).parent / "assets" / "tid2013_i01" / "I01.png", name="x")
    x = x[..., :290, :370]  # padded to 304x384: 2x2 tiles of 240 px
    untiled = _metric(1, perturb=False)
    tiled = _metric(1, perturb=False, tile_size=240)  # the smallest: 2 x 112 px margin + 16
    assert tiled.tile_size == 240
    for metric in (untiled, tiled):
        assert metric(x, x.clone()).item() == 1
        assert (metric.map(x, x.clone()) == 1).all()
    # The margin covers the strict receptive radius: tiled equals untiled up to
    # float rounding for a distorted pair too.
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    a, b = untiled.map(y, x), tiled.map(y, x)
    assert a.max() < 1
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["none", "flips", "full"])
def test_loss_is_zero_with_zero_gradient_at_identity(mode: str, photos: list[torch.Tensor]) -> None:
    loss_fn = ASNALoss.from_metric(_metric(2, self_ensemble=mode))
    x = photos[1][..., :50, :70]
    restored = x.clone().requires_grad_(True)
    loss = loss_fn(restored, x)
    assert loss.item() == 0
    loss.backward()
    assert restored.grad is not None and (restored.grad == 0).all()
    # Away from identity the loss is positive and has a gradient.
    start = (x + 0.05).clamp(0, 1).requires_grad_(True)
    loss = loss_fn(start, x)
    loss.backward()
    assert loss.item() > 0 and start.grad is not None and start.grad.abs().max() > 0


def test_optimising_the_loss_on_pixels_moves_towards_the_reference(
    photos: list[torch.Tensor],
) -> None:
    # The failure of issue 14: maximising the score from a noisy start moved
    # away from the reference. With the optimum at identity it must not.
    loss_fn = ASNALoss.from_metric(_metric(0, perturb=False))
    x = photos[0][..., :64, :64]
    g = torch.Generator().manual_seed(0)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    start = float((y.detach() - x).pow(2).mean())
    optimizer = torch.optim.Adam([y], lr=3e-3)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn(y, x)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            y.clamp_(0, 1)
    assert loss_fn(y, x).item() < first
    assert float((y.detach() - x).pow(2).mean()) < start


@pytest.mark.slow
# inductor calls torch.jit.script_method internally (deprecated in torch 2.13), and
# dynamo reads .grad of non-leaf tensors while tracing the backward-enabled call.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_identity_under_torch_compile(photos: list[torch.Tensor]) -> None:
    pytest.importorskip("torch._inductor")
    metric = _metric(0)
    metric.compile()
    x = photos[0][..., :64, :96]
    try:
        score = metric(x, x.clone())
    except Exception as exc:  # no C++ compiler on this host
        if "compiler" in str(exc).lower() or "InvalidCxxCompiler" in type(exc).__name__:
            pytest.skip(f"torch.compile needs a C++ compiler: {exc}")
        raise
    assert score.item() == 1
    y = (x + 0.05).clamp(0, 1)
    assert metric(y, x).item() < 1
    restored = x.clone().requires_grad_(True)
    loss = ASNALoss.from_metric(metric)(restored, x)
    loss.backward()
    assert loss.item() == 0 and restored.grad is not None and (restored.grad == 0).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_identity_on_cuda(dtype: torch.dtype, photos: list[torch.Tensor]) -> None:
    metric = _metric(0).to(device="cuda", dtype=dtype)
    x = photos[0][..., :96, :128].to("cuda")
    for mode_metric in (metric, ASNA.from_networks(list(metric.members), self_ensemble="flips")):
        assert mode_metric(x, x.clone()).item() == 1
        assert (mode_metric.map(x, x.clone()) == 1).all()
    y = (x + 0.05).clamp(0, 1)
    assert metric(y, x).item() < 1
    restored = x.clone().requires_grad_(True)
    loss = ASNALoss.from_metric(metric)(restored, x)
    loss.backward()
    assert loss.item() == 0 and restored.grad is not None and (restored.grad == 0).all()


def test_receptive_margin_bounds_the_influence_of_a_pixel() -> None:
    # No global pooling: a pixel changes no map cell farther than the margin.
    net = _net(4, perturb=False, config={})
    g = torch.Generator().manual_seed(4)
    ref = torch.rand(1, 3, 320, 320, generator=g)
    dist = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    pixel = 157
    assert_receptive_margin(net, dist, ref, pixel)


def test_metric_gradient_with_respect_to_ref_is_exactly_zero_at_identity() -> None:
    metric = ASNA.from_networks([_net(0, perturb=False)], self_ensemble="full")
    x = torch.rand(3, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    ref = x.clone().requires_grad_(True)
    loss = ASNALoss.from_metric(metric)(x.clone(), ref)
    loss.backward()
    assert loss.item() == 0 and ref.grad is not None
    assert (ref.grad == 0).all()


def test_an_affine_calibration_of_an_identity_exact_network_is_refused(tmp_path: Path) -> None:
    from asna_metric.errors import WeightsIntegrityError
    from asna_metric.weights import save_ensemble

    path = tmp_path / "calibrated.safetensors"
    save_ensemble(
        path,
        [_net(0, perturb=False)],
        name="asna-id-calibrated",
        extra_metadata={"calibration": json.dumps({"scale": 1.2, "offset": -0.1})},
    )
    with pytest.raises(WeightsIntegrityError, match="top of the scale"):
        ASNA(weights=str(path))
    plain = tmp_path / "plain.safetensors"
    save_ensemble(plain, [_net(0, perturb=False)], name="asna-id")
    metric = ASNA(weights=str(plain))
    assert metric.identity_exact
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    assert metric(x, x).item() == 1.0
