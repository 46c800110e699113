"""On-the-fly training pairs: shapes, labels, determinism across workers, resume, guards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from asna_metric.data.distortions import distort
from asna_metric.data.synthesis import cell_score
from asna_metric.errors import InputError
from asna_metric.train.onthefly import (
    WINDOW_TYPES,
    DistortionCache,
    DistortionGroupSampler,
    FixedPairs,
    OnTheFlyPairs,
    PhotoCache,
    ResumableEpochSampler,
    build_onthefly,
    manifest_digest,
    select_types,
)
from asna_metric.train.pairs import EpochSampler

pytestmark = pytest.mark.usefixtures("one_thread")

CHEAP_TYPES = [1, 10, 11, 18, 23]  # blur, JPEG, noise, mean shift, colour blocks


def _photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth photograph-like image that spans the full 0..255 range in every channel."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.random(3) * 6
    channels = [np.sin(5 * x + 3 * y + p) * 0.5 + 0.5 for p in phase]
    image = np.stack(channels, axis=-1) + rng.normal(0, 0.03, (height, width, 3))
    image = (image - image.min((0, 1))) / (image.max((0, 1)) - image.min((0, 1)))
    return (image * 255).round().astype(np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i, (h, w) in enumerate(((48, 64), (64, 48), (56, 56))):
        path = folder / f"p{i}.png"
        Image.fromarray(_photo(rng, h, w)).save(path)
        paths.append(path)
    return paths


def _dataset(photos: list[Path], **kwargs: object) -> OnTheFlyPairs:
    options: dict[str, object] = {"crop_size": 32, "pairs_per_epoch": 8, "types": CHEAP_TYPES}
    options.update(kwargs)
    return OnTheFlyPairs(photos, **options)  # type: ignore[arg-type]


def _epoch(dataset: OnTheFlyPairs, epoch: int, workers: int) -> list[torch.Tensor]:
    sampler = EpochSampler(len(dataset), samples_per_epoch=len(dataset), seed=7)
    sampler.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers)
    return [torch.cat([t.flatten() for t in batch]) for batch in loader]


def test_items_match_train_pairs_format(photos: list[Path]) -> None:
    dataset = _dataset(photos)
    dist, ref, quality = dataset[(3, 12345)]
    assert dist.shape == ref.shape == (3, 32, 32)
    assert dist.dtype == ref.dtype == quality.dtype == torch.float32
    assert quality.shape == () and 0.0 <= float(quality) <= 1.0
    assert dist.is_contiguous() and ref.is_contiguous()
    assert 0.0 <= float(dist.min()) and float(dist.max()) <= 1.0
    assert len(dataset) == 8


def test_deterministic_across_worker_counts_and_new_each_epoch(photos: list[Path]) -> None:
    dataset = _dataset(photos)
    serial = _epoch(dataset, 0, workers=0)
    parallel = _epoch(dataset, 0, workers=2)
    assert len(serial) == 2
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(serial, _epoch(dataset, 1, 0), strict=True))


def test_labels_are_cell_means_or_top_for_identical_crops(photos: list[Path]) -> None:
    dataset = _dataset(photos, pairs_per_epoch=60, identity_rate=0.1)
    seen_identity = 0
    for index in range(60):
        dist, ref, quality = dataset[index]
        photo = dataset.cache.get(photos[index % 3])
        plan = dataset.plan(index, size=(photo.shape[1], photo.shape[2]))
        identical = torch.equal(dist, ref)
        if identical:
            assert float(quality) == 1.0
            seen_identity += 1
        else:
            assert plan.dist_type in CHEAP_TYPES
            expected = (cell_score(plan.dist_type, plan.level) - 1) / 4
            assert float(quality) == pytest.approx(expected, abs=1e-6)
            assert float(quality) < 1.0
    assert seen_identity >= 1
    # Fixed items: an int index always gives the same pair.
    assert all(torch.equal(a, b) for a, b in zip(dataset[5], dataset[5], strict=True))


def test_accidental_identity_is_relabelled(photos: list[Path]) -> None:
    # Mean shift at level 3 leaves a photograph spanning [0, 1] unchanged.
    dataset = _dataset(photos, types=[18], levels=[3], identity_rate=0.0)
    for index in range(4):
        dist, ref, quality = dataset[index]
        assert torch.equal(dist, ref)
        assert float(quality) == 1.0
    assert cell_score(18, 3) < 5.0  # the cell's own label would not be the top one


def test_identity_rate_one_gives_only_identity_pairs(photos: list[Path]) -> None:
    dataset = _dataset(photos, identity_rate=1.0)
    for index in range(4):
        dist, ref, quality = dataset[index]
        assert torch.equal(dist, ref) and float(quality) == 1.0


def test_resume_at_a_position_continues_the_epoch(photos: list[Path]) -> None:
    dataset = _dataset(photos, pairs_per_epoch=12)
    sampler = ResumableEpochSampler(len(dataset), samples_per_epoch=12, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=8)
    assert len(sampler) == 4
    rest = list(sampler)
    assert rest == full[8:]
    for a, b in zip(rest, full[8:], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(dataset[a], dataset[b], strict=True))
    with pytest.raises(InputError, match="start must be"):
        sampler.set_epoch(0, start=13)


def test_default_distorts_the_whole_photograph_then_crops(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_photo(np.random.default_rng(1), 96, 112)).save(path)
    dataset = OnTheFlyPairs([path], crop_size=32, pairs_per_epoch=1, types=CHEAP_TYPES)
    photo = dataset.cache.get(path)
    for index in range(6):
        plan = dataset.plan(index, size=(96, 112))
        if not plan.dist_type:
            continue
        assert dataset.window(plan, (96, 112)) == (0, 0, 96, 112)
        dist, ref, _ = dataset.render(plan)
        whole = distort(
            photo.unsqueeze(0).float() / 255,
            plan.dist_type,
            plan.level,
            generator=torch.Generator().manual_seed(plan.seed),
        )
        crop = whole[0, :, plan.top : plan.top + 32, plan.left : plan.left + 32]
        assert torch.equal(dist, crop.mul(255).round().to(torch.uint8))
        assert torch.equal(ref, photo[:, plan.top : plan.top + 32, plan.left : plan.left + 32])


def test_window_mode_distorts_a_grid_aligned_window(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_photo(np.random.default_rng(1), 160, 192)).save(path)
    dataset = OnTheFlyPairs(
        [path], crop_size=32, pairs_per_epoch=1, types=[1], window_types=WINDOW_TYPES
    )
    plan = dataset.plan(0, size=(160, 192))
    plan = type(plan)(plan.photo, 64, 80, 1, 3, plan.seed, plan.augment_seed)
    assert dataset.window(plan, (160, 192)) == (32, 48, 128, 144)
    dist, _, _ = dataset.render(plan)
    assert dist.shape == (3, 32, 32)


def test_eval_only_photographs_and_splits_are_refused(photos: list[Path], tmp_path: Path) -> None:
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    (kodak / "kodim01.png").write_bytes(photos[0].read_bytes())
    with pytest.raises(InputError, match="reserved for evaluation"):
        _dataset([*photos, kodak / "kodim01.png"])
    with pytest.raises(InputError, match="split must be one of"):
        build_onthefly(tmp_path, "test", crop_size=32, pairs_per_epoch=4)
    with pytest.raises(InputError, match="identity_rate"):
        _dataset(photos, identity_rate=1.5)


def test_photo_cache_is_bounded(photos: list[Path]) -> None:
    cache = PhotoCache(max_bytes=2 * 64 * 48 * 3)
    for path in photos * 2:
        cache.get(path)
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 1  # 64x48, then 56x56 evicts both earlier ones
    assert torch.equal(cache.get(photos[0]), PhotoCache(0).get(photos[0]))


def test_real_training_split(shared_data: Path) -> None:
    dataset = build_onthefly(
        shared_data / "refs", "train", crop_size=64, pairs_per_epoch=480, seed=0, types=CHEAP_TYPES
    )
    assert len(dataset.photos) == 480
    assert not any("kodak" in p for p in dataset.paths())
    for index in (0, 479):
        dist, _, quality = dataset[index]
        assert dist.shape == (3, 64, 64) and 0.0 <= float(quality) <= 1.0


def _grouped(dataset: OnTheFlyPairs, k: int, epoch: int, **kwargs: int) -> DistortionGroupSampler:
    sampler = DistortionGroupSampler(
        len(dataset),
        samples_per_epoch=len(dataset),
        seed=7,
        crops_per_distortion=k,
        num_photos=len(dataset.photos),
        **kwargs,
    )
    sampler.set_epoch(epoch)
    return sampler


def test_group_sampler_shares_a_distortion_over_consecutive_batches(photos: list[Path]) -> None:
    dataset = _dataset(photos, pairs_per_epoch=24, identity_rate=0.0)
    plain = ResumableEpochSampler(24, samples_per_epoch=24, seed=7)
    plain.set_epoch(1)
    assert list(_grouped(dataset, 1, 1, batch_size=4)) == list(plain)  # k = 1: the same draws

    items = list(_grouped(dataset, 3, 1, batch_size=6))  # 4 batches of 6
    assert len(items) == 24 and len({seed for _, seed, _ in items}) == 24
    groups: dict[int, list[int]] = {}
    for position, (_, _, dseed) in enumerate(items):
        groups.setdefault(dseed, []).append(position)
    for positions in groups.values():  # one column of at most 3 consecutive batches
        assert len(positions) <= 3 and len({p % 6 for p in positions}) == 1
        assert [p // 6 for p in positions] == list(range(positions[0] // 6, positions[-1] // 6 + 1))
        assert len({items[p][0] for p in positions}) == 1
    starts = [sum(1 for ps in groups.values() if ps[0] // 6 == t) for t in range(4)]
    assert starts == [6, 2, 2, 2]  # after the first batch, 6 / 3 new distortions per batch
    assert all(len({items[p][2] for p in range(t * 6, t * 6 + 6)}) == 6 for t in range(4))
    shared = next(ps for ps in groups.values() if len(ps) == 3)
    plans = [dataset.plan(items[p], size=(64, 64)) for p in shared]
    assert len({(p.photo, p.dist_type, p.level, p.seed) for p in plans}) == 1
    assert len({(p.top, p.left, p.augment_seed) for p in plans}) == 3  # own crops
    # Photographs are visited evenly: the groups' photographs cycle through permutations.
    firsts = sorted(groups.values())
    photos_of_groups = [items[ps[0]][0] for ps in firsts]
    counts = [photos_of_groups.count(i) for i in range(3)]
    assert max(counts) - min(counts) <= 1

    resumed = _grouped(dataset, 3, 1, batch_size=6)
    resumed.set_epoch(1, start=8)
    assert list(resumed) == items[8:]
    ranks = [list(_grouped(dataset, 3, 1, batch_size=3, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(items)  # the same epoch, split between ranks


def test_grouped_items_are_deterministic_across_workers_and_hit_the_cache(
    photos: list[Path],
) -> None:
    dataset = _dataset(photos, pairs_per_epoch=16, identity_rate=0.0)

    def epoch(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_size=4,
            sampler=_grouped(dataset, 4, 0, batch_size=4),
            num_workers=workers,
        )
        return [torch.cat([t.flatten() for t in batch]) for batch in loader]

    serial = epoch(0)
    groups = {dseed for _, _, dseed in _grouped(dataset, 4, 0, batch_size=4)}
    assert dataset.distorted.misses == len(groups) < 16  # one distortion per group
    assert dataset.distorted.hits == 16 - len(groups)
    assert all(torch.equal(a, b) for a, b in zip(serial, epoch(2), strict=True))
    fresh = _dataset(photos, pairs_per_epoch=16, identity_rate=0.0, distortion_cache_bytes=0)
    for item in _grouped(dataset, 4, 0, batch_size=4):  # a hit equals a recomputation
        assert all(torch.equal(a, b) for a, b in zip(dataset[item], fresh[item], strict=True))
    assert fresh.distorted.hits == 0


def test_distortion_cache_is_bounded() -> None:
    cache = DistortionCache(max_bytes=2 * 3 * 8 * 8)
    for key in range(3):
        cache.put((key,), torch.full((3, 8, 8), key, dtype=torch.uint8))
        assert cache.nbytes <= cache.max_bytes
    assert cache.get((0,)) is None and len(cache) == 2
    hit = cache.get((2,))
    assert hit is not None and int(hit[0, 0, 0]) == 2
    assert (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(InputError, match="max_bytes"):
        DistortionCache(-1)


def test_fixed_pairs_keep_the_fixed_items(photos: list[Path]) -> None:
    dataset = _dataset(photos, pairs_per_epoch=6)
    fixed = FixedPairs(dataset, 5)
    assert len(fixed) == 5
    for index in range(5):
        assert all(torch.equal(a, b) for a, b in zip(fixed[index], dataset[index], strict=True))
    with pytest.raises(InputError, match="count"):
        FixedPairs(dataset, 7)


def test_select_types_and_manifest_digest(tmp_path: Path) -> None:
    assert select_types() == list(range(1, 26))
    assert select_types(exclude=["lens blur", "JP2K", 19, "Multiplicative_Noise"]) == [
        t for t in range(1, 26) if t not in (2, 9, 14, 19)
    ]
    assert select_types(["jpeg", "Contrast Dist.", "contrast_change", 1]) == [1, 10, 25]
    with pytest.raises(InputError, match="leaves no"):
        select_types([1], exclude=["GBLUR"])
    with pytest.raises(InputError, match="unknown distortion type"):
        select_types(["no such type"])
    name, digest = manifest_digest("refs-v1")
    assert name == "refs-v1" and len(digest) == 64
    from importlib.resources import files

    copy = tmp_path / "copy.json"
    copy.write_bytes(files("asna_metric.data").joinpath("_splits", "refs-v1.json").read_bytes())
    assert manifest_digest(copy) == (name, digest)
