"""The coarse-to-fine patch pyramid of :func:`paintrnn.painting.paint`: which patches get how many strokes, and
the crops they are painted in.

Level 0 is the whole picture, level ``l`` a ``2^l x 2^l`` grid of patches (:func:`plan_levels`). Levels are added
while every patch of every level still gets ``patch_strokes`` strokes and the patches stay ``min_patch`` px or
larger. The stroke budget is split across levels in proportion to their patch counts (:func:`split_evenly`), so
the total is exactly ``strokes``.

A level is painted as a few *batches of patches* (:func:`level_batches`). A patch's strokes may reach past its
border by ``overlap`` of the patch side (points) plus their radius, so strokes cross patch borders and no grid
shows. Patches of one parity class ``(row % 2, column % 2)`` are far enough apart that their reach never
overlaps, so each class is one batch of ``B`` equal-sized crops (:func:`extract_crops`; a proposer sees them as a
:class:`PatchBatch`). Strokes made in crop coordinates are mapped to the picture's normalised ones by
:func:`crop_to_global`: ``x' = (x cw + cx0) / W``, ``y' = (y ch + cy0) / H``, ``r' = r min(ch, cw) / min(H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.brushes import Brush

_BLOCK = 8


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
