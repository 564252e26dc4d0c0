"""Baselines for painting photos with ``n`` strokes, to put :func:`paintrnn.painting.paint` in context.

* :func:`mosaic` — ``n`` square-ish cells, each the mean colour of its pixels, upsampled bilinearly (what
  ``n`` numbers of colour buy without any stroke).
* :func:`hill_climb` — fogleman's *primitive* with Bézier strokes: each new stroke is the best of a batch of
  random candidate strokes, refined by rounds of random mutations of the best, and kept when the image error
  drops. Candidates are scored as a batch with the hard renderer on the crop they cover; a candidate's colour
  is the one that minimises the squared error given its alpha (closed form, as primitive does). Unlike
  primitive, a stroke's neighbourhood is drawn in proportion to the current error (primitive draws uniformly
  and relies on many more candidates). With a time budget, the candidates and mutation rounds of each stroke
  adapt to its share of the time left (measured cost per candidate), so that all ``n`` strokes are placed in
  about that time, for any ``n``.
* :func:`optimize_random` — the pyramid's optimiser without the pyramid and without proposals: ``n`` random
  strokes on the patches of one grid (the pyramid's finest), optimised by Adam through the soft renderer as
  batches of patches (the machinery of :func:`paintrnn.painting.paint`) until a time budget runs out.

Each returns ``(strokes (n, 13) normalised to the picture, picture (3, H, W))``, except :func:`mosaic`
(the picture and its cell count).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.painting import (
    Level,
    PaintError,
    StrokeParams,
    composite,
    crop_to_global,
    extract_crops,
    get_brush,
    level_batches,
    optimise_strokes,
    plan_levels,
)
from paintrnn.render import stroke_coverage

Box = tuple[int, int, int, int]
_clock = time.perf_counter  # the time budgets' clock (a test may replace it)
_BLOCK = 8


def mosaic_grid(n: int, height: int, width: int) -> tuple[int, int]:
    """``(rows, cols)`` of about ``n`` square-ish cells: minimises ``|rows cols - n| / n + |log(cell aspect)|``."""
    if n < 1:
        raise PaintError(f"the number of cells must be >= 1, got {n}")
    best = None
    for cols in range(1, min(n, width) + 1):
        for rows in {max(1, min(height, n // cols)), max(1, min(height, -(-n // cols)))}:
            key = abs(rows * cols - n) / n + abs(math.log((width / cols) / (height / rows)))
            if best is None or key < best[0]:
                best = (key, rows, cols)
    return best[1], best[2]


def mosaic(target: Tensor, n: int) -> tuple[Tensor, int]:
    """``(3, H, W)`` -> the mosaic picture of about ``n`` cells (:func:`mosaic_grid`) and the cell count."""
    _, H, W = target.shape
    rows, cols = mosaic_grid(n, H, W)
    cells = F.adaptive_avg_pool2d(target[None], (rows, cols))
    up = F.interpolate(cells, size=(H, W), mode="bilinear", align_corners=False)
    return up[0].clamp(0, 1), rows * cols


# ----------------------------------------------------------------------------------------------- hill climbing


def _random_strokes(
    centre: Tensor, n: int, r_lo: float, r_hi: float, opacity: tuple[float, float], g: torch.Generator
) -> Tensor:
    """``n`` random strokes in pixels ``(n, 10)`` around ``centre`` (2,): radius log-uniform in
    ``[r_lo, r_hi]``, length 1-6 radii, random direction and bend, centre within a radius of ``centre``."""
    u = torch.rand(n, 7, generator=g)
    r = r_lo * (r_hi / r_lo) ** u[:, 0]
    half = r * (0.5 + 2.5 * u[:, 1])
    ang = u[:, 2] * 2 * math.pi
    dx, dy = torch.cos(ang) * half, torch.sin(ang) * half
    c = centre[None, :] + (u[:, 3:5] - 0.5) * 2 * r[:, None]  # (n, 2)
    bend = (u[:, 5] - 0.5) * half
    mid = c + torch.stack([-dy, dx], 1) / half.clamp(min=1e-9)[:, None] * bend[:, None]
    a = opacity[0] + (opacity[1] - opacity[0]) * u[:, 6]
    return torch.stack([c[:, 0] - dx, c[:, 1] - dy, mid[:, 0], mid[:, 1], c[:, 0] + dx, c[:, 1] + dy, r, r, a, a], 1)


def _mutate(best: Tensor, n: int, opacity: tuple[float, float], r_lo: float, r_hi: float, g: torch.Generator) -> Tensor:
    """``n`` mutations ``(n, 10)`` of a stroke ``(10,)`` in pixels: points moved by ~r/2, radius and opacity
    scaled by ~exp(0.2 N)."""
    r = float(best[6])
    noise = torch.randn(n, 10, generator=g)
    out = best[None].repeat(n, 1)
    out[:, :6] += noise[:, :6] * max(r, 1.0) * 0.5
    out[:, 6:8] = (out[:, 6:8] * torch.exp(0.2 * noise[:, 6:7])).clamp(r_lo, r_hi)
    out[:, 8:10] = (out[:, 8:10] * torch.exp(0.2 * noise[:, 8:9])).clamp(*opacity)
    return out


def _score(geo: Tensor, canvas: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor, Box, Tensor]:
    """Error change and best colour of candidate strokes ``geo`` (n, 10) in picture pixels.

    Returns ``delta`` (n,) (change of the summed squared error), ``colour`` (n, 3), alpha (n, h, w) on the
    crop ``(x0, y0, x1, y1)`` that holds every candidate, and the candidates with points clamped into the
    picture."""
    C, H, W = target.shape
    reach = geo[:, 6:8].amax(1, keepdim=True) + 1.0
    pts_x, pts_y = geo[:, 0:6:2], geo[:, 1:6:2]
    geo = geo.clone()
    geo[:, 0:6:2] = pts_x.clamp(0, W)
    geo[:, 1:6:2] = pts_y.clamp(0, H)
    x0 = int(max(0, math.floor(float((geo[:, 0:6:2] - reach).min()))))
    y0 = int(max(0, math.floor(float((geo[:, 1:6:2] - reach).min()))))
    x1 = int(min(W, math.ceil(float((geo[:, 0:6:2] + reach).max()))))
    y1 = int(min(H, math.ceil(float((geo[:, 1:6:2] + reach).max()))))
    h, w = y1 - y0, x1 - x0
    local = geo.clone()
    local[:, 0:6:2] = (geo[:, 0:6:2] - x0) / w
    local[:, 1:6:2] = (geo[:, 1:6:2] - y0) / h
    local[:, 6:8] = geo[:, 6:8] / min(h, w)
    strokes = torch.cat([local, torch.zeros(len(geo), C)], 1)[None]  # (1, n, 13), colour unused
    alpha = stroke_coverage(strokes, h, w, mode="hard", backend="eager")[0]  # (n, h, w)
    k = canvas[:, y0:y1, x0:x1].reshape(C, -1)  # (C, P) the canvas under the crop
    e = k - target[:, y0:y1, x0:x1].reshape(C, -1)  # (C, P) its error
    a = alpha.reshape(len(geo), -1)  # (n, P)
    # The error change of painting colour c with alpha a over canvas k (error e = k - T), summed over pixels:
    #   sum 2 a e.(c - k) + a^2 |c - k|^2 = 2 c.Sae - 2 Sa(e.k) + |c|^2 Sa2 - 2 c.Sa2k + Sa2|k|^2,
    # every sum one matrix product of the (n, P) alpha with a few (P,) maps (no (n, C, h, w) temporaries).
    first = a @ torch.cat([e, (e * k).sum(0, keepdim=True)]).T  # (n, C + 1): Sae, Sa(e.k)
    second = (a * a) @ torch.cat([k, (k * k).sum(0, keepdim=True), torch.ones_like(k[:1])]).T  # (n, C + 2)
    ae, aek = first[:, :C], first[:, C]
    a2k, a2kk, a2 = second[:, :C], second[:, C], second[:, C + 1].clamp(min=1e-12)
    colour = ((a2k - ae) / a2[:, None]).clamp(0, 1)  # (n, C): argmin_c, per channel, clipped to [0, 1]
    delta = 2 * (colour * ae).sum(1) - 2 * aek + (colour * colour).sum(1) * a2 - 2 * (colour * a2k).sum(1) + a2kk
    return delta, colour, alpha, (x0, y0, x1, y1), geo


def _best(geo: Tensor, canvas: Tensor, target: Tensor) -> tuple[float, Tensor, Tensor, Tensor, Box]:
    """The candidate of ``geo`` (n, 10) that lowers the error most: ``(delta, geometry, colour, alpha, crop)``."""
    delta, colour, alpha, box, geo = _score(geo, canvas, target)
    i = int(delta.argmin())
    return float(delta[i]), geo[i], colour[i], alpha[i], box


class _ErrorSampler:
    """Draws pixels with probability proportional to ``err + 1e-9`` of a ``(H, W)`` error map, exactly, at a
    cost independent of the picture's size: a draw over the sums of its 8x8 blocks, then over the block's
    64 pixels. :meth:`update` recomputes the map and block sums under a box."""

    def __init__(self, err: Tensor) -> None:
        H, W = err.shape
        self.size = (H, W)
        self.weight = F.pad(err + 1e-9, (0, -W % _BLOCK, 0, -H % _BLOCK))  # (Hp, Wp), 0 in the padding
        self.nb_x = self.weight.shape[1] // _BLOCK
        self.sums = self._block_sums(self.weight)  # (nb_y, nb_x)

    @staticmethod
    def _block_sums(weight: Tensor) -> Tensor:
        h, w = weight.shape
        return weight.view(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).sum((1, 3))

    def update(self, err: Tensor, box: Box) -> None:
        """Set the error under ``box`` (x0, y0, x1, y1) to ``err`` (h, w)."""
        x0, y0, x1, y1 = box
        self.weight[y0:y1, x0:x1] = err + 1e-9
        bx0, by0 = x0 // _BLOCK * _BLOCK, y0 // _BLOCK * _BLOCK
        bx1, by1 = -(-x1 // _BLOCK) * _BLOCK, -(-y1 // _BLOCK) * _BLOCK
        self.sums[by0 // _BLOCK : by1 // _BLOCK, bx0 // _BLOCK : bx1 // _BLOCK] = self._block_sums(
            self.weight[by0:by1, bx0:bx1]
        )

    def draw(self, g: torch.Generator) -> Tensor:
        """A pixel centre ``(x, y)`` (2,)."""
        b = int(torch.multinomial(self.sums.flatten(), 1, generator=g))
        by, bx = divmod(b, self.nb_x)
        block = self.weight[by * _BLOCK : (by + 1) * _BLOCK, bx * _BLOCK : (bx + 1) * _BLOCK]
        p = int(torch.multinomial(block.flatten(), 1, generator=g))
        return torch.tensor([bx * _BLOCK + p % _BLOCK + 0.5, by * _BLOCK + p // _BLOCK + 0.5])


def hill_climb(
    target: Tensor,
    n: int,
    *,
    seconds: float | None = None,
    candidates: int = 32,
    rounds: int = 4,
    min_candidates: int = 4,
    max_rounds: int = 64,
    brush: str = "round",
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Primitive-style hill climbing with ``n`` strokes on ``target`` (3, H, W) (see the module docstring).

    Without ``seconds``: each stroke is the best of ``candidates`` random strokes, then ``rounds`` rounds of
    ``candidates`` mutations. With a budget of ``seconds``: each stroke gets an equal share of the time left
    (``left / strokes to go``, so time one stroke does not use goes to the later ones); from the measured
    seconds per scored candidate (a moving average), its random batch has as many candidates as fit in that
    share (between ``min_candidates`` and ``candidates``), and mutation rounds of that size follow while the
    next one still fits (at most ``max_rounds``). All ``n`` strokes are always placed, each scoring at least
    ``min_candidates``: a budget below ``n`` times that cost (a few ms per stroke on one CPU thread) is
    overrun by it. Strokes are painted onto the target's mean colour; returns ``(strokes (n, 13),
    picture (3, H, W))``.
    """
    if n < 1:
        raise PaintError(f"strokes must be >= 1, got {n}")
    if not 1 <= min_candidates <= candidates:
        raise PaintError(f"need 1 <= min_candidates <= candidates, got {min_candidates} and {candidates}")
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise PaintError(f"seconds must be a finite number >= 0, got {seconds!r}")
    target = target.detach().float().cpu()
    C, H, W = target.shape
    opacity = get_brush(brush).opacity
    g = torch.Generator().manual_seed(seed)
    canvas = target.mean((1, 2))[:, None, None].expand(C, H, W).clone()
    sampler = _ErrorSampler(((canvas - target) ** 2).sum(0))
    r_lo, side = 0.5, min(H, W)
    strokes = torch.zeros(n, 13)
    start, per_candidate = _clock(), None  # measured seconds per scored candidate (moving average)

    def best_of(geo: Tensor) -> tuple[float, Tensor, Tensor, Tensor, Box]:
        nonlocal per_candidate
        t0 = _clock()
        found = _best(geo, canvas, target)
        took = (_clock() - t0) / len(geo)
        per_candidate = took if per_candidate is None else 0.8 * per_candidate + 0.2 * took
        return found

    for k in range(n):
        r_hi = max(r_lo, side / 4 * (1 - k / n) + side / 64)  # large strokes first, as a painter would
        t0 = _clock()
        share = None if seconds is None else (seconds - (t0 - start)) / (n - k)  # this stroke's time
        if share is None:
            width = candidates
        elif per_candidate is None:
            width = min_candidates  # the first stroke measures the cost
        else:
            width = int(min(candidates, max(min_candidates, share / per_candidate)))
        centre = sampler.draw(g)
        delta, geo, colour, alpha, box = best_of(_random_strokes(centre, width, r_lo, r_hi, opacity, g))
        done = 0
        while done < (rounds if share is None else max_rounds):
            if share is not None and _clock() - t0 + width * per_candidate > share:
                break
            found = best_of(_mutate(geo, width, opacity, r_lo, r_hi, g))
            if found[0] < delta:
                delta, geo, colour, alpha, box = found
            done += 1
        x0, y0, x1, y1 = box
        if delta < 0:  # kept only when the error drops; otherwise an invisible stroke keeps the count
            k_ = canvas[:, y0:y1, x0:x1]
            canvas[:, y0:y1, x0:x1] = k_ + alpha[None] * (colour[:, None, None] - k_)
            sampler.update(((canvas[:, y0:y1, x0:x1] - target[:, y0:y1, x0:x1]) ** 2).sum(0), box)
        else:
            geo = geo.clone()
            geo[8:10] = 0.0
        strokes[k, :10] = geo / torch.tensor([W, H, W, H, W, H, side, side, 1.0, 1.0])
        strokes[k, 10:] = colour
    return strokes, canvas


