"""Painting any picture with strokes: ``paint(image, strokes=4000)`` -> a :class:`Painting`.

The pipeline, coarse to fine:

1. **Input** (:func:`load_image`): any file Pillow opens (or a NumPy array, PIL image, tensor), converted to
   RGB floats in [0, 1]: greyscale is repeated, palette and CMYK converted, 16-bit scaled by 65535,
   transparency composited **on white**, EXIF rotation applied, the first frame of an animation taken. A
   picture longer than ``max_side`` (4096) px is downscaled on loading, with a message on stderr. It is then
   resized to the painting size: longer side ``size``, aspect kept (:func:`fit_size`).
2. **Patch pyramid** (:func:`plan_levels`): level 0 is the whole picture, level ``l`` a ``2^l x 2^l`` grid of
   patches. Levels are added while every patch of every level still gets ``patch_strokes`` strokes and the
   patches stay ``min_patch`` px or larger. The stroke budget is split across levels in proportion to their
   patch counts and within a level evenly over its patches (the remainder to the patches with the largest
   error), so the total is exactly ``strokes``. The method ``agent`` (the learned proposer alone) uses a finer
   pyramid (:data:`AGENT_PATCH_STROKES`) and splits a level's strokes by the patches' errors
   (:data:`AGENT_ERROR_POWER`, :data:`AGENT_MOST`).
3. **One level** is painted as a few *batches of patches*. A patch's strokes may reach past its border by
   ``overlap`` of the patch side (points) plus their radius, so strokes cross patch borders and no grid
   shows. Patches of one parity class ``(row % 2, column % 2)`` are far enough apart that their reach never
   overlaps, so each class is one batch, ``B`` crops painted at once, each crop rendered on top of the
   current canvas, which already holds the earlier classes' strokes: each patch is optimised against
   exactly the pixels its strokes will be composited onto (a class sees the previous classes' strokes at
   its borders, instead of blending or blurring seams afterwards).
4. **Strokes of a batch** come from a :class:`StrokeProposer` (the built-in :class:`ErrorMapProposer` places
   them one by one where the error is largest, along the local edges, each the best of a few candidates in
   its error-minimising colour; a learned painter can be plugged in). With ``method="optimize"`` they are
   then refined by Adam through the soft renderer against the photo (``iters`` steps, cosine learning
   rate). The parameters are optimised through sigmoids that keep every stroke inside its patch's reach
   and its brush's ranges (:class:`Brush`).
5. The batch's strokes are mapped from crop to global normalised coordinates (:func:`crop_to_global`:
   ``x' = (x cw + cx0) / W``, ``y' = (y ch + cy0) / H``, ``r' = r min(ch, cw) / min(H, W)``) and composited
   onto the canvas in hard mode (:mod:`paintrnn.tiles`), in order: level by level, class by class, patch by
   patch. The final canvas is what ``Painting.render()`` gives.

A :class:`Painting` holds the strokes in the layout of :mod:`paintrnn.render` (normalised, resolution-free)
and renders them at any size, tile by tile (:meth:`Painting.render`), and writes PNG, GIF (coarse to fine),
SVG and ``strokes.json`` (:data:`JSON_FORMAT`, version :data:`JSON_VERSION`).

The core never imports :mod:`paintrnn.agents`: the methods ``agent`` and ``agent+optimize`` use the shipped
colour painter :data:`AGENT_MODEL` through :func:`paintrnn.load` (any model with a ``propose`` method), or a
proposer given to :func:`paint` or registered with :func:`register_proposer`.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from tqdm.auto import tqdm

from paintrnn import brushes
from paintrnn.brushes import BRUSHES, Brush
from paintrnn.image_metrics import psnr, ssim
from paintrnn.render import STROKE_FIELDS, render_strokes, stroke_coverage
from paintrnn.run import lr_schedule
from paintrnn.stroke_kernels import Bristles
from paintrnn.svg import strokes_to_svg
from paintrnn.tiles import TILE, clamp_strokes, composite_region, render_frames, render_tiled, to_pixels
from paintrnn.training import resolve_device

ImageLike = str | os.PathLike | np.ndarray | Image.Image | Tensor
METHODS: tuple[str, ...] = ("optimize", "agent", "agent+optimize")
"""Painting methods: ``optimize`` (error-map strokes refined by Adam), ``agent`` (the learned colour painter's
strokes alone), ``agent+optimize`` (its strokes refined by Adam)."""
JSON_FORMAT = "paintrnn-strokes"
JSON_VERSION = 1
CHANNELS = 3
_STROKE = len(STROKE_FIELDS) + CHANNELS  # 13 numbers per RGB stroke
_BLOCK = 8


# ----------------------------------------------------------------------------------------------- errors


class PaintError(ValueError):
    """Bad input to painting (file, option, format): the message is one line meant for the user."""


class ImageNotFoundError(PaintError, FileNotFoundError):
    """The picture file does not exist."""


class MethodUnavailableError(PaintError):
    """The method needs a stroke proposer that is not available (not registered)."""


def _note(message: str) -> None:
    print(f"paintrnn: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- input


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> ``(H, W, 3)`` float32 in [0, 1] (transparency composited on white)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "I":
            scale = 65535.0 if a.max(initial=0) > 255 else 255.0
        else:  # float: [0, 1] as it is, else 0..255
            scale = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(a / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # on white
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1|3|4)`` uint8/uint16/bool/float NumPy -> ``(H, W, 3)`` float32 in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise PaintError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    elif a.dtype == np.bool_:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise PaintError("the image array contains NaN or inf")
        f = np.clip(a.astype(np.float32), 0.0, 1.0)
    else:
        raise PaintError(f"an image array must be uint8, uint16, bool or float in [0, 1], got dtype {a.dtype}")
    if f.shape[2] == 4:
        f = f[..., :3] * f[..., 3:] + (1.0 - f[..., 3:])  # on white
    return np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f


def _open(path: Path, max_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (a JPEG larger than ``max_side`` decoded at a reduced scale) and its size in the file."""
    if not path.exists():
        raise ImageNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise PaintError(f"{path} is a folder, not an image file")
    try:
        img = Image.open(path)
        size = img.size
        if max(size) > max_side:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale (>= the asked size)
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise PaintError(f"cannot read {path} as an image ({type(err).__name__}: {err})") from err
    return img, size


