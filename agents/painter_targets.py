"""Training targets of the backprop painter, and the canvases it starts from.

``--targets`` names the source (:class:`TargetSource`):

* ``mnist`` (default): MNIST digits (grey; repeated into three channels for a colour painter).
* ``synthetic``: pictures of random strokes made on the fly by our own renderer
  (:func:`paintrnn.synthetic.synthetic_strokes`): no dataset needed.
* ``photos``: photo-like procedural pictures (:func:`paintrnn.synthetic.synthetic_photos`: smooth shading,
  regions with sharp or soft edges, texture, thin lines), made on the fly; ``mixed``: half of each
  (:func:`paintrnn.synthetic.synthetic_mixed`).
* ``folder:PATH``: random crops of the pictures in a folder (any file Pillow opens, searched recursively),
  crop side log-uniform between the training size and the picture's shorter side, resized.

Every batch is drawn from a generator seeded by the iteration (and rank), so a resumed run sees the same
targets. The held-out evaluation set of every kind but ``mnist`` is drawn from a fixed generator that no
training batch uses.

``--start refine`` paints on top of partially painted canvases (:func:`start_canvases`), as the painter does
patch by patch in :mod:`paintrnn.painting`: the target's mean colour (a first level), the target roughly
painted by a few large strokes or a coarse copy of it (a finer level over a coarser one), or a coarse copy
blended with another picture (a canvas with wrong parts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import fit_colours
from paintrnn.agents.painter_train import mnist_digits
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from paintrnn.synthetic import random_strokes, synthetic_mixed, synthetic_photos, synthetic_strokes

EVAL_SEED = 987_654_321
"""Seed of the held-out evaluation set of generated and folder targets (training batches use other seeds)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_SIDE = 512
"""Folder pictures are downscaled to this longer side when loaded (crops come from the downscaled copy)."""


def to_canvas(images: Tensor, size: int) -> Tensor:
    """uint8 ``(B, C, h, w)`` (or float in [0, 1]) -> float ``(B, C, size, size)`` in [0, 1] (bilinear, antialiased)."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def parse_targets(spec: str) -> tuple[str, Path | None]:
    """``mnist`` | ``synthetic`` | ``photos`` | ``mixed`` | ``folder:PATH`` -> (kind, folder); a bad spec is a
    one-line ``ValueError``."""
    if spec in ("mnist", "synthetic", "photos", "mixed"):
        return spec, None
    if spec.startswith("folder:") and spec[len("folder:") :]:
        return "folder", Path(spec[len("folder:") :]).expanduser()
    raise ValueError(f"--targets must be mnist, synthetic, photos, mixed or folder:PATH, got {spec!r}")


def folder_images(folder: Path, channels: int) -> list[Tensor]:
    """Every picture under ``folder`` (sorted paths), as uint8 ``(C, H, W)`` with the longer side at most
    :data:`MAX_SIDE`; files Pillow cannot read are skipped. Raises ``ValueError`` when none is found."""
    if not folder.is_dir():
        raise ValueError(f"--targets folder:{folder}: no such folder")
    images = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if max(img.size) > MAX_SIDE:
                    scale = MAX_SIDE / max(img.size)
                    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                     Image.Resampling.LANCZOS)  # fmt: skip
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError):
            continue
        arr = arr[..., None] if arr.ndim == 2 else arr
        images.append(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous())
    if not images:
        raise ValueError(f"--targets folder:{folder}: no picture found ({', '.join(IMAGE_SUFFIXES)})")
    return images


def random_crops(images: list[Tensor], n: int, size: int, generator: torch.Generator) -> Tensor:
    """``n`` random square crops ``(n, C, size, size)`` in [0, 1]: a random picture, a side log-uniform between
    ``size`` (or the shorter side, if smaller) and the picture's shorter side, a random position, resized."""
    out = []
    u = torch.rand(n, 4, generator=generator)
    for i in range(n):
        img = images[min(int(u[i, 0] * len(images)), len(images) - 1)]
        h, w = img.shape[1:]
        short = min(h, w)
        lo = min(size, short)
        side = max(1, min(short, round(lo * (short / lo) ** float(u[i, 1]))))
        y0, x0 = int(u[i, 2] * (h - side + 1)), int(u[i, 3] * (w - side + 1))
        out.append(to_canvas(img[None, :, y0 : y0 + side, x0 : x0 + side], size))
    return torch.cat(out)