# ----------------------------------------------------------------------------------------------- random init + Adam


def optimize_random(
    target: Tensor,
    n: int,
    *,
    seconds: float,
    lr: float = 0.2,
    sharpness: float = 4.0,
    brush: str = "round",
    seed: int = 0,
    backend: str = "eager",
    max_iters: int = 10**6,
    patch_strokes: int = 8,
    min_patch: int = 16,
    overlap: float = 0.125,
) -> tuple[Tensor, Tensor]:
    """``n`` random strokes optimised by Adam through the soft renderer for ``seconds`` (or ``max_iters``
    steps per batch), with the machinery that :func:`paintrnn.painting.paint` uses for one level of its
    pyramid (:func:`~paintrnn.painting.level_batches`, :class:`~paintrnn.painting.StrokeParams`,
    :func:`~paintrnn.painting.optimise_strokes`), but with one level only and random strokes instead of
    proposals.

    The grid is the pyramid's finest for ``n`` strokes (:func:`paintrnn.painting.plan_levels` with
    ``patch_strokes`` and ``min_patch``). Each stroke has a uniformly random centre in the picture and belongs
    to the patch that owns it (so patches hold different counts), a radius log-uniform from the brush's
    smallest to the level's largest (a quarter of the patch side), a length of 1-6 radii, a random direction
    and bend, the photo's colour at its centre; it is then projected into its patch's reach (``overlap``) and
    the brush's ranges by :class:`paintrnn.painting.StrokeParams`. The batches of patches (parity classes)
    are optimised in turn, each with an equal share of ``seconds`` (time one does not use goes to the next),
    on top of the canvas that holds the earlier batches' strokes, and composited hard. Memory is that of one
    batch of patch crops (bounded for any ``n``), not of ``n`` strokes on one picture-sized canvas.
    Returns ``(strokes (n, 13), picture (3, H, W) rendered hard)``, the strokes in painting order."""
    if n < 1:
        raise PaintError(f"strokes must be >= 1, got {n}")
    start = time.perf_counter()  # optimise_strokes' clock
    target = target.detach().float()
    dev = target.device
    C, H, W = target.shape
    g = torch.Generator().manual_seed(seed)
    brush_ = get_brush(brush)
    grid = plan_levels(n, H, W, patch_strokes, min_patch)[-1].grid
    batches = level_batches(Level(grid, n), H, W, brush_, overlap, sharpness)
    # random centres, each stroke in the patch that owns its centre
    centre = torch.rand(n, 2, generator=g) * torch.tensor([float(W), float(H)])  # (n, 2) px
    r_hi = batches[0].radius[1]
    geo = torch.cat([_random_strokes(c, 1, brush_.min_radius, r_hi, (1.0, 1.0), g) for c in centre])  # (n, 10) px
    geo[:, 0:6] += (centre - (geo[:, 0:2] + geo[:, 4:6]) / 2).repeat(1, 3)  # the chord's midpoint on the centre
    ix, iy = centre[:, 0].long().clamp(0, W - 1), centre[:, 1].long().clamp(0, H - 1)
    colour = target[:, iy.to(dev), ix.to(dev)].T.cpu()  # (n, C)
    background = target.mean((1, 2))
    hp, wp = -(-H // _BLOCK) * _BLOCK, -(-W // _BLOCK) * _BLOCK
    canvas = background[:, None, None].expand(C, hp, wp).contiguous()  # block-padded, as paint()'s
    painted = []
    for i, batch in enumerate(batches):
        owned = batch.owned.double()  # (B, 4)
        inside = (
            (centre[None, :, 0] >= owned[:, 0, None]) & (centre[None, :, 0] < owned[:, 2, None])
            & (centre[None, :, 1] >= owned[:, 1, None]) & (centre[None, :, 1] < owned[:, 3, None])
        )  # (B, n)  # fmt: skip
        counts = inside.sum(1)  # (B,)
        if int(counts.sum()) == 0:
            continue
        K = int(counts.max())
        active = torch.arange(K)[None, :] < counts[:, None]  # (B, K)
        ch, cw = batch.crop
        init = torch.zeros(len(counts), K, 10 + C)  # (B, K, 13) in crop coordinates
        for b, members in enumerate(inside):
            idx = members.nonzero()[:, 0]
            s = geo[idx].clone()
            s[:, 0:6:2] = (s[:, 0:6:2] - batch.origin[b, 0]) / cw
            s[:, 1:6:2] = (s[:, 1:6:2] - batch.origin[b, 1]) / ch
            s[:, 6:8] /= min(ch, cw)
            init[b, : len(idx)] = torch.cat([s, colour[idx]], 1)
        params = StrokeParams(batch, brush_, active, dev)
        crops, valid = extract_crops(canvas[:, :H, :W], batch.origin, batch.crop)
        goal, _ = extract_crops(target, batch.origin, batch.crop)
        theta = optimise_strokes(
            params, params.theta(init.to(dev)), crops, goal, valid, iters=max_iters, lr=lr, sharpness=sharpness,
            backend=backend, deadline=start + seconds * (i + 1) / len(batches),
        )  # fmt: skip
        with torch.no_grad():
            strokes = crop_to_global(params.strokes(theta), batch.origin, batch.crop, H, W)[active.to(dev)]
            composite(canvas, strokes, H, W)
        painted.append(strokes.cpu())
    return torch.cat(painted), canvas[:, :H, :W].cpu()