def load_image(source: ImageLike, max_side: int = 4096) -> Tensor:
    """A picture as a float32 ``(3, H, W)`` tensor in [0, 1] (conversions in the module docstring).

    ``source``: a file path, a PIL image, a NumPy array ``(H, W[, 1|3|4])`` (uint8, uint16, bool or float in
    [0, 1]) or a tensor ``(C, H, W)`` / ``(H, W)`` of floats in [0, 1]. A picture longer than ``max_side`` px is
    downscaled (antialiased) with a message on stderr. Errors: :class:`ImageNotFoundError`, :class:`PaintError`.
    """
    if isinstance(source, (str, os.PathLike)):
        img, (w0, h0) = _open(Path(source), max_side)
        arr, name = _pil_to_array(ImageOps.exif_transpose(img)), f"{source} ({w0}x{h0} px)"
    elif isinstance(source, Image.Image):
        arr, name = _pil_to_array(ImageOps.exif_transpose(source)), "the image"
    elif isinstance(source, np.ndarray):
        arr, name = _array_to_rgb(source), "the image array"
    elif isinstance(source, Tensor):
        t = source.detach().cpu()
        t = t[None] if t.ndim == 2 else t
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise PaintError(f"an image tensor must be (C, H, W) with C in 1, 3, 4, got shape {tuple(source.shape)}")
        arr, name = _array_to_rgb(t.permute(1, 2, 0).float().numpy()), "the image tensor"
    else:
        raise PaintError(f"cannot paint a {type(source).__name__}: give a file path, PIL image, array or tensor")
    image = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()  # (3, h, w)
    h, w = image.shape[1:]
    if max(h, w) > max_side:
        nh, nw = fit_size(h, w, max_side)
        _note(f"{name} is larger than {max_side} px; downscaled to {nw}x{nh}")
        image = resize(image, nh, nw)
    return image