class TargetSource:
    """The training and evaluation targets named by ``--targets`` (see the module docstring), ``channels``
    colour channels at ``size`` px."""

    def __init__(
        self,
        spec: str,
        channels: int,
        size: int,
        data_dir: str | None = None,
        data_source: str = "auto",
        count: tuple[int, int] = (4, 40),
    ) -> None:
        self.kind, folder = parse_targets(spec)
        self.channels, self.size, self.count = channels, size, count
        self.data_dir, self.data_source = data_dir, data_source
        self.train: Tensor | None = None
        self.images: list[Tensor] = []
        if self.kind == "mnist":
            self.train = mnist_digits("train", data_dir, data_source)
        elif self.kind == "folder":
            assert folder is not None
            self.images = folder_images(folder, channels)

    def batch(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        """``n`` training targets ``(n, C, size, size)`` float in [0, 1] on ``device``, drawn from ``generator``."""
        if self.kind == "mnist":
            assert self.train is not None
            idx = torch.randint(len(self.train), (n,), generator=generator)
            return self._channels(to_canvas(self.train[idx].to(device), self.size))
        if self.kind == "synthetic":
            return synthetic_strokes(n, self.size, self.channels, generator, self.count, device)
        if self.kind == "photos":
            return synthetic_photos(n, self.size, self.channels, generator, device)
        if self.kind == "mixed":
            return synthetic_mixed(n, self.size, self.channels, generator, self.count, device)
        return random_crops(self.images, n, self.size, generator).to(device)

    def eval_set(self, n: int) -> Tensor:
        """The held-out targets: the first ``n`` MNIST test digits (uint8 ``(n, 1, 28, 28)``, or float with three
        channels), or ``n`` pictures ``(n, C, size, size)`` drawn from the fixed generator :data:`EVAL_SEED`."""
        if self.kind == "mnist":
            digits = mnist_digits("test", self.data_dir, self.data_source, n)
            return digits if self.channels == 1 else self._channels(to_canvas(digits, 28))
        return self.batch(n, torch.Generator().manual_seed(EVAL_SEED))

    def _channels(self, images: Tensor) -> Tensor:
        return images if self.channels == images.shape[1] else images.expand(-1, self.channels, -1, -1).contiguous()


def coarse(images: Tensor, factor: int) -> Tensor:
    """``(B, C, H, W)`` averaged over ``factor x factor`` cells and upsampled back (bilinear): a coarse copy."""
    H, W = images.shape[-2:]
    small = F.adaptive_avg_pool2d(images, (max(1, H // factor), max(1, W // factor)))
    return F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False).clamp(0, 1)


@torch.no_grad()
def start_canvases(target: Tensor, generator: torch.Generator) -> Tensor:
    """Partially painted canvases for ``(B, C, H, W)`` targets, one kind per picture, drawn from ``generator``:
    15% the target's mean colour (a first level); 35% the target painted by 4-16 random strokes, large ones
    first, each in its least-squares colour, on its mean colour (a coarser level's painting); 30% a coarse copy
    (cells of 2, 4 or 8 px); 20% a coarse copy blended (by 0.2-0.6) with the coarse copy of another target of
    the batch (a canvas with wrong parts)."""
    B, C, H, W = target.shape
    u = torch.rand(B, 3, generator=generator).to(target.device)
    strokes, _ = random_strokes(B, (4, 16), C, min(H, W), generator)
    flat = target.mean((2, 3), keepdim=True).expand_as(target)
    _, painted = fit_colours(strokes.to(target), flat, target, mode="hard", backend="eager")
    levels = torch.stack([coarse(target, f) for f in (2, 4, 8)])  # (3, B, C, H, W)
    pick = (u[:, 1] * 3).long().clamp(max=2)
    rough = levels[pick, torch.arange(B, device=target.device)]  # (B, C, H, W)
    other = rough.roll(1, 0)
    mix = (0.2 + 0.4 * u[:, 2])[:, None, None, None]
    blended = rough * (1 - mix) + other * mix
    kind = u[:, 0][:, None, None, None]
    return torch.where(kind < 0.15, flat, torch.where(kind < 0.5, painted, torch.where(kind < 0.8, rough, blended)))


__all__ = ["EVAL_SEED", "TargetSource", "coarse", "folder_images", "parse_targets", "random_crops", "start_canvases",
           "to_canvas"]  # fmt: skip
