"""Baselines for painting photos with ``n`` strokes, to put :func:`paintrnn.painting.paint` in context.

* :func:`mosaic` — ``n`` square-ish cells, each the mean colour of its pixels, upsampled bilinearly (what
  ``n`` numbers of colour buy without any stroke).
* :func:`hill_climb` — fogleman's *primitive* with Bézier strokes: each new stroke is the best of
  ``candidates`` random strokes, refined by rounds of random mutations of the best, and kept when the image
  error drops. Candidates are scored as a batch with the hard renderer on the crop they cover; a candidate's
  colour is the one that minimises the squared error given its alpha (closed form, as primitive does). Unlike
  primitive, a stroke's neighbourhood is drawn in proportion to the current error (primitive draws uniformly
  and relies on many more candidates). With a time budget the mutation rounds adapt so that all ``n``
  strokes are placed in about that time.
* :func:`optimize_random` — the pyramid's optimiser without the pyramid: ``n`` random strokes on one canvas,
  optimised jointly by Adam until a time budget runs out.

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
    Batch,
    PaintError,
    StrokeParams,
    crop_to_global,
    get_brush,
    optimise_strokes,
)
from paintrnn.render import stroke_coverage

Box = tuple[int, int, int, int]


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
    k = canvas[:, y0:y1, x0:x1]  # (C, h, w)
    e = k - target[:, y0:y1, x0:x1]
    a2 = (alpha * alpha).flatten(1).sum(1).clamp(min=1e-12)  # (n,)
    # argmin_c sum (k + a (c - k) - T)^2 = (sum a^2 k - sum a e) / sum a^2, per channel
    ak = torch.einsum("nhw,chw->nc", alpha * alpha, k)
    ae = torch.einsum("nhw,chw->nc", alpha, e)
    colour = ((ak - ae) / a2[:, None]).clamp(0, 1)  # (n, C)
    d = colour[:, :, None, None] - k[None]  # (n, C, h, w)
    a = alpha[:, None]
    delta = (2 * a * e[None] * d + a * a * d * d).flatten(1).sum(1)  # (n,)
    return delta, colour, alpha, (x0, y0, x1, y1), geo


def _best(geo: Tensor, canvas: Tensor, target: Tensor) -> tuple[float, Tensor, Tensor, Tensor, Box]:
    """The candidate of ``geo`` (n, 10) that lowers the error most: ``(delta, geometry, colour, alpha, crop)``."""
    delta, colour, alpha, box, geo = _score(geo, canvas, target)
    i = int(delta.argmin())
    return float(delta[i]), geo[i], colour[i], alpha[i], box


def hill_climb(
    target: Tensor,
    n: int,
    *,
    seconds: float | None = None,
    candidates: int = 32,
    rounds: int = 4,
    brush: str = "round",
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Primitive-style hill climbing with ``n`` strokes on ``target`` (3, H, W) (see the module docstring).

    ``seconds``: a time budget; the mutation rounds per stroke adapt to it (at least one batch of
    ``candidates`` per stroke, so all ``n`` strokes are always placed). Without it, ``rounds`` per stroke.
    Strokes are painted onto the target's mean colour; returns ``(strokes (n, 13), picture (3, H, W))``.
    """
    if n < 1:
        raise PaintError(f"strokes must be >= 1, got {n}")
    target = target.detach().float().cpu()
    C, H, W = target.shape
    opacity = get_brush(brush).opacity
    g = torch.Generator().manual_seed(seed)
    canvas = target.mean((1, 2))[:, None, None].expand(C, H, W).clone()
    err = ((canvas - target) ** 2).sum(0)  # (H, W)
    r_lo, side = 0.5, min(H, W)
    strokes = torch.zeros(n, 13)
    start, batch_s = time.perf_counter(), None
    for k in range(n):
        r_hi = max(r_lo, side / 4 * (1 - k / n) + side / 64)  # large strokes first, as a painter would
        if seconds is not None and batch_s is not None:
            left = seconds - (time.perf_counter() - start)
            todo = max(0, min(rounds * 4, int(left / (n - k) / batch_s) - 1))
        else:
            todo = rounds
        t0 = time.perf_counter()
        idx = int(torch.multinomial(err.flatten() + 1e-9, 1, generator=g))
        centre = torch.tensor([idx % W + 0.5, idx // W + 0.5])
        delta, geo, colour, alpha, box = _best(
            _random_strokes(centre, candidates, r_lo, r_hi, opacity, g), canvas, target
        )
        took = time.perf_counter() - t0
        batch_s = took if batch_s is None else 0.8 * batch_s + 0.2 * took
        for _ in range(todo):
            found = _best(_mutate(geo, candidates, opacity, r_lo, r_hi, g), canvas, target)
            if found[0] < delta:
                delta, geo, colour, alpha, box = found
        x0, y0, x1, y1 = box
        if delta < 0:  # kept only when the error drops; otherwise an invisible stroke keeps the count
            k_ = canvas[:, y0:y1, x0:x1]
            canvas[:, y0:y1, x0:x1] = k_ + alpha[None] * (colour[:, None, None] - k_)
            err[y0:y1, x0:x1] = ((canvas[:, y0:y1, x0:x1] - target[:, y0:y1, x0:x1]) ** 2).sum(0)
        else:
            geo = geo.clone()
            geo[8:10] = 0.0
        strokes[k, :10] = geo / torch.tensor([W, H, W, H, W, H, side, side, 1.0, 1.0])
        strokes[k, 10:] = colour
    return strokes, canvas


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
) -> tuple[Tensor, Tensor]:
    """``n`` random strokes on one whole canvas (uniform positions and directions, radius log-uniform from
    0.5 px to 1/8 of the shorter side, length 2-6 radii, the photo's colour at the start point), optimised by
    Adam through the soft renderer until ``seconds`` run out (or ``max_iters``). Returns
    ``(strokes (n, 13), picture (3, H, W) rendered hard)``."""
    if n < 1:
        raise PaintError(f"strokes must be >= 1, got {n}")
    target = target.detach().float()
    C, H, W = target.shape
    g = torch.Generator().manual_seed(seed)
    geo = torch.cat(
        [_random_strokes(torch.rand(2, generator=g) * torch.tensor([W, H]), 1, 0.5, min(H, W) / 8, (1.0, 1.0), g)
         for _ in range(n)]
    )  # fmt: skip
    geo[:, 0:6:2] = geo[:, 0:6:2].clamp(0, W)
    geo[:, 1:6:2] = geo[:, 1:6:2].clamp(0, H)
    ix = geo[:, 0].long().clamp(0, W - 1)
    iy = geo[:, 1].long().clamp(0, H - 1)
    s = min(H, W)
    local = geo / torch.tensor([W, H, W, H, W, H, s, s, 1.0, 1.0])
    init = torch.cat([local, target[:, iy, ix].T.cpu()], 1)[None].to(target.device)  # (1, n, 13)
    hp, wp = -(-H // 8) * 8, -(-W // 8) * 8
    batch = Batch(
        owned=torch.tensor([[0, 0, W, H]]),
        origin=torch.zeros(1, 2, dtype=torch.int64),
        region=torch.tensor([[0.0, 0.0, float(W), float(H)]]),
        crop=(hp, wp),
        radius=(0.5, min(H, W) / 4),
        patch_side=float(min(H, W)),
    )
    # the crop is the block-padded picture: rescale the picture-normalised strokes to it
    init[..., 0:6:2] *= W / wp
    init[..., 1:6:2] *= H / hp
    init[..., 6:8] *= min(H, W) / min(hp, wp)
    params = StrokeParams(batch, get_brush(brush), torch.ones(1, n, dtype=torch.bool), target.device)
    background = target.mean((1, 2))
    canvas = F.pad(background[:, None, None].expand(C, H, W), (0, wp - W, 0, hp - H))[None]
    goal = F.pad(target, (0, wp - W, 0, hp - H))[None]
    valid = F.pad(torch.ones(1, 1, H, W, device=target.device), (0, wp - W, 0, hp - H))
    theta = optimise_strokes(
        params, params.theta(init), canvas, goal, valid, iters=max_iters, lr=lr, sharpness=sharpness,
        backend=backend, deadline=time.perf_counter() + seconds,
    )  # fmt: skip
    with torch.no_grad():
        strokes = crop_to_global(params.strokes(theta), batch.origin, (hp, wp), H, W)[0]
        from paintrnn.tiles import render_tiled

        picture = torch.from_numpy(render_tiled(strokes.cpu(), H, W, background.cpu())).permute(2, 0, 1)
    return strokes.cpu(), picture