def fit_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the longer side ``size`` and the aspect of ``height x width`` (each side >= 1)."""
    if height >= width:
        return size, max(1, round(size * width / height))
    return max(1, round(size * height / width)), size


def resize(image: Tensor, height: int, width: int) -> Tensor:
    """``(C, h, w)`` -> ``(C, height, width)``: area-like antialiased bilinear, clipped to [0, 1]."""
    if tuple(image.shape[1:]) == (height, width):
        return image.clone()
    out = F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp(0.0, 1.0)


def load_target(image: ImageLike, size: int, max_side: int = 4096) -> Tensor:
    """The picture to paint, ``(3, H, W)`` with the longer side ``size`` (:func:`load_image` then :func:`resize`)."""
    photo = load_image(image, max_side)
    return resize(photo, *fit_size(photo.shape[1], photo.shape[2], size))


# ----------------------------------------------------------------------------------------------- brushes


def get_brush(name: str) -> Brush:
    """The brush called ``name`` (:func:`paintrnn.brushes.get_brush`); an unknown name is a :class:`PaintError`."""
    try:
        return brushes.get_brush(name)
    except brushes.UnknownBrushError as err:
        raise PaintError(str(err)) from None


# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PaintConfig:
    """Settings of :func:`paint` (and of ``paintrnn paint``)."""

    strokes: int = 4000
    """Number of strokes, honoured exactly."""
    size: int = 512
    """Longer side of the painting in pixels (the aspect is kept); the strokes re-render at any size."""
    method: str = "optimize"
    """optimize (strokes placed where the error is largest, refined by Adam through the soft renderer),
    agent (a learned stroke proposer alone) or agent+optimize (its strokes refined by Adam)."""
    brush: str = "round"
    """round, marker, tapered, watercolor or bristle (an oil brush: streaks along the stroke; see
    paintrnn.brushes)."""
    device: str = "auto"
    """cpu, cuda or auto (CUDA when available)."""
    seed: int = 0
    """Random seed (stroke placement)."""
    iters: int = 40
    """Adam steps for each batch of patches (each level has up to four batches); 0 keeps the proposals."""
    lr: float = 0.2
    """Adam learning rate on the strokes' unconstrained (logit) parameters; cosine decay to 10%."""
    sharpness: float = 4.0
    """Edge sharpness of the soft renderer during optimisation (per pixel; the result is rendered hard)."""
    patch_strokes: int | None = None
    """A finer level of patches is added while every patch still gets at least this many strokes (default: 8, and
    2 for the method agent, whose strokes are chosen best in small patches)."""
    min_patch: int = 16
    """Smallest patch side in pixels."""
    overlap: float = 0.125
    """How far stroke points may reach past their patch's border, a fraction of the patch side (<= 0.125)."""
    max_side: int = 4096
    """A picture longer than this (px) is downscaled when loaded."""
    backend: str = "auto"
    """Renderer backend during optimisation: auto (torch.compile for large calls), eager or compiled."""

    def __post_init__(self) -> None:
        ints = {"strokes": (1, 10**7), "size": (1, 16384), "iters": (0, 10**6), "patch_strokes": (1, 10**6)}
        ints |= {"min_patch": (8, 10**6), "max_side": (1, 10**6)}
        for name, (lo, hi) in ints.items():
            value = getattr(self, name)
            if name == "patch_strokes" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise PaintError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.method not in METHODS:
            raise PaintError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        get_brush(self.brush)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise PaintError(f"device must be cpu, cuda or auto, got {self.device!r}")
        for name in ("lr", "sharpness"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise PaintError(f"{name} must be a number > 0, got {value!r}")
        if not (isinstance(self.overlap, int | float) and 0 <= self.overlap <= 0.125):
            raise PaintError(f"overlap must be in [0, 0.125], got {self.overlap!r}")
        if self.backend not in ("auto", "eager", "compiled"):
            raise PaintError(f"backend must be auto, eager or compiled, got {self.backend!r}")

    @property
    def optimise(self) -> bool:
        return self.method in ("optimize", "agent+optimize") and self.iters > 0


# ----------------------------------------------------------------------------------------------- pyramid


@dataclass(frozen=True)
class Level:
    """One level of the patch pyramid: a ``grid x grid`` split of the picture and its stroke budget."""

    grid: int
    strokes: int


def split_evenly(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; ties to later entries); sums exactly."""
    w = np.asarray(weights, dtype=np.float64)
    share = total * w / w.sum()
    out = np.floor(share).astype(np.int64)
    rest = total - int(out.sum())
    order = sorted(range(len(w)), key=lambda i: (share[i] - out[i], i), reverse=True)
    for i in order[:rest]:
        out[i] += 1
    return [int(v) for v in out]


def plan_levels(strokes: int, height: int, width: int, patch_strokes: int = 8, min_patch: int = 16) -> list[Level]:
    """The levels of the pyramid for a budget of ``strokes`` (see the module docstring); budgets sum exactly."""
    n = 1
    while min(height, width) / 2**n >= min_patch and strokes / sum(4**i for i in range(n + 1)) >= patch_strokes:
        n += 1
    budgets = split_evenly(strokes, [4.0**i for i in range(n)])
    return [Level(2**i, b) for i, b in enumerate(budgets)]


@dataclass(frozen=True)
class Batch:
    """Geometry of one batch of patches (one parity class of a level), all crops ``ch x cw`` px."""

    owned: Tensor
    """(B, 4) int64 x0, y0, x1, y1: the pixels each patch is responsible for."""
    origin: Tensor
    """(B, 2) int64 cx0, cy0: top-left pixel of each crop (crops may run past the right/bottom edge: padded)."""
    region: Tensor
    """(B, 4) float x0, y0, x1, y1 in crop pixels: where the strokes' control points may lie."""
    crop: tuple[int, int]
    """(ch, cw), multiples of 8."""
    radius: tuple[float, float]
    """(min, max) stroke radius in pixels."""
    patch_side: float
    """Nominal shorter side of a patch in pixels."""


def level_batches(level: Level, height: int, width: int, brush: Brush, overlap: float, sharpness: float) -> list[Batch]:
    """The batches (parity classes ``(row % 2, col % 2)``) of a level, each with shared crop size and radii.

    Reach of a patch: its points may lie ``m = overlap p`` past its border, radii are at most
    ``brush.max_radius p``, so hard coverage ends ``m + r_max + 1/2`` px past it; with ``overlap <= 1/8`` and
    ``max_radius <= 1/4`` two patches of a class (a patch apart) never reach the same pixel. The crops add the
    soft renderer's tails (``16 / sharpness`` px) so that optimisation sees the whole soft footprint.
    """
    g = level.grid
    p = min(height, width) / g
    xs = [round(j * width / g) for j in range(g + 1)]
    ys = [round(i * height / g) for i in range(g + 1)]
    m = overlap * p if g > 1 else 0.0
    r_min = brush.min_radius
    r_max = max(brush.max_radius * p, r_min)
    reach = r_max + 1.0 + 16.0 / sharpness
    classes: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i in range(g):
        for j in range(g):
            classes.setdefault((i % 2, j % 2), []).append((i, j))
    batches = []
    for cells in classes.values():
        owned = torch.tensor([[xs[j], ys[i], xs[j + 1], ys[i + 1]] for i, j in cells], dtype=torch.int64)
        allowed = torch.stack(
            [
                (owned[:, 0] - m).clamp(min=0),
                (owned[:, 1] - m).clamp(min=0),
                (owned[:, 2] + m).clamp(max=width),
                (owned[:, 3] + m).clamp(max=height),
            ],
            1,
        ).double()  # (B, 4) px
        lo_x, lo_y = (allowed[:, 0] - reach).floor().clamp(min=0), (allowed[:, 1] - reach).floor().clamp(min=0)
        hi_x = (allowed[:, 2] + reach).ceil().clamp(max=width)
        hi_y = (allowed[:, 3] + reach).ceil().clamp(max=height)
        cw = -(-int((hi_x - lo_x).max()) // _BLOCK) * _BLOCK
        ch = -(-int((hi_y - lo_y).max()) // _BLOCK) * _BLOCK
        cx0 = torch.minimum(lo_x, torch.full_like(lo_x, max(width - cw, 0))).long()  # inside the picture if it fits
        cy0 = torch.minimum(lo_y, torch.full_like(lo_y, max(height - ch, 0))).long()
        origin = torch.stack([cx0, cy0], 1)
        region = allowed - torch.stack([cx0, cy0, cx0, cy0], 1).double()
        batches.append(Batch(owned, origin, region.float(), (ch, cw), (r_min, r_max), p))
    return batches


def crop_to_global(strokes: Tensor, origin: Tensor, crop: tuple[int, int], height: int, width: int) -> Tensor:
    """``(B, K, 10 + C)`` strokes in crop coordinates (crop ``b`` at pixel ``origin[b] = (cx0, cy0)``, size
    ``crop = (ch, cw)``) -> the same strokes in the normalised coordinates of the ``height x width`` picture."""
    ch, cw = crop
    o = origin.to(strokes.dtype).to(strokes.device)[:, None, :]  # (B, 1, 2)
    out = strokes.clone()
    out[..., 0:6:2] = (strokes[..., 0:6:2] * cw + o[..., 0:1]) / width
    out[..., 1:6:2] = (strokes[..., 1:6:2] * ch + o[..., 1:2]) / height
    out[..., 6:8] = strokes[..., 6:8] * (min(ch, cw) / min(height, width))
    return out


def extract_crops(image: Tensor, origin: Tensor, crop: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``(C, H, W)`` -> crops ``(B, C, ch, cw)`` at ``origin`` (B, 2) and their validity ``(B, 1, ch, cw)``
    (0 where a crop runs past the picture, whose pixels there are 0)."""
    C, H, W = image.shape
    ch, cw = crop
    padded = F.pad(image, (0, cw, 0, ch))
    inside = F.pad(image.new_ones(1, H, W), (0, cw, 0, ch))
    crops, valid = [], []
    for cx0, cy0 in origin.tolist():
        crops.append(padded[:, cy0 : cy0 + ch, cx0 : cx0 + cw])
        valid.append(inside[:, cy0 : cy0 + ch, cx0 : cx0 + cw])
    return torch.stack(crops), torch.stack(valid)


# ----------------------------------------------------------------------------------------------- proposers


@dataclass(frozen=True)
class PatchBatch:
    """What a stroke proposer sees: ``B`` crops of the picture and of the painting so far."""

    canvas: Tensor
    """(B, 3, h, w) the painting so far under each crop, in [0, 1] (0 in padding)."""
    target: Tensor
    """(B, 3, h, w) the photo under each crop (0 in padding)."""
    valid: Tensor
    """(B, 1, h, w) 1 inside the picture, 0 in padding."""
    region: Tensor
    """(B, 4) x0, y0, x1, y1 in crop pixels: where the strokes' control points may lie (they are projected
    into it afterwards)."""
    radius: tuple[float, float]
    """(min, max) radius in crop pixels allowed at this level."""
    patch_side: float
    """Nominal shorter side of the patch (px) that each crop is centred on."""
    opacity: tuple[float, float]
    """(min, max) stroke opacity of the brush."""
    level: int
    """Pyramid level (0 = the whole picture)."""
    generator: torch.Generator
    """Random stream to use (on the tensors' device)."""


class StrokeProposer(Protocol):
    """Anything that proposes strokes for a batch of patches (e.g. a learned recurrent painter)."""

    def propose(self, patches: PatchBatch, n: int) -> Tensor:
        """``n`` strokes per crop, ``(B, n, 13)`` in the crop's normalised coordinates (layout of
        :mod:`paintrnn.render`: x across the crop width, y down its height, radius a fraction of
        ``min(h, w)``), in painting order."""
        ...


class ErrorMapProposer:
    """Strokes where the error is largest, one after another (``greedy``, the default): each stroke's centre
    is drawn in proportion to the (5x5-blurred) squared error of the canvas painted so far, the stroke runs
    along the local edge (perpendicular to the photo's gradient), is sized so that the ``n`` strokes cover
    about 1.5 times the patch, and gets the colour that minimises the squared error under its alpha (closed
    form), at the brush's highest opacity; of ``candidates`` such strokes (centres drawn independently) the
    one that lowers the error most is kept. ``greedy=False`` draws all ``n`` centres from the first error map
    and takes the photo's (3x3-averaged) colour at each centre (faster, worse)."""

    def __init__(self, greedy: bool = True, candidates: int = 8) -> None:
        self.greedy, self.candidates = greedy, candidates

    def propose(self, patches: PatchBatch, n: int) -> Tensor:
        canvas, target, valid, g = patches.canvas, patches.target, patches.valid, patches.generator
        B, C, h, w = target.shape
        dev, dt = target.device, target.dtype
        xs = torch.arange(w, device=dev, dtype=dt) + 0.5
        ys = torch.arange(h, device=dev, dtype=dt) + 0.5
        reg = patches.region.to(dev, dt)
        inside = (
            (xs[None, None, :] >= reg[:, 0, None, None]) & (xs[None, None, :] <= reg[:, 2, None, None])
            & (ys[None, :, None] >= reg[:, 1, None, None]) & (ys[None, :, None] <= reg[:, 3, None, None])
        )[:, None] & (valid > 0)  # (B, 1, h, w)  # fmt: skip
        grey = F.avg_pool2d(target.mean(1, keepdim=True), 3, stride=1, padding=1, count_include_pad=False)
        grad_x = F.pad(grey[..., :, 2:] - grey[..., :, :-2], (1, 1)).flatten(1)  # (B, h w)
        grad_y = F.pad(grey[..., 2:, :] - grey[..., :-2, :], (0, 0, 1, 1)).flatten(1)
        r_typ = patches.patch_side * math.sqrt(1.5 / (11.0 * n))
        opacity = patches.opacity[1]
        s = min(h, w)

        def sample(current: Tensor, m: int) -> Tensor:
            err = F.avg_pool2d(((current - target) ** 2).sum(1, keepdim=True), 5, stride=1, padding=2)
            weight = ((err + 1e-6) * inside).flatten(1)  # (B, h w); 1e-6: uniform where there is no error
            weight[weight.sum(1) == 0] = 1.0  # an empty region (not for a valid batch): anywhere
            return torch.multinomial(weight, m, replacement=m > int((weight > 0).sum(1).min()), generator=g)

        def geometry(idx: Tensor) -> Tensor:
            """``(B, m, 8)`` points and radii (crop-normalised) of strokes centred on pixels ``idx`` (B, m)."""
            m = idx.shape[1]
            u = torch.rand(B, m, 4, generator=g, device=dev, dtype=dt)
            cx, cy = (idx % w).to(dt) + u[..., 0], (idx // w).to(dt) + u[..., 1]
            gx, gy = grad_x.gather(1, idx), grad_y.gather(1, idx)
            strong = (gx * gx + gy * gy) > 1e-6
            angle = u[..., 2] * (2 * math.pi)
            dx, dy = torch.where(strong, -gy, torch.cos(angle)), torch.where(strong, gx, torch.sin(angle))
            norm = torch.sqrt(dx * dx + dy * dy).clamp(min=1e-12)
            r = (r_typ * torch.exp((u[..., 3] - 0.5) * 0.6)).clamp(*patches.radius)  # (B, m) px
            half = 2.0 * r
            pts = torch.stack([cx - half * dx / norm, cy - half * dy / norm, cx, cy, cx + half * dx / norm,
                               cy + half * dy / norm], -1)  # fmt: skip
            lo, hi = reg[:, None, 0:2].repeat(1, 1, 3), reg[:, None, 2:4].repeat(1, 1, 3)  # (B, 1, 6)
            pts = torch.maximum(torch.minimum(pts, hi), lo)
            pts = pts / torch.tensor([w, h] * 3, device=dev, dtype=dt)
            return torch.cat([pts, (r / s)[..., None].expand(B, m, 2)], -1)

        full = torch.full((B, n, 2), opacity, device=dev, dtype=dt)
        if not self.greedy:
            idx = sample(canvas, n)
            colour = F.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False).flatten(2)
            colour = colour.gather(2, idx[:, None, :].expand(B, C, n)).transpose(1, 2)  # (B, n, C)
            return torch.cat([geometry(idx), full, colour], -1)
        work, out, N = canvas.clone(), [], self.candidates
        for _ in range(n):
            geo = geometry(sample(work, N))  # (B, N, 8) candidates
            stroke = torch.cat([geo, full[:, :1].expand(B, N, 2), torch.zeros(B, N, C, device=dev, dtype=dt)], -1)
            alpha = (stroke_coverage(stroke, h, w, mode="hard", backend="eager") * valid)[:, :, None]  # (B, N, 1, h, w)
            a2 = (alpha * alpha).sum((3, 4)).clamp(min=1e-12)  # (B, N, 1)
            k, e = work[:, None], (work - target)[:, None]  # (B, 1, C, h, w)
            # argmin_c sum (k + a (c - k) - t)^2 = (sum a^2 k - sum a e) / sum a^2, per channel
            colour = (((alpha * alpha * k).sum((3, 4)) - (alpha * e).sum((3, 4))) / a2).clamp(0.0, 1.0)  # (B, N, C)
            d = colour[..., None, None] - k
            delta = (2 * alpha * e * d + alpha * alpha * d * d).sum((2, 3, 4))  # (B, N) change of the error
            best = delta.argmin(1)  # (B,)
            rows = torch.arange(B, device=dev)
            a, c = alpha[rows, best], colour[rows, best]  # (B, 1, h, w), (B, C)
            work = work + a * (c[:, :, None, None] - work)
            out.append(torch.cat([stroke[rows, best, :10], c], -1)[:, None])
        return torch.cat(out, 1)  # (B, n, 13)


_PROPOSERS: dict[str, Callable[[torch.device], StrokeProposer]] = {}


AGENT_MODEL = "painter-colour"
"""The shipped model (``paintrnn.load`` name) behind the methods ``agent`` and ``agent+optimize``: any model
with a ``propose(patches, n)`` method (a :class:`StrokeProposer`)."""
AGENT_PATCH_STROKES = 2
"""``patch_strokes`` of the method ``agent`` (when not given): a finer pyramid, whose small patches each get a few
strokes that the proposer chooses among many of its own (measured on photos outside the benchmark)."""
AGENT_ERROR_POWER = 0.5
"""The method ``agent`` splits a level's strokes over its patches in proportion to their summed squared error to
this power (0 would split them evenly, as the other methods do)."""
AGENT_MOST = 2.0
"""The method ``agent`` gives no patch more than about this many times the even share of its level's strokes."""


def register_proposer(name: str, factory: Callable[[torch.device], StrokeProposer]) -> None:
    """Make ``factory(device) -> StrokeProposer`` serve the methods ``agent`` and ``agent+optimize`` (``name``
    ``"agent"``) instead of the shipped :data:`AGENT_MODEL`."""
    _PROPOSERS[name] = factory


def _agent_installed() -> bool:
    """Whether the shipped colour painter's checkpoint is there."""
    from paintrnn import hub

    return AGENT_MODEL in hub.SHIPPED and hub.checkpoint_path(AGENT_MODEL).is_file()


def _shipped_agent(device: torch.device) -> StrokeProposer | None:
    """The shipped colour painter through :func:`paintrnn.hub.load` (no import of the agents here), or None
    when it is not installed."""
    from paintrnn import hub

    if not _agent_installed():
        return None
    model = hub.load(AGENT_MODEL, device=device)
    return model if callable(getattr(model, "propose", None)) else None


def available_methods() -> tuple[str, ...]:
    """The methods usable now (``agent*`` once a proposer is registered or the shipped colour painter exists)."""
    agent = "agent" in _PROPOSERS or _agent_installed()
    return tuple(m for m in METHODS if m == "optimize" or agent)


# ----------------------------------------------------------------------------------------------- optimisation


class StrokeParams:
    """Strokes of a batch as unconstrained parameters ``theta`` (B, K, 13) mapped through sigmoids into their
    patch's region, the level's radii and the brush's opacities (:meth:`strokes`); ``active`` (B, K) zeroes the
    opacity of padding strokes (patches of a batch may have different counts)."""

    def __init__(self, batch: Batch, brush: Brush, active: Tensor, device: torch.device) -> None:
        ch, cw = batch.crop
        self.brush, self.active = brush, active.to(device)
        self.lo = torch.zeros(len(batch.region), 1, _STROKE, device=device)  # (B, 1, 13)
        self.span = torch.ones(len(batch.region), 1, _STROKE, device=device)
        reg = batch.region.to(device)
        scale = torch.tensor([cw, ch], device=device)
        for k in range(3):
            self.lo[:, 0, 2 * k : 2 * k + 2] = reg[:, 0:2] / scale
            self.span[:, 0, 2 * k : 2 * k + 2] = (reg[:, 2:4] - reg[:, 0:2]) / scale
        s = min(ch, cw)
        self.lo[..., 6:8], self.span[..., 6:8] = batch.radius[0] / s, (batch.radius[1] - batch.radius[0]) / s
        self.lo[..., 8:10], self.span[..., 8:10] = brush.opacity[0], brush.opacity[1] - brush.opacity[0]

    def strokes(self, theta: Tensor) -> Tensor:
        """``(B, K, 13)`` strokes in crop coordinates."""
        u = torch.sigmoid(theta)
        if not self.brush.taper:
            u = torch.cat([u[..., :6], u[..., 6:7], u[..., 6:7], u[..., 8:9], u[..., 8:9], u[..., 10:]], -1)
        s = self.lo + self.span * u
        return torch.cat([s[..., :8], s[..., 8:10] * self.active[..., None], s[..., 10:]], -1)

    def theta(self, strokes: Tensor) -> Tensor:
        """Parameters whose strokes are the given ones projected into the allowed ranges."""
        s = strokes.detach().to(self.lo)
        if not self.brush.taper:
            s = s.clone()
            s[..., 6:8] = s[..., 6:8].mean(-1, keepdim=True)
            s[..., 8:10] = s[..., 8:10].mean(-1, keepdim=True)
        u = torch.where(self.span > 0, (s - self.lo) / self.span.clamp(min=1e-12), 0.5)
        return torch.logit(u.clamp(0.01, 0.99))  # not deeper into the sigmoid's flat tails


def optimise_strokes(
    params: StrokeParams,
    theta: Tensor,
    canvas: Tensor,
    target: Tensor,
    valid: Tensor,
    *,
    iters: int,
    lr: float,
    sharpness: float,
    backend: str = "auto",
    deadline: float | None = None,
    on_step: Callable[[], None] | None = None,
) -> Tensor:
    """Adam on ``theta`` (B, K, 13) minimising the mean squared error of the soft render of
    ``params.strokes(theta)`` over ``canvas`` against ``target`` (both (B, C, h, w)) on the ``valid`` pixels;
    ``iters`` steps with a cosine learning rate from ``lr`` to ``lr / 10`` (by steps, or by time when a
    ``deadline``, a ``time.perf_counter()`` value, is given: it stops there). Returns the final ``theta``."""
    theta = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    norm = valid.sum().clamp(min=1) * canvas.shape[1]
    start = time.perf_counter()
    for it in range(iters):
        frac = it / iters
        if deadline is not None:
            now = time.perf_counter()
            if now >= deadline:
                break
            frac = max(frac, (now - start) / max(deadline - start, 1e-9))
        opt.param_groups[0]["lr"] = lr_schedule(frac, lr, lr / 10)
        out = render_strokes(
            params.strokes(theta), canvas, mode="soft", sharpness=sharpness, backend=backend,
            texture=params.brush.texture,
        )  # fmt: skip
        loss = (((out - target) ** 2) * valid).sum() / norm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step()
    return theta.detach()


# ----------------------------------------------------------------------------------------------- painting


def _canvas_blocks(height: int, width: int, background: Tensor) -> Tensor:
    """A block-padded canvas ``(C, 8 ceil(H/8), 8 ceil(W/8))`` filled with ``background``."""
    hp, wp = -(-height // _BLOCK) * _BLOCK, -(-width // _BLOCK) * _BLOCK
    return background[:, None, None].expand(len(background), hp, wp).contiguous()


def composite(canvas: Tensor, strokes: Tensor, height: int, width: int, texture: Bristles | None = None) -> None:
    """Composite ``(K, 13)`` normalised strokes in place onto a block-padded canvas of a ``height x width``
    picture (hard mode, exactly as ``render_strokes``, with the brush ``texture``)."""
    s = clamp_strokes(strokes)
    prm, colour = to_pixels(s, height, width), s[:, len(STROKE_FIELDS) :]
    composite_region(canvas, prm, colour, (0, 0), -(-width // _BLOCK), texture=texture)


def _paint_batch(
    canvas: Tensor,
    target: Tensor,
    batch: Batch,
    counts: list[int],
    level: int,
    proposer: StrokeProposer,
    cfg: PaintConfig,
    generator: torch.Generator,
    on_step: Callable[[], None],
) -> Tensor:
    """Paint one batch of patches; composites its strokes onto ``canvas`` and returns them ``(sum(counts), 13)``
    in global coordinates, patch by patch."""
    H, W = target.shape[1:]
    K = max(counts)
    active = torch.arange(K)[None, :] < torch.tensor(counts)[:, None]  # (B, K)
    brush = get_brush(cfg.brush)
    params = StrokeParams(batch, brush, active, target.device)
    crops, valid = extract_crops(canvas[:, :H, :W], batch.origin, batch.crop)
    goal, _ = extract_crops(target, batch.origin, batch.crop)
    ch, cw = batch.crop
    region_px = batch.region.to(target.device)
    radius = batch.radius
    patches = PatchBatch(crops, goal, valid, region_px, radius, batch.patch_side, brush.opacity, level, generator)
    proposed = proposer.propose(patches, K)
    if tuple(proposed.shape) != (len(counts), K, _STROKE):
        want = (len(counts), K, _STROKE)
        raise PaintError(f"the stroke proposer returned shape {tuple(proposed.shape)}, expected {want}")
    theta = params.theta(proposed.to(target.device, torch.float32))
    if cfg.optimise:
        theta = optimise_strokes(
            params, theta, crops, goal, valid, iters=cfg.iters, lr=cfg.lr, sharpness=cfg.sharpness,
            backend=cfg.backend, on_step=on_step,
        )  # fmt: skip
    with torch.no_grad():
        local = params.strokes(theta)  # (B, K, 13)
        strokes = crop_to_global(local, batch.origin, (ch, cw), H, W)[active]  # (sum(counts), 13), patch-major
        composite(canvas, strokes, H, W, brush.texture)
    return strokes


def _allocate(
    level: Level, batches: list[Batch], canvas: Tensor, target: Tensor, power: float = 0.0, most: float = 1.0
) -> list[list[int]]:
    """Strokes per patch of each batch: the level's budget evenly, the remainder to the largest errors; or, with
    ``power > 0``, in proportion to each patch's summed squared error to that power, no patch more than about
    ``most`` times the even share (:func:`split_evenly`)."""
    H, W = target.shape[1:]
    err2 = ((canvas[:, :H, :W] - target) ** 2).sum(0)  # (H, W)
    errors, where = [], []
    for bi, batch in enumerate(batches):
        for pi, (x0, y0, x1, y1) in enumerate(batch.owned.tolist()):
            errors.append(float(err2[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0)
            where.append((bi, pi))
    if power > 0:
        areas = [(x1 - x0) * (y1 - y0) for b in batches for x0, y0, x1, y1 in b.owned.tolist()]
        weight = np.asarray([(e * a) ** power for e, a in zip(errors, areas)]) + 1e-12
        weight = np.minimum(weight / weight.sum(), most / len(weight))
        flat, counts = split_evenly(level.strokes, list(weight)), []
        for b in batches:
            counts.append(flat[: len(b.owned)])
            flat = flat[len(b.owned) :]
        return counts
    n = len(errors)
    base, extra = divmod(level.strokes, n)
    counts = [[base] * len(b.owned) for b in batches]
    for k in sorted(range(n), key=lambda k: (-errors[k], k))[:extra]:
        bi, pi = where[k]
        counts[bi][pi] += 1
    return counts


def _proposer_for(method: str, proposer: StrokeProposer | None, device: torch.device) -> StrokeProposer:
    if method == "optimize":
        return proposer or ErrorMapProposer()
    if proposer is not None:
        return proposer
    found = _PROPOSERS["agent"](device) if "agent" in _PROPOSERS else _shipped_agent(device)
    if found is None:
        raise MethodUnavailableError(
            f"method {method!r} needs the colour painter ({AGENT_MODEL!r}, a learned stroke proposer), which is not "
            "installed; use --method optimize"
        )
    return found


def paint(
    image: ImageLike,
    strokes: int = 4000,
    *,
    size: int = 512,
    method: str = "optimize",
    brush: str = "round",
    device: str = "auto",
    seed: int = 0,
    proposer: StrokeProposer | None = None,
    progress: bool = False,
    config: PaintConfig | None = None,
    **options: Any,
) -> Painting:
    """Paint ``image`` (a path, PIL image, array or tensor; see :func:`load_image`) with exactly ``strokes``
    strokes, coarse to fine (see the module docstring). ``options`` are further :class:`PaintConfig` fields
    (``iters``, ``lr`` ...); ``config`` replaces all of them. ``proposer`` overrides the method's stroke
    proposer. Returns a :class:`Painting`; bad input raises :class:`PaintError` (a ``ValueError``)."""
    start = time.perf_counter()
    cfg = config or PaintConfig(
        strokes=strokes, size=size, method=method, brush=brush, device=device, seed=seed, **options
    )
    try:
        dev = resolve_device(cfg.device)
    except ValueError as err:  # cuda asked for without a GPU: the painting's one-line error
        raise PaintError(str(err)) from None
    proposer = _proposer_for(cfg.method, proposer, dev)
    target = load_target(image, cfg.size, cfg.max_side).to(dev)  # (3, H, W)
    H, W = target.shape[1:]
    background = target.mean((1, 2))  # (3,) the photo's mean colour
    canvas = _canvas_blocks(H, W, background)
    generator = torch.Generator(device=dev).manual_seed(cfg.seed)
    alone = cfg.method == "agent"  # the learned proposer alone: its own pyramid and allocation
    patch_strokes = cfg.patch_strokes or (AGENT_PATCH_STROKES if alone else 8)
    levels = plan_levels(cfg.strokes, H, W, patch_strokes, cfg.min_patch)
    brush_ = get_brush(cfg.brush)
    plan = [level_batches(lv, H, W, brush_, cfg.overlap, cfg.sharpness) for lv in levels]
    steps = sum(len(b) for b in plan) * (cfg.iters if cfg.optimise else 1)
    bar = tqdm(
        total=steps, disable=not progress, desc=f"painting {cfg.strokes} strokes", unit="step", dynamic_ncols=True
    )
    painted = []
    for li, (level, batches) in enumerate(zip(levels, plan)):
        bar.set_postfix_str(f"level {li + 1}/{len(levels)}: {level.grid}x{level.grid} patches, {level.strokes} strokes")
        counts = _allocate(level, batches, canvas, target, *((AGENT_ERROR_POWER, AGENT_MOST) if alone else ()))
        for batch, c in zip(batches, counts):
            if max(c) == 0:
                continue
            painted.append(_paint_batch(canvas, target, batch, c, li, proposer, cfg, generator, lambda: bar.update()))
            if not cfg.optimise:
                bar.update()
    bar.close()
    strokes_t = torch.cat(painted).cpu() if painted else torch.zeros(0, _STROKE)
    final = canvas[:, :H, :W]
    info = {
        "method": cfg.method,
        "seed": cfg.seed,
        "iters": cfg.iters if cfg.optimise else 0,
        "seconds": round(time.perf_counter() - start, 3),
        "psnr": round(psnr(final, target), 4),
        "ssim": round(ssim(final, target), 5),
        "source": str(image) if isinstance(image, (str, os.PathLike)) else None,
    }
    return Painting(
        strokes=strokes_t,
        width=int(W),
        height=int(H),
        background=tuple(float(v) for v in background.cpu()),
        brush=cfg.brush,
        levels=tuple(lv.strokes for lv in levels),
        info=info,
    )


# ----------------------------------------------------------------------------------------------- result


def _short(v: float) -> float:
    """The float64 with the shortest decimal text that reads back as the float32 ``v``."""
    short = float(repr(np.float32(v)).removeprefix("np.float32(").removesuffix(")"))
    return short if np.float32(short) == np.float32(v) else float(np.float32(v))


@dataclass
class Painting:
    """Strokes that paint a picture, resolution-free: ``strokes`` ``(K, 13)`` in the layout of
    :mod:`paintrnn.render` (normalised to the picture: x by its width, y by its height, radius by its shorter
    side), composited in order onto ``background``. ``width x height`` gives the aspect (and the size the
    strokes were made at); ``levels`` the strokes of each pyramid level, coarse to fine."""

    strokes: Tensor
    width: int
    height: int
    background: tuple[float, ...] = (1.0, 1.0, 1.0)
    brush: str = "round"
    levels: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.strokes, dtype=torch.float32).detach().cpu()
        if s.ndim != 2 or s.shape[1] != _STROKE:
            raise PaintError(f"strokes must be (K, {_STROKE}), got shape {tuple(s.shape)}")
        if not bool(torch.isfinite(s).all()):
            raise PaintError("strokes contain NaN or inf")
        self.strokes = s
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PaintError(f"{name} must be a positive integer, got {v!r}")
        if len(self.background) != CHANNELS or not all(math.isfinite(float(v)) for v in self.background):
            raise PaintError(f"background must be {CHANNELS} finite values, got {self.background!r}")
        self.background = tuple(_short(min(max(float(v), 0.0), 1.0)) for v in self.background)  # float32 values
        get_brush(self.brush)
        if self.levels and sum(self.levels) != len(s):
            raise PaintError(f"levels {self.levels} do not add up to the {len(s)} strokes")

    def __len__(self) -> int:
        return self.strokes.shape[0]

    def size_at(self, size: int | None = None) -> tuple[int, int]:
        """``(H, W)`` of a rendering whose longer side is ``size`` (``None``: the painting's own size)."""
        if size is None:
            return self.height, self.width
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise PaintError(f"size must be a positive integer, got {size!r}")
        return fit_size(self.height, self.width, size)

    def render(
        self, size: int | None = None, *, dtype: type = np.float32, tile: int = TILE, backend: str = "auto"
    ) -> np.ndarray:
        """The painting as ``(H, W, 3)`` NumPy (float32 in [0, 1], or uint8) with the longer side ``size``,
        rendered tile by tile in bounded memory (:func:`paintrnn.tiles.render_tiled`: ``backend`` "auto"
        compiles the alpha kernel from 1024 x 1024 px; "eager" is bit-exact with the renderer)."""
        H, W = self.size_at(size)
        texture = get_brush(self.brush).texture
        return render_tiled(
            self.strokes, H, W, self.background, tile=tile, dtype=dtype, backend=backend, texture=texture
        )

    def save_png(self, path: str | os.PathLike, size: int | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.render(size, dtype=np.uint8)).save(path)
        return path

    def frame_marks(self, max_frames: int = 60) -> list[int]:
        """Stroke counts at which the animation shows the picture: 0, every level's end, and counts spaced
        quadratically (more frames early, where the strokes are large), ``max_frames`` at most."""
        K = len(self)
        bounds = list(np.cumsum(self.levels)) if self.levels else [K]
        for n in range(max_frames, 1, -1):
            marks = sorted({0, K, *(int(b) for b in bounds), *(round(K * (i / n) ** 2) for i in range(n + 1))})
            if len(marks) <= max_frames:
                return marks
        return sorted({0, K})[:max_frames]

    def frames(self, size: int | None = 512, max_frames: int = 60) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 pictures of the painting process (see :meth:`frame_marks`), longer side
        ``min(size, the painting's)``."""
        H, W = self.size_at(min(size or max(self.height, self.width), max(self.height, self.width)))
        marks, texture = self.frame_marks(max_frames), get_brush(self.brush).texture
        return render_frames(self.strokes, H, W, self.background, marks, texture)

    def save_gif(
        self,
        path: str | os.PathLike,
        size: int = 512,
        max_frames: int = 60,
        max_bytes: int = 8_000_000,
        frame_ms: int = 80,
        hold_ms: int = 2000,
    ) -> Path:
        """An animated GIF of the painting process, coarse to fine, that loops; at most ``max_frames`` frames
        and ``max_bytes`` bytes (fewer frames, then a smaller size, until it fits). One palette (median cut of
        the last frame) serves every frame, without dithering, so unchanged areas compress away."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames_n, side = max_frames, min(size, max(self.height, self.width))
        while True:
            data = _gif_bytes(self.frames(side, frames_n), frame_ms, hold_ms)
            if len(data) <= max_bytes or (frames_n <= 2 and side <= 16):
                break
            frames_n, side = (max(2, frames_n // 2), side) if frames_n > 8 else (frames_n, max(16, side * 3 // 4))
        path.write_bytes(data)
        return path

    def svg(self) -> str:
        """The painting as SVG: one quadratic Bézier path per stroke (:func:`paintrnn.svg.strokes_to_svg`; a
        textured brush's stroke: its bands), ``viewBox`` the painting's size; exact up to anti-aliasing for
        plain brushes without taper."""
        texture = get_brush(self.brush).texture
        return strokes_to_svg(self.strokes, self.height, self.width, background=self.background, texture=texture)

    def save_svg(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.svg())
        return path

    def to_dict(self) -> dict[str, Any]:
        """The ``strokes.json`` content (numbers: the shortest text that reads back as the same float32)."""
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "width": self.width,
            "height": self.height,
            "background": [_short(v) for v in self.background],
            "brush": self.brush,
            "fields": [*STROKE_FIELDS, *(f"c{i}" for i in range(CHANNELS))],
            "levels": list(self.levels),
            "info": self.info,
            "strokes": [[_short(v) for v in row] for row in self.strokes.numpy().tolist()],
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write ``strokes.json``: everything needed to re-render at any size (:meth:`load`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = {k: v for k, v in self.to_dict().items() if k != "strokes"}
        rows = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in self.to_dict()["strokes"])
        text = json.dumps(head, indent=1)[:-2] + ',\n "strokes": [\n' + rows + "\n ]\n}\n"
        path.write_text(text)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "strokes.json") -> Painting:
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise PaintError(f"{source} is not a paintrnn strokes file (format {JSON_FORMAT!r})")
        if data.get("version") != JSON_VERSION:
            raise PaintError(f"{source} has version {data.get('version')!r}; this paintrnn reads {JSON_VERSION}")
        fields = [*STROKE_FIELDS, *(f"c{i}" for i in range(CHANNELS))]
        if data.get("fields") != fields:
            raise PaintError(f"{source}: stroke fields must be {fields}, got {data.get('fields')!r}")
        try:
            rows = np.asarray(data["strokes"], dtype=np.float32).reshape(-1, _STROKE)
            return cls(
                strokes=torch.from_numpy(rows),
                width=data["width"],
                height=data["height"],
                background=tuple(float(v) for v in data["background"]),
                brush=str(data.get("brush", "round")),
                levels=tuple(int(v) for v in data.get("levels", ())),
                info=dict(data.get("info", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, PaintError):
                raise PaintError(f"{source}: {err}") from err
            raise PaintError(f"{source} is malformed ({type(err).__name__}: {err})") from err

    @classmethod
    def load(cls, path: str | os.PathLike) -> Painting:
        """Read a ``strokes.json`` written by :meth:`save_json`."""
        path = Path(path)
        if not path.is_file():
            raise ImageNotFoundError(f"no such strokes file: {path}")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PaintError(f"{path} is not valid JSON ({err})") from err
        return cls.from_dict(data, str(path))

    def save(self, folder: str | os.PathLike, gif_size: int = 512) -> dict[str, Path]:
        """Write ``painting.png``, ``painting.gif``, ``painting.svg`` and ``strokes.json`` into ``folder``."""
        folder = Path(folder)
        return {
            "png": self.save_png(folder / "painting.png"),
            "gif": self.save_gif(folder / "painting.gif", size=gif_size),
            "svg": self.save_svg(folder / "painting.svg"),
            "json": self.save_json(folder / "strokes.json"),
        }


def _gif_bytes(frames: np.ndarray, frame_ms: int, hold_ms: int) -> bytes:
    """GIF bytes of ``(F, H, W, 3)`` uint8 frames with one shared palette, looping forever."""
    palette = Image.fromarray(frames[-1]).quantize(256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    step = max(20, round(frame_ms / 10) * 10)
    durations = [step] * len(images)
    durations[-1] = step + max(0, round(hold_ms / 10) * 10)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buf.getvalue()


__all__ = [
    "BRUSHES",
    "METHODS",
    "Brush",
    "ErrorMapProposer",
    "ImageNotFoundError",
    "MethodUnavailableError",
    "PaintConfig",
    "PaintError",
    "Painting",
    "PatchBatch",
    "StrokeProposer",
    "available_methods",
    "load_image",
    "paint",
    "register_proposer",
]
