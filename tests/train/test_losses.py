from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from asna_metric.errors import InputError, UnknownWeightsError
from asna_metric.train import (
    ASNATrainingLoss,
    ListwiseKLLoss,
    MSELoss,
    PearsonLoss,
    RankLoss,
    SoftRankLoss,
    asna_training_loss,
    listwise_kl_loss,
    load_sorter,
    mse_loss,
    pearson_loss,
    rank_loss,
    soft_rank,
    soft_rank_loss,
)
from asna_metric.train.sorter import exact_ranks

pytestmark = pytest.mark.usefixtures("one_thread")


# name -> (function, module factory); every loss takes (pred, target) and returns a tensor.
LOSSES = {
    "mse": (mse_loss, MSELoss),
    "pearson": (pearson_loss, PearsonLoss),
    "pearson_squared": (
        lambda p, t: pearson_loss(p, t, squared=True),
        lambda: PearsonLoss(squared=True),
    ),
    "rank_learned": (rank_loss, RankLoss),
    "soft_rank": (soft_rank_loss, SoftRankLoss),
    "listwise_kl": (listwise_kl_loss, ListwiseKLLoss),
    "combined": (asna_training_loss, ASNATrainingLoss),
    "combined_soft": (
        lambda p, t: asna_training_loss(p, t, rank="soft"),
        lambda: ASNATrainingLoss(rank="soft"),
    ),
    "combined_kl": (
        lambda p, t: asna_training_loss(p, t, rank="listwise_kl", pearson="squared"),
        lambda: ASNATrainingLoss(rank="listwise_kl", pearson="squared"),
    ),
}
FUNCTIONS = [pytest.param(f, id=k) for k, (f, _) in LOSSES.items()]
MODULES = [pytest.param(m, id=k) for k, (_, m) in LOSSES.items()]


def _pair(generator: torch.Generator, n: int = 12, dtype: torch.dtype = torch.float32):
    target = torch.rand(n, generator=generator, dtype=dtype)
    pred = target + 0.3 * torch.randn(n, generator=generator, dtype=dtype)
    return pred, target


# --------------------------------------------------------------------------- input rules


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    ("pred_shape", "target_shape"),
    [((8, 2), (8, 2)), ((8, 1, 1), (8, 1, 1)), ((8,), (8, 1)), ((8,), (7,)), ((), ())],
)
def test_bad_shapes_raise(fn, pred_shape, target_shape) -> None:
    with pytest.raises(InputError, match="shape"):
        fn(torch.rand(pred_shape), torch.rand(target_shape))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_batch_of_one_raises(fn) -> None:
    with pytest.raises(InputError, match="at least 2"):
        fn(torch.rand(1), torch.rand(1))


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["pred", "target"])
def test_non_finite_raises(fn, bad, where) -> None:
    pred, target = torch.rand(6), torch.rand(6)
    (pred if where == "pred" else target)[2] = bad
    with pytest.raises(InputError, match="finite"):
        fn(pred, target)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_tensor_and_integer_raise(fn) -> None:
    with pytest.raises(InputError, match=r"torch\.Tensor"):
        fn([0.1, 0.2, 0.3], torch.rand(3))
    with pytest.raises(InputError, match="floating"):
        fn(torch.arange(4), torch.rand(4))


@pytest.mark.parametrize("fn", [mse_loss, rank_loss, soft_rank_loss])
def test_bad_reduction_raises(fn) -> None:
    with pytest.raises(InputError, match="reduction"):
        fn(torch.rand(4), torch.rand(4), reduction="batchmean")


def test_bad_options_raise() -> None:
    p, t = torch.rand(4), torch.rand(4)
    with pytest.raises(InputError, match="temperature"):
        soft_rank_loss(p, t, temperature=0.0)
    with pytest.raises(InputError, match="temperature"):
        ListwiseKLLoss(temperature=-1.0)
    with pytest.raises(InputError, match="alpha"):
        ASNATrainingLoss(alpha=1.5)
    with pytest.raises(InputError, match="beta"):
        asna_training_loss(p, t, beta=-0.1)
    with pytest.raises(InputError, match="pearson"):
        ASNATrainingLoss(pearson="cubed")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="rank"):
        ASNATrainingLoss(rank="sodeep")  # type: ignore[arg-type]
    with pytest.raises(UnknownWeightsError, match="pairwise"):
        RankLoss(sorter="no-such-sorter")


