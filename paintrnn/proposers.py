"""Stroke proposers: what places the strokes of a batch of patches before any optimisation.

A proposer is anything with ``propose(patches, n) -> (B, n, 13)`` strokes (the :class:`StrokeProposer` protocol):
the built-in :class:`ErrorMapProposer` (greedy, where the error is largest, along the local edges, in
closed-form colours) or a learned painter (the shipped colour painter's ``propose``, which
:mod:`paintrnn.painting` loads through :func:`paintrnn.load` for the methods ``agent`` and ``agent+optimize``).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.pyramid import PatchBatch
from paintrnn.render import stroke_coverage


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
