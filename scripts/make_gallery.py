"""Render the heatmap gallery of docs/spatial_maps.md (docs/gallery/*.png).

One command regenerates everything, deterministically (same weights, same
files):

    python scripts/make_gallery.py                 # the default (shipped) weights
    python scripts/make_gallery.py --weights runs/ensemble.safetensors --out /tmp/gallery

Cases:
- the two real sample pairs of tests/assets (the ASNA sample pair, TID2013
  I01 with Gaussian noise);
- three local distortions of one reference photo (tests/assets' TID2013 I01,
  Kodak's kodim01, unless --ref names another): a square blurred (Gaussian,
  sigma 5), a square noised (white noise, variance 0.01, seed 0) and a square
  JPEG-compressed (quality 5), the rest of the image untouched;
- the local blur seen by each ensemble member alone (members_local_blur.png),
  which shows the ConvLSTM member's map repeated over its 4x4 grid.

gallery.json records, per case, the score and, for the local distortions,
the IoU of the worst 10% of the pixels with the distorted square, for the
ensemble and for each member.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from asna_metric.ensemble import SELF_ENSEMBLE_MODES

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tests" / "assets"

# (file stem, title, distortion, box (top, left, height, width)) on the 512x384 reference.
LOCAL_CASES = (
    ("local_blur", "square blurred (Gaussian, sigma 5)", "blur", (160, 328, 96, 96)),
    ("local_noise", "square noised (white noise, variance 0.01)", "noise", (40, 176, 96, 96)),
    ("local_jpeg", "square JPEG-compressed (quality 5)", "jpeg", (152, 112, 96, 96)),
)


def _distort(ref: torch.Tensor, kind: str) -> torch.Tensor:
    from asna_metric.data.distortions import gaussian_blur, jpeg, white_noise

    if kind == "blur":
        return gaussian_blur(ref, 5.0)
    if kind == "noise":
        return white_noise(ref, 0.01, generator=torch.Generator().manual_seed(0))
    return jpeg(ref, 5)


def _compact(path: Path, full_colour: bool) -> None:
    """Store a rendered PNG with a 256-colour palette (3-4x smaller; deterministic)."""
    if full_colour:
        return
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    palette.save(path, format="PNG", optimize=True)


def _overlay(ax, dist, quality, box=None):  # type: ignore[no-untyped-def]
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    from asna_metric.viz import DEFAULT_CMAP

    ax.imshow(dist[0].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.imshow(
        quality[0, 0].numpy(),
        cmap=colormaps[DEFAULT_CMAP],
        norm=Normalize(0.0, 1.0),
        alpha=0.5,
        interpolation="nearest",
    )
    if box is not None:
        top, left, box_h, box_w = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), box_w, box_h, fill=False, ec="cyan", lw=1))
    ax.set_axis_off()


def _members_figure(dist, panels, box):  # type: ignore[no-untyped-def]
    """Overlays of each member's map and of the ensemble's, 2 per row, on the score scale."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from asna_metric.viz import DEFAULT_CMAP, SCORE_LABEL

    height, width = dist.shape[-2:]
    rows = -(-len(panels) // 2)
    fig = Figure(
        figsize=(2 * width / 100 + 1.2, rows * (height / 100 + 0.3) + 0.5), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax, (name, score, quality) in zip(axes, panels, strict=False):
        _overlay(ax, dist, quality, box)
        ax.set_title(f"{name}: {score:.4f}", fontsize=9)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps[DEFAULT_CMAP]),
        ax=list(axes),
        fraction=0.04,
    )
    bar.set_label(SCORE_LABEL, fontsize=8)
    fig.suptitle("The blurred square as each member sees it (cyan: the square)", fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="registry name or .safetensors file")
    parser.add_argument("--self-ensemble", default="none", choices=SELF_ENSEMBLE_MODES)
    parser.add_argument(
        "--ref",
        type=Path,
        default=ASSETS / "tid2013_i01" / "I01.png",
        help="reference photo for the local distortions (at least 424x256 px)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument(
        "--full-colour", action="store_true", help="keep 24-bit PNGs (3-4x larger files)"
    )
    args = parser.parse_args(argv)

    from asna_metric import __version__
    from asna_metric.errors import InputError, WeightsIntegrityError, WeightsNotFoundError
    from asna_metric.inputs import to_batch
    from asna_metric.metric import ASNA
    from asna_metric.viz import box_mask, mask_iou, paste_region, save_heatmap, worst_pixels
    from asna_metric.weights import DEFAULT_WEIGHTS

    torch.manual_seed(0)
    weights = args.weights or DEFAULT_WEIGHTS
    try:
        metric = ASNA(weights, self_ensemble=args.self_ensemble)
    except (InputError, WeightsNotFoundError, WeightsIntegrityError) as exc:
        print(f"make_gallery: cannot load weights {weights!r}: {exc}", file=sys.stderr)
        return 2
    mode = args.self_ensemble
    # Sub-ensembles: each member alone, and the spatially faithful members together.
    parts = [
        (f"member {i} ({net.arch})", ASNA.from_networks([net], self_ensemble=mode))
        for i, net in enumerate(metric.members)
    ]
    faithful = [net for net in metric.members if getattr(net, "spatially_faithful", True)]
    if 1 < len(faithful) < len(metric.members):
        parts.append(("faithful members", ASNA.from_networks(faithful, self_ensemble=mode)))
    args.out.mkdir(parents=True, exist_ok=True)
    cases: dict[str, dict[str, object]] = {}

    def score_map(model: ASNA, dist: torch.Tensor, ref: torch.Tensor):  # type: ignore[no-untyped-def]
        quality, w = model.map(dist, ref, return_weights=True)
        return float((quality * w).sum() / w.sum()), quality

    def render(stem: str, title: str, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        score, quality = score_map(metric, dist, ref)
        path = save_heatmap(
            args.out / f"{stem}.png", dist, quality, ref=ref, score=score, title=title
        )
        _compact(path, args.full_colour)
        print(f"{stem}: score {score:.4f}")
        cases[stem] = {"title": title, "score": round(score, 4)}
        return quality

    with torch.inference_mode():
        for stem, title, dist_path, ref_path in (
            ("asna_pair", "ASNA sample pair", "asna_pair/dist.png", "asna_pair/ref.png"),
            (
                "tid2013_awgn",
                "TID2013 I01, Gaussian noise level 5",
                "tid2013_i01/i01_01_5.png",
                "tid2013_i01/I01.png",
            ),
        ):
            dist = to_batch(ASSETS / dist_path, name="dist")
            render(stem, title, dist, to_batch(ASSETS / ref_path, name="ref"))

        ref = to_batch(args.ref, name="ref")
        for stem, title, kind, box in LOCAL_CASES:
            dist = paste_region(ref, _distort(ref, kind), box)
            quality = render(stem, title, dist, ref)
            region = box_mask(quality.shape, box)
            panels = [("ensemble", cases[stem]["score"], quality)]
            panels += [(name, *score_map(model, dist, ref)) for name, model in parts]
            ious = {
                name: round(float(mask_iou(worst_pixels(q, 0.1), region)[0]), 3)
                for name, _, q in panels
            }
            cases[stem].update(
                box=list(box),
                sub_ensemble_scores={name: round(s, 4) for name, s, _ in panels[1:]},
                iou_worst10=ious,
            )
            print(f"{stem}: IoU of the worst 10% with the square {ious}")
            if kind == "blur":
                fig = _members_figure(dist, [*panels[1:], panels[0]], box)
                path = args.out / "members_local_blur.png"
                fig.savefig(path, dpi=100, metadata={"Software": None})
                _compact(path, args.full_colour)

    record = {
        "weights": metric.weights_name,
        "weights_revision": metric.weights_revision,
        "weights_sha256": metric.weights_sha256,
        "self_ensemble": mode,
        "asna_metric_version": __version__,
        "cases": cases,
    }
    (args.out / "gallery.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(cases) + 1} figures and gallery.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
