"""KADID-protocol distortions and synthesis: properties, not snapshots."""

from __future__ import annotations

import csv
import itertools
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asna_metric.data import distortions as D
from asna_metric.data.kadid_cells import KADID_CELL_MOS, KADID_TYPE_NAMES
from asna_metric.data.synthesis import (
    DISTORTIONS,
    cell_score,
    distort,
    item_seed,
    list_references,
    plan_synthesis,
    synthesize,
)
from asna_metric.errors import InputError

ALL_TYPES = sorted(DISTORTIONS)
# Cells whose parameter leaves the image untouched (KADID MOS ~4.6, the score of a clean image).
IDENTITY_CELLS = {(1, 1), (3, 1), (8, 1), (18, 3)}
NON_MONOTONE = {18, 25}
# Types whose PSNR need not fall at every step under the official generator: the final min-max
# mapping squeezes back the overshoot of negative HSV saturation (7) and restores some of the
# contrast a strong blur or denoiser takes from a small crop (2, 15); nearest-neighbour
# pixelation (21) errs by an amount that depends on how its grid falls on the image.
LOOSELY_MONOTONE = {2, 7, 15, 21}


def _synthetic(n: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Colourful test images: smooth colour field + sharp rectangles + fine texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    field = field.clamp(0.05, 0.95)
    for i in range(n):
        for _ in range(4):
            top, left = (
                int(v) for v in torch.randint(0, min(height, width) - 16, (2,), generator=g)
            )
            field[i, :, top : top + 14, left : left + 20] = torch.rand(3, 1, 1, generator=g)
    texture = 0.04 * torch.randn(n, 3, height, width, generator=g)
    return (field + texture).clamp(0, 1)


def _kodak_crops(shared_data: Path, size: int = 128) -> torch.Tensor:
    crops = []
    for name, (top, left) in (("kodim05.png", (200, 150)), ("kodim23.png", (100, 150))):
        path = shared_data / "refs" / "kodak24" / name
        array = np.array(Image.open(path).convert("RGB"), dtype=np.uint8)
        tile = array[top : top + size, left : left + size]
        crops.append(torch.from_numpy(tile.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(crops)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error."""
    return ((a.double() - b.double()) ** 2).flatten(1).mean(dim=1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1.0 / _mse(a, b).clamp(min=1e-20))


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Single-threaded torch: the images are small and the CI machines share few cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return _synthetic(2, 128, 128, seed=7)


@pytest.fixture(scope="module")
def outputs(images: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """Every (type, level) applied to the batch, levels of a type sharing one seed."""
    return {
        (t, level): distort(images, t, level, seed=100 + t)
        for t in ALL_TYPES
        for level in range(1, 6)
    }


# --------------------------------------------------------------------------- registry


def test_registry_covers_kadid_types_and_levels() -> None:
    assert ALL_TYPES == list(range(1, 26))
    assert [d.name for d in DISTORTIONS.values()] == list(KADID_TYPE_NAMES)
    assert len({d.key for d in DISTORTIONS.values()}) == 25
    for entry in DISTORTIONS.values():
        assert len(entry.levels) == 5
        assert entry.parameter
        assert callable(entry.function)
    assert [d.id for d in DISTORTIONS.values() if d.approximate] == [15]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (1, 1),
        ("1", 1),
        (" 25 ", 25),
        ("GBLUR", 1),
        ("gblur", 1),
        ("Contrast Dist.", 25),
        ("jpeg", 10),
        ("gaussian_blur", 1),
        ("non_eccentricity_patch", 20),
    ],
)
def test_resolve_type(spec: int | str, expected: int) -> None:
    assert D.resolve_type(spec) == expected


@pytest.mark.parametrize("spec", [0, 26, "blur", "", True, 3.0])
def test_resolve_type_rejects_unknown(spec: object) -> None:
    with pytest.raises(InputError, match=r"unknown distortion type|id 1\.\.25"):
        D.resolve_type(spec)  # type: ignore[arg-type]


def test_cell_scores_come_from_the_kadid_table() -> None:
    assert cell_score(1, 1) == KADID_CELL_MOS[1][0]
    assert cell_score("Contrast Dist.", 3) == KADID_CELL_MOS[25][2]
    with pytest.raises(InputError):
        cell_score(1, 6)


def test_kadid_cell_table_matches_the_label_file(shared_data: Path) -> None:
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    with (shared_data / "labels" / "KADID-10k.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            match = re.search(r"I\d+_(\d+)_(\d+)\.png$", row["dis_img_path"])
            assert match is not None
            cells[(int(match[1]), int(match[2]))].append(float(row["score"]))
            assert row["dis_type"] == KADID_TYPE_NAMES[int(match[1]) - 1]
    for (t, level), scores in cells.items():
        assert KADID_CELL_MOS[t][level - 1] == pytest.approx(statistics.fmean(scores), abs=1e-4)


# --------------------------------------------------------------------------- distortions


@pytest.mark.parametrize("dist_type", ALL_TYPES)
def test_distortion_keeps_shape_dtype_range_and_changes_the_image(
    dist_type: int, images: torch.Tensor, outputs: dict[tuple[int, int], torch.Tensor]
) -> None:
    for level in range(1, 6):
        out = outputs[(dist_type, level)]
        assert out.shape == images.shape
        assert out.dtype == images.dtype
        assert float(out.min()) >= 0.0
        assert float(out.max()) <= 1.0
        # The generator min-max maps its input: an identity cell returns the mapped image.
        changed = float((out - D.minmax_map(images)).abs().max())
        if (dist_type, level) in IDENTITY_CELLS:
            assert changed < 1e-6, f"type {dist_type} level {level} should be neutral"
        else:
            # Every other cell changes the image visibly (more than 8-bit rounding).
            assert changed > 2 / 255, f"type {dist_type} level {level} left the image unchanged"


def _assert_psnr_falls(dist_type: int, psnr: list[float]) -> None:
    if dist_type in LOOSELY_MONOTONE:
        assert psnr[0] > max(psnr[1:]) and min(psnr[:-1]) > psnr[-1] - 0.5, psnr
        assert psnr[0] - psnr[-1] > 1.0, psnr
    else:
        assert all(a > b for a, b in itertools.pairwise(psnr)), psnr


@pytest.mark.parametrize("dist_type", sorted(set(ALL_TYPES) - NON_MONOTONE))
def test_psnr_falls_with_level_synthetic(
    dist_type: int, images: torch.Tensor, outputs: dict[tuple[int, int], torch.Tensor]
) -> None:
    psnr = [float(_psnr(outputs[(dist_type, level)], images).mean()) for level in range(1, 6)]
    _assert_psnr_falls(dist_type, psnr)


_KODAK_CACHE: dict[Path, tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]] = {}


@pytest.fixture
def kodak_outputs(shared_data: Path) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
    """Two 128x128 Kodak crops and every (type, level) of them (computed once)."""
    if shared_data not in _KODAK_CACHE:
        crops = _kodak_crops(shared_data)
        _KODAK_CACHE[shared_data] = (
            crops,
            {
                (t, level): distort(crops, t, level, seed=200 + t)
                for t in ALL_TYPES
                for level in range(1, 6)
            },
        )
    return _KODAK_CACHE[shared_data]


@pytest.mark.parametrize("dist_type", sorted(set(ALL_TYPES) - NON_MONOTONE))
def test_psnr_falls_with_level_on_real_photographs(
    dist_type: int, kodak_outputs: tuple[torch.Tensor, dict]
) -> None:
    crops, results = kodak_outputs
    psnr = [float(_psnr(results[(dist_type, level)], crops).mean()) for level in range(1, 6)]
    _assert_psnr_falls(dist_type, psnr)


def test_mean_shift_levels_follow_the_offsets(
    images: torch.Tensor, outputs: dict[tuple[int, int], torch.Tensor]
) -> None:
    # Offsets +0.15, +0.08, 0, -0.08, -0.15: level 3 is neutral, error grows with |offset|.
    mse = [_mse(outputs[(18, level)], images) for level in range(1, 6)]
    means = [float(outputs[(18, level)].mean()) for level in range(1, 6)]
    assert float(mse[2].max()) == 0.0
    assert bool((mse[0] > mse[1]).all() and (mse[1] > 0).all())
    assert bool((mse[4] > mse[3]).all() and (mse[3] > 0).all())
    assert means[0] > means[1] > means[2] > means[3] > means[4]


def test_contrast_levels_follow_the_curve_gain(
    images: torch.Tensor, outputs: dict[tuple[int, int], torch.Tensor]
) -> None:
    # Amounts 0.3, 0.15, 0, -0.4, -0.6 -> mid-tone gains 1.63, 1.44, 1.25, 0.75, 0.5.
    mse = [_mse(outputs[(25, level)], images) for level in range(1, 6)]
    spread = [float(outputs[(25, level)].std()) for level in range(1, 6)]
    assert bool((mse[0] > mse[1]).all() and (mse[1] > mse[2]).all() and (mse[2] > 0).all())
    assert bool((mse[4] > mse[3]).all() and (mse[3] > 0).all())
    assert spread[0] > spread[1] > spread[2] > float(images.std()) > spread[3] > spread[4]


@pytest.mark.parametrize("dist_type", ALL_TYPES)
def test_batch_equals_per_image_calls(dist_type: int) -> None:
    x = _synthetic(3, 40, 48, seed=3)
    batch = distort(x, dist_type, 4, generator=torch.Generator().manual_seed(9))
    generator = torch.Generator().manual_seed(9)
    single = torch.cat([distort(x[i : i + 1], dist_type, 4, generator=generator) for i in range(3)])
    # Convolution algorithms may differ with the batch size: allow float noise, far below 1/255.
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-5)


STOCHASTIC = [d.id for d in DISTORTIONS.values() if d.stochastic]


@pytest.mark.parametrize("dist_type", STOCHASTIC)
def test_stochastic_types_are_deterministic_given_the_seed(dist_type: int) -> None:
    x = _synthetic(1, 64, 64, seed=4)
    first = distort(x, dist_type, 5, seed=11)
    assert torch.equal(first, distort(x, dist_type, 5, seed=11))
    assert torch.equal(first, distort(x, dist_type, 5, generator=torch.Generator().manual_seed(11)))
    assert not torch.equal(first, distort(x, dist_type, 5, seed=12))


def test_deterministic_types_ignore_the_seed() -> None:
    x = _synthetic(1, 64, 64, seed=5)
    for entry in DISTORTIONS.values():
        if not entry.stochastic:
            assert torch.equal(distort(x, entry.id, 3, seed=1), distort(x, entry.id, 3, seed=2))


def test_levels_of_one_image_share_their_random_draws() -> None:
    x = _synthetic(1, 64, 64, seed=6)
    low, high = distort(x, "Impulse_Noise", 1, seed=3), distort(x, "Impulse_Noise", 5, seed=3)
    mapped = D.minmax_map(x)
    hit_low, hit_high = low != mapped, high != mapped
    assert int(hit_low.sum()) > 0
    assert bool((hit_high | ~hit_low).all())  # every level-1 impulse is also a level-5 impulse
    # MATLAB's salt and pepper: u < d/2 is 0, d/2 <= u < d is 1, so pepper stays pepper.
    pepper = hit_low & (low == 0)
    assert int(pepper.sum()) > 0
    assert bool((high[pepper] == 0).all())


def test_other_float_dtypes_are_kept() -> None:
    x = _synthetic(1, 48, 48, seed=8)
    for dtype in (torch.float64, torch.float16):
        for dist_type in (1, 10, 11, 25):
            out = distort(x.to(dtype), dist_type, 3, seed=0)
            assert out.dtype == dtype
            assert out.shape == x.shape


def test_jpeg2000_is_available_through_pillow() -> None:
    from PIL import features

    assert features.check("jpg_2000"), "Pillow lacks OpenJPEG: KADID type 9 cannot run"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.rand(3, 64, 64), r"\(N, 3, H, W\)"),
        (torch.rand(1, 4, 64, 64), r"3 \(RGB\) channels"),
        ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), "floating-point tensor"),
        (torch.rand(1, 3, 16, 64), "at least 32x32"),
        (torch.rand(1, 3, 64, 64) * 2, r"\[0, 1\]"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
        (np.zeros((64, 64, 3)), "torch.Tensor"),
    ],
)
def test_bad_images_raise_input_error(bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        distort(bad, 1, 1)  # type: ignore[arg-type]


def test_bad_level_seed_and_generator_raise_input_error() -> None:
    x = torch.rand(1, 3, 32, 32)
    for level in (0, 6, 2.0, True):
        with pytest.raises(InputError, match="level"):
            distort(x, 1, level)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="either seed or generator"):
        distort(x, 11, 1, seed=1, generator=torch.Generator())
    with pytest.raises(InputError, match="seed"):
        distort(x, 11, 1, seed=-1)
    with pytest.raises(InputError, match="generator"):
        distort(x, 11, 1, generator=0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="quality"):
        D.jpeg(x, 0)
    with pytest.raises(InputError, match="amount"):
        D.contrast_change(x, 1.5)


# --------------------------------------------------------------------------- synthesis


def _write_refs(folder: Path, sizes: dict[str, tuple[int, int]]) -> None:
    folder.mkdir(parents=True)
    for i, (name, (height, width)) in enumerate(sizes.items()):
        image = _synthetic(1, height, width, seed=20 + i)[0]
        array = image.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(array).save(folder / name)


def test_synthesis_is_independent_of_subset_and_order(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    _write_refs(refs, {"b.png": (40, 56), "a.png": (48, 40)})
    one = synthesize(refs, tmp_path / "one", types=["AWGN"], levels=[2], seed=3, progress=False)
    both = synthesize(
        refs, tmp_path / "both", types=[20, 11], levels=[2, 1], seed=3, progress=False, workers=2
    )
    for stem in ("a", "b"):
        name = f"dist/{stem}_11_02.png"
        assert (one.parent / name).read_bytes() == (both.parent / name).read_bytes()
    other = synthesize(refs, tmp_path / "other", types=[11], levels=[2], seed=4, progress=False)
    assert (other.parent / "dist/a_11_02.png").read_bytes() != (
        one.parent / "dist/a_11_02.png"
    ).read_bytes()


def test_synthesis_keeps_reference_size_and_writes_8bit_rgb(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    _write_refs(refs, {"wide.png": (33, 70)})
    labels = synthesize(refs, tmp_path / "out", types=[9, 21], levels=[5], progress=False)
    with labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["dis_img_path"] for row in rows] == ["dist/wide_09_05.png", "dist/wide_21_05.png"]
    for row in rows:
        for key in ("dis_img_path", "ref_img_path"):
            with Image.open(labels.parent / row[key]) as image:
                assert image.size == (70, 33)
                assert image.mode == "RGB"


def test_resuming_with_another_seed_is_refused(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    _write_refs(refs, {"a.png": (40, 40)})
    synthesize(refs, tmp_path / "out", types=[1], levels=[2], seed=0, progress=False)
    with pytest.raises(InputError, match="seed 0"):
        synthesize(refs, tmp_path / "out", types=[1], levels=[2], seed=1, progress=False)


def test_plan_lists_identity_pairs_and_kadid_names(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    _write_refs(refs, {"x.png": (40, 40)})
    items = plan_synthesis(
        list_references(refs), types=["Contrast Dist.", 1], levels=[3], include_identity=True
    )
    assert [(i.dist_type, i.level, i.dis_type_name) for i in items] == [
        (0, 0, "identity"),
        (1, 3, "GBLUR"),
        (25, 3, "Contrast Dist."),
    ]
    assert items[0].dis_out == items[0].ref_out == "refs/x.png"
    assert items[0].score == 5.0
    assert items[2].score == KADID_CELL_MOS[25][2]


def test_reference_listing_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list_references(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no reference images"):
        list_references(tmp_path / "empty")
    _write_refs(tmp_path / "dup", {"a.png": (40, 40)})
    Image.new("RGB", (40, 40)).save(tmp_path / "dup" / "a.jpg")
    with pytest.raises(InputError, match="share the name"):
        list_references(tmp_path / "dup")


def test_sixteen_bit_grey_references_are_scaled_not_clipped(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    ramp = np.tile(np.linspace(0, 65535, 48).astype(np.uint16), (40, 1))
    Image.fromarray(ramp).save(refs / "grey16.png")
    labels = synthesize(refs, tmp_path / "out", types=[1], levels=[1], progress=False)
    with Image.open(labels.parent / "refs" / "grey16.png") as image:
        array = np.array(image)
    assert array.shape == (40, 48, 3)
    assert array[0, 0, 0] == 0 and array[0, -1, 0] == 255
    assert 100 < array[0, 24, 0] < 160


def test_item_seed_depends_on_every_part() -> None:
    base = item_seed(0, "kodim01", 11)
    assert 0 <= base < 2**63
    assert (
        len(
            {
                base,
                item_seed(1, "kodim01", 11),
                item_seed(0, "kodim02", 11),
                item_seed(0, "kodim01", 12),
            }
        )
        == 4
    )
    assert not math.isnan(base)
