"""Convert FFDNet's grayscale MatConvNet model to safetensors and check it at KADID's noise levels.

FFDNet (Zhang, Zuo, Zhang, IEEE TIP 2018) is the closest CNN denoiser we have
to the grayscale DnCNN that KADID-10k applied per RGB channel for its type 15
("Denoising"). Its weights come without a licence, so they are never shipped
with the package: this script writes them to a local file, and
:func:`asna_metric.data.distortions.denoising` accepts the resulting denoiser
through its ``denoiser=`` argument (training-time only, never a dependency of
the metric).

Usage (from the repository root)::

    python scripts/convert_ffdnet.py \\
        --mat ../shared/reference/ffdnet/FFDNet_grayscale_retrained.mat \\
        --out training/ffdnet_gray.safetensors --check ../shared/data/refs/bsds500/test_104055.jpg

The model: 2x2 pixel unshuffle of the noisy image, a constant noise-level map
(sigma on the [0, 1] scale) as a fifth channel, 15 3x3 convolutions (64
channels, ReLU between; batch norm already folded in), 4 output channels
pixel-shuffled back: the output is the clean image itself. The order of the
four sub-images and of the noise channel is not stated in the file; ``--check``
tries the candidates and the converter keeps the one that denoises best
(``--order`` to force one). FFDNet was trained for sigma up to 75/255; KADID's
two strongest cells (sigma 81 and 99 / 255) lie beyond, and ``--check`` reports
what it does there.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KADID_VARIANCES = (0.01, 0.03, 0.05, 0.1, 0.15)


class FFDNetGray(nn.Module):
    """FFDNet for one channel: ``forward(noisy (N, 1, H, W), sigma) -> clean (N, 1, H, W)``.

    Args:
        order: Which sub-image layout and noise-channel position the weights
            use: ``"rowmajor-last"``, ``"colmajor-last"``, ``"rowmajor-first"``
            or ``"colmajor-first"``.
    """

    def __init__(self, order: str = "rowmajor-last") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(5, 64, 3, padding=1), nn.ReLU()]
        for _ in range(13):
            layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(64, 4, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.order = order

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        subs = [x[..., i::2, j::2] for i in range(2) for j in range(2)]
        if self.order.startswith("colmajor"):
            subs = [subs[0], subs[2], subs[1], subs[3]]
        return torch.cat(subs, dim=1)

    def _shuffle(self, y: torch.Tensor) -> torch.Tensor:
        if self.order.startswith("colmajor"):
            y = y[:, [0, 2, 1, 3]]
        return F.pixel_shuffle(y, 2)

    def forward(self, noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        """Denoise ``noisy`` (values on [0, 1]) whose noise has standard deviation ``sigma``."""
        h, w = noisy.shape[-2:]
        padded = F.pad(noisy, (0, w % 2, 0, h % 2), mode="replicate")
        subs = self._unshuffle(padded)
        level = torch.full_like(subs[:, :1], float(sigma))
        inputs = torch.cat((subs, level) if self.order.endswith("last") else (level, subs), dim=1)
        return self._shuffle(self.body(inputs))[..., :h, :w]


def load_matconvnet(path: Path, order: str) -> FFDNetGray:
    """Build :class:`FFDNetGray` with the weights of the MatConvNet file at ``path``."""
    import scipy.io

    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    convs = [layer for layer in mat["net"].layers if layer.type == "conv"]
    model = FFDNetGray(order)
    targets = [m for m in model.body if isinstance(m, nn.Conv2d)]
    if len(convs) != len(targets):
        raise SystemExit(f"expected {len(targets)} conv layers in {path}, found {len(convs)}")
    with torch.no_grad():
        for layer, conv in zip(convs, targets, strict=True):
            weight, bias = (np.asarray(w, dtype=np.float32) for w in layer.weights)
            # MatConvNet: (kh, kw, in, out), a correlation like torch's conv2d.
            conv.weight.copy_(torch.from_numpy(weight.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(bias.reshape(-1)))
    return model.eval()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def _grey(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        array = np.array(image.convert("L"), dtype=np.float32) / 255
    return torch.from_numpy(array)[None, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mat", type=Path, required=True, help="FFDNet_grayscale_retrained.mat")
    parser.add_argument("--out", type=Path, default=None, help="safetensors file to write")
    parser.add_argument("--check", type=Path, nargs="*", default=[], help="photographs to test")
    parser.add_argument("--order", default=None, help="force a layout (see FFDNetGray)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    orders = (
        [args.order]
        if args.order
        else ["rowmajor-last", "colmajor-last", "rowmajor-first", "colmajor-first"]
    )
    images = [_grey(p) for p in args.check]
    best_order, best_score = orders[0], -math.inf
    if images and len(orders) > 1:
        generator = torch.Generator().manual_seed(0)
        noisy = [(x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1) for x in images]
        for order in orders:
            model = load_matconvnet(args.mat, order)
            with torch.no_grad():
                score = float(
                    np.mean([_psnr(model(n, 0.1), x) for n, x in zip(noisy, images, strict=True)])
                )
            print(f"layout {order:<16} PSNR at sigma 25.5/255: {score:.2f} dB")
            if score > best_score:
                best_order, best_score = order, score
    model = load_matconvnet(args.mat, best_order)
    print(f"layout kept: {best_order}")
    if images:
        print(f"{'variance':>9} {'sigma*255':>9} {'noisy dB':>9} {'FFDNet dB':>10}")
        for variance in KADID_VARIANCES:
            sigma = math.sqrt(variance)
            generator = torch.Generator().manual_seed(1)
            rows = []
            for x in images:
                noisy = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
                with torch.no_grad():
                    rows.append((_psnr(noisy, x), _psnr(model(noisy, sigma), x)))
            mean = np.mean(rows, axis=0)
            print(f"{variance:>9} {sigma * 255:>9.1f} {mean[0]:>9.2f} {mean[1]:>10.2f}")
    if args.out is not None:
        from safetensors.torch import save_file

        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(args.out),
            metadata={"model": "FFDNetGray", "order": best_order, "source": str(args.mat.name)},
        )
        print(f"wrote {args.out} (not for redistribution: no licence upstream)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