def test_paper_sorter_needs_batch_16() -> None:
    with pytest.raises(InputError, match="length 16"):
        rank_loss(torch.rand(8), torch.rand(8), sorter="paper16")
    with pytest.raises(InputError, match="length 16"):
        asna_training_loss(torch.rand(8), torch.rand(8), rank="paper")
    assert torch.isfinite(asna_training_loss(torch.rand(16), torch.rand(16), rank="paper"))


@pytest.mark.parametrize("shape", [(10,), (10, 1)])
@pytest.mark.parametrize("name", list(LOSSES))
def test_function_and_module_agree(name, shape, generator) -> None:
    fn, module = LOSSES[name]
    pred, target = _pair(generator, 10)
    pred, target = pred.reshape(shape), target.reshape(shape)
    value = fn(pred, target)
    assert value.shape == ()
    assert torch.isfinite(value)
    torch.testing.assert_close(module()(pred, target), value)


@pytest.mark.parametrize(
    "fn", [mse_loss, rank_loss, soft_rank_loss], ids=["mse", "rank", "soft_rank"]
)
def test_reductions(fn, generator) -> None:
    pred, target = _pair(generator, 9)
    terms = fn(pred, target, reduction="none")
    assert terms.shape == (9,)
    torch.testing.assert_close(fn(pred, target, reduction="mean"), terms.mean())
    torch.testing.assert_close(fn(pred, target, reduction="sum"), terms.sum())
    torch.testing.assert_close(fn(pred, target), terms.mean())


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_gradcheck_float64(fn, generator) -> None:
    pred, target = _pair(generator, 16, torch.float64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: fn(p, target), (pred,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda p, t: rank_loss(p, t, sorter="paper16"), id="paper16"),
        pytest.param(lambda p, t: soft_rank_loss(p, t, reduction="none"), id="soft_none"),
        pytest.param(lambda p, t: rank_loss(p, t, reduction="none"), id="rank_none"),
    ],
)
def test_gradcheck_float64_more(fn, generator) -> None:
    pred, target = _pair(generator, 16, torch.float64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: fn(p, target), (pred,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_constant_predictions_have_finite_gradients(fn, generator) -> None:
    target = torch.rand(8, generator=generator)
    pred = torch.full((8,), 0.3, requires_grad=True)
    value = fn(pred, target)
    value.backward()
    assert torch.isfinite(value)
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_pearson_gradient_at_constant_prediction_points_to_target(generator) -> None:
    target = torch.rand(8, generator=generator)
    pred = torch.zeros(8, requires_grad=True)
    pearson_loss(pred, target).backward()
    assert pred.grad is not None
    step = -pred.grad
    assert torch.corrcoef(torch.stack([step, target]))[0, 1] > 0.99


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_gradient_step_lowers_the_loss(fn, generator) -> None:
    pred, target = _pair(generator, 32)
    pred.requires_grad_(True)
    before = fn(pred, target)
    (grad,) = torch.autograd.grad(before, pred)
    with torch.no_grad():
        after = fn(pred - 1e-3 * grad / grad.norm(), target)
    assert after < before


@pytest.mark.parametrize("sorter", ["pairwise", "paper16"])
def test_sorter_weights_get_no_gradient(sorter, generator) -> None:
    pred, target = _pair(generator, 16)
    pred.requires_grad_(True)
    rank_loss(pred, target, sorter=sorter).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in load_sorter(sorter).parameters())


def test_custom_sorter_module_is_frozen(generator) -> None:
    from asna_metric.train import PairwiseSorter

    net = PairwiseSorter(hidden=4, context=2).train()
    loss = RankLoss(sorter=net)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    pred, target = _pair(generator, 8)
    pred.requires_grad_(True)
    loss(pred, target).backward()
    assert pred.grad is not None and all(p.grad is None for p in net.parameters())
    # The function form detaches the parameters of a trainable module, too.
    net2 = PairwiseSorter(hidden=4, context=2)
    rank_loss(pred, target, sorter=net2).backward()
    assert all(p.grad is None for p in net2.parameters())


# --------------------------------------------------------------------------- values


def test_pearson_forms(generator) -> None:
    target = torch.rand(20, generator=generator)
    assert pearson_loss(3 * target + 2, target) < 1e-6
    torch.testing.assert_close(pearson_loss(-target, target), torch.tensor(2.0), atol=1e-5, rtol=0)
    assert pearson_loss(-target, target, squared=True) < 1e-5
    noisy = target + torch.randn(20, generator=generator)
    r = torch.corrcoef(torch.stack([noisy, target]))[0, 1]
    torch.testing.assert_close(pearson_loss(noisy, target), 1 - r, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        pearson_loss(noisy, target, squared=True), 1 - r**2, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "fn",
    [pearson_loss, rank_loss, soft_rank_loss, listwise_kl_loss],
    ids=["pearson", "rank", "soft_rank", "listwise_kl"],
)
def test_correlation_losses_ignore_shift_and_scale(fn, generator) -> None:
    pred, target = _pair(generator, 24)
    base = fn(pred, target)
    torch.testing.assert_close(fn(1e3 * pred - 7.0, target), base, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fn(pred, 0.1 * target + 3.0), base, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n", [8, 32, 128])
def test_rank_losses_track_one_minus_srcc(n, generator) -> None:
    errors_learned, errors_soft = [], []
    for _ in range(8):
        target = torch.randn(n, generator=generator)
        pred = target + 1.5 * torch.rand(()) * torch.randn(n, generator=generator)
        true = 1.0 - spearmanr(pred.numpy(), target.numpy())[0]
        errors_learned.append(abs(float(rank_loss(pred, target)) - true))
        errors_soft.append(abs(float(soft_rank_loss(pred, target, temperature=0.02)) - true))
    assert max(errors_soft) < 0.03
    assert max(errors_learned) < 0.1


def test_rank_losses_are_zero_for_equal_order_and_about_two_for_reversed(generator) -> None:
    target = torch.randn(16, generator=generator)
    for fn in (rank_loss, soft_rank_loss):
        assert fn(torch.exp(target), target) < 0.05
        assert fn(-target, target) > 1.8


def test_soft_rank(generator) -> None:
    x = torch.randn(3, 20, generator=generator, dtype=torch.float64)
    sharp = soft_rank(x, temperature=1e-6)
    torch.testing.assert_close(sharp, exact_ranks(x), atol=1e-6, rtol=0)
    smooth = soft_rank(x, temperature=1.0)
    torch.testing.assert_close(smooth.mean(-1), torch.full((3,), 0.5, dtype=torch.float64))
    perm = torch.randperm(20, generator=generator)
    torch.testing.assert_close(soft_rank(x[:, perm]), soft_rank(x)[:, perm])
    with pytest.raises(InputError, match="n >= 2"):
        soft_rank(torch.rand(1))


def test_listwise_kl(generator) -> None:
    pred, target = _pair(generator, 16)
    assert listwise_kl_loss(target * 4, target) < 1e-6
    assert listwise_kl_loss(pred, target) > 0
    assert listwise_kl_loss(-target, target) > listwise_kl_loss(pred, target)
    raw = listwise_kl_loss(pred, target, standardize_inputs=False)
    assert torch.isfinite(raw) and raw >= 0


def test_combined_loss_is_the_weighted_sum(generator) -> None:
    pred, target = _pair(generator, 16)
    loss = ASNATrainingLoss(alpha=0.3, beta=0.2, pearson="squared", rank="soft", temperature=0.7)
    parts = loss.components(pred, target)
    expected = (
        0.3 * mse_loss(pred, target)
        + 0.7 * pearson_loss(pred, target, squared=True)
        + 0.2 * soft_rank_loss(pred, target, temperature=0.7)
    )
    torch.testing.assert_close(parts["total"], expected)
    torch.testing.assert_close(loss(pred, target), expected)
    default = asna_training_loss(pred, target)
    torch.testing.assert_close(
        default,
        0.5 * mse_loss(pred, target)
        + 0.5 * pearson_loss(pred, target)
        + 0.1 * rank_loss(pred, target),
    )
    no_rank = asna_training_loss(pred, target, rank="none")
    torch.testing.assert_close(
        no_rank, 0.5 * mse_loss(pred, target) + 0.5 * pearson_loss(pred, target)
    )


def test_loss_modules_hold_no_trainable_state() -> None:
    for _, module in LOSSES.values():
        m = module()
        assert not any(p.requires_grad for p in m.parameters())
        assert repr(m)
