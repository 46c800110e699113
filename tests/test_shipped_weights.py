"""Properties of the shipped weights: ``asna-quarter-kadid-synth`` (default) and the named ones.

The golden values pin the scores of the two real sample pairs for the
weights whose sha256 is checked first: retraining changes them, and the new
values go in together with the new registry entry and a CHANGELOG line.
Tolerance 1e-3 absolute: results are bitwise repeatable on one machine
(deterministic CPU kernels), but float32 convolutions may differ in the last
bits between CPUs and torch builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asna_metric import ASNA
from asna_metric.data.distortions import distort
from asna_metric.data.kadid_cells import KADID_CELL_MOS
from asna_metric.inputs import to_batch
from asna_metric.weights import DEFAULT_WEIGHTS, REGISTRY, resolve_weights, sha256_file

GOLDEN_SHA256 = {
    "asna-quarter-kadid-synth": "5968c752afcdcc35833415707d5f8a215b952877baf6d2332266c8c9562e21e3",
    "asna-kadid-synth": "bd18e27a8a3036f14872a9e362d8602202eca0939bd399c570848e5d3da87496",
    "asna-effnet-kadid-synth": "0f06e7b53ed31a267c91143c36ca06f8f0c1eb79b73c03afa6b43ae534259d9a",
}
GOLDEN = {
    # (weights, pair, self_ensemble): score
    ("asna-quarter-kadid-synth", "asna_pair", "none"): 0.156727,
    ("asna-quarter-kadid-synth", "asna_pair", "flips"): 0.157615,
    ("asna-quarter-kadid-synth", "tid2013_i01", "none"): 0.370849,
    ("asna-quarter-kadid-synth", "tid2013_i01", "flips"): 0.372147,
    ("asna-kadid-synth", "asna_pair", "none"): 0.141732,
    ("asna-kadid-synth", "asna_pair", "flips"): 0.134175,
    ("asna-kadid-synth", "tid2013_i01", "none"): 0.374018,
    ("asna-kadid-synth", "tid2013_i01", "flips"): 0.373559,
    ("asna-effnet-kadid-synth", "asna_pair", "none"): 0.178316,
    ("asna-effnet-kadid-synth", "asna_pair", "flips"): 0.177368,
    ("asna-effnet-kadid-synth", "tid2013_i01", "none"): 0.291047,
    ("asna-effnet-kadid-synth", "tid2013_i01", "flips"): 0.285080,
}
PAIRS = {
    "asna_pair": ("asna_pair/dist.png", "asna_pair/ref.png"),
    "tid2013_i01": ("tid2013_i01/i01_01_5.png", "tid2013_i01/I01.png"),
}
TOLERANCE = 1e-3
SHIPPED = sorted(GOLDEN_SHA256)


def test_every_registered_weights_file_is_tested() -> None:
    assert sorted(REGISTRY) == SHIPPED and DEFAULT_WEIGHTS in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_embedded_and_pinned(name: str) -> None:
    spec = REGISTRY[name]
    path = resolve_weights(name)
    # Resolved from the copy inside the package: no Hub, no network.
    assert spec.embedded and path.name == spec.embedded and path.parent.name == "_weights"
    assert sha256_file(path) == spec.sha256 == GOLDEN_SHA256[name], (
        f"the weights {name!r} changed: update GOLDEN (and say so in CHANGELOG.md)"
    )


@pytest.mark.parametrize(("name", "pair", "mode"), sorted(GOLDEN))
def test_golden_scores_of_the_sample_pairs(assets: Path, name: str, pair: str, mode: str) -> None:
    dist, ref = (assets / p for p in PAIRS[pair])
    score = ASNA(name, self_ensemble=mode)(dist, ref)
    assert score.shape == (1,)
    assert score.item() == pytest.approx(GOLDEN[(name, pair, mode)], abs=TOLERANCE)


@pytest.mark.parametrize("name", SHIPPED)
def test_tiled_scores_match_untiled_ones(assets: Path, name: str) -> None:
    # 512x384 in tiles of at most 320 px (the receptive margin of context
    # around each) against one pass. The attention blocks' channel gates pool
    # over each tile, so close, not equal: measured 1.0e-4 (default), 7e-6
    # (asna-kadid-synth) and 6.4e-4 (asna-effnet-kadid-synth) for the score.
    dist, ref = (assets / p for p in PAIRS["tid2013_i01"])
    whole = ASNA(name)(dist, ref).item()
    tiled = ASNA(name, tile_size=320)(dist, ref).item()
    assert tiled == pytest.approx(whole, abs=TOLERANCE)


@pytest.fixture(scope="module", params=SHIPPED)
def distortion_scores(request: pytest.FixtureRequest) -> tuple[float, dict[int, list[float]]]:
    """Scores of the 25 KADID types x 5 levels applied to a photo unseen in training."""
    torch.set_num_threads(1)
    ref = to_batch(str(Path(__file__).parent / "assets" / "asna_pair" / "ref.png"), name="ref")
    metric = ASNA(request.param, self_ensemble="none")
    with torch.inference_mode():
        identical = metric(ref, ref).item()
        scores = {
            t: metric(
                torch.cat([distort(ref, t, level, seed=0) for level in range(1, 6)]),
                ref.expand(5, -1, -1, -1),
            ).tolist()
            for t in range(1, 26)
        }
    return identical, scores


@pytest.mark.slow
def test_identical_pair_scores_highest(
    distortion_scores: tuple[float, dict[int, list[float]]],
) -> None:
    identical, scores = distortion_scores
    # Some level-1 settings leave the image (almost) unchanged: they may tie.
    worst_excess = max(max(v) - identical for v in scores.values())
    assert worst_excess <= 1e-4
    assert identical > 0.75


@pytest.mark.slow
def test_scores_fall_as_the_level_rises_where_human_mos_falls(
    distortion_scores: tuple[float, dict[int, list[float]]],
) -> None:
    _, scores = distortion_scores
    violations = []
    for t, values in scores.items():
        if t == 21:
            # Official pixelate (nearest down- and up-scaling): how visible it is depends on
            # how the grid falls on the image, so it is not monotone in the level on every
            # photo, and the shipped weights were trained on the earlier box-average pixelate:
            # all three score level 2 above level 1 here (a finding, recorded in the
            # CHANGELOG, not a reason to bend the other 24 types' check).
            continue
        mos = KADID_CELL_MOS[t]
        for level in range(4):
            if mos[level + 1] < mos[level] and values[level + 1] > values[level] + 1e-4:
                violations.append((t, level + 1, values[level], values[level + 1]))
    assert not violations, f"(type, level, score, next level's score): {violations}"
