"""Differentiable stroke renderer: quadratic Bézier strokes composited onto batched canvases.

A stroke is a quadratic Bézier curve ``B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2`` with a radius and an
opacity at each end, interpolated linearly in ``t``, and a colour with ``C`` channels (1 = grey, 3 = RGB).
Strokes are composited in order with alpha, ``canvas = canvas * (1 - alpha) + colour * alpha``.
No learned neural renderer: coverage is computed from the distance of each pixel centre to the curve.

## Parameter layout

One stroke is a vector of ``stroke_size(C) = 10 + C`` numbers, normalised so that the same stroke list
re-renders at any resolution (``H x W``, not necessarily square):

| index | field | meaning | clamped to |
|---|---|---|---|
| 0, 1 | `x0`, `y0` | start point `P0`; `x` across the width, `y` down the height, fractions of the canvas | [0, 1] |
| 2, 3 | `x1`, `y1` | control point `P1` | [0, 1] |
| 4, 5 | `x2`, `y2` | end point `P2` | [0, 1] |
| 6, 7 | `r0`, `r2` | radius at the start / end, a fraction of the canvas's shorter side `min(H, W)` | [0, 0.5] |
| 8, 9 | `a0`, `a2` | opacity at the start / end | [0, 1] |
| 10.. | `c0`.. | colour, ``C`` values | [0, 1] |

Out-of-range values are clamped (with zero gradient outside the range); NaN or inf raise ``ValueError``
naming the field. The point ``(x, y)`` sits at pixel coordinates ``(x W, y H)``; pixel ``(i, j)`` has its
centre at ``(j + 0.5, i + 0.5)``.

## Coverage

For a pixel centre let ``d`` be its distance to the curve, ``t*`` the curve parameter of the closest point,
``r = r(t*)`` and ``a = a(t*)`` (in pixels). The stroke's cross-section through the pixel is ``[-r, r]``
and the pixel a box ``[d - 1/2, d + 1/2]``; their overlap is the coverage
``cov = clamp(r - d + 1/2, 0, 1) - clamp(1/2 - r - d, 0, 1)`` (a 1-px box-filter anti-aliasing that also
handles strokes thinner than a pixel), and ``alpha = a * cov``.

* ``mode="hard"`` uses that formula (what environments show).
* ``mode="soft"`` replaces each ``clamp(x + 1/2, 0, 1)`` by its smooth version
  ``(softplus(s (x + 1/2)) - softplus(s (x - 1/2))) / s`` (the box filter of a logistic edge), with
  ``s = sharpness`` per pixel. It is differentiable everywhere w.r.t. every parameter and tends to the
  hard mode as ``s -> inf``. Coverage below ``exp(-16)`` in the tails is dropped.

The distance search runs on the curve sampled into ``n`` chords (``n`` grows with the curvature in
pixels so that the chords stay within ``1/8`` px of the curve), then one Newton step on the exact curve
refines the closest point, so ``d`` is exact up to rounding except on the medial axis of a strongly bent
stroke (pixels nearly equidistant from two parts of it), where it is within the chord tolerance.

## Speed

Only 8x8-pixel blocks near each stroke are evaluated (a conservative distance test on block centres),
and the two inner kernels (chord search, coverage) can be fused by ``torch.compile``; ``backend="auto"``
compiles them only for large calls (the first compile takes seconds) and falls back to eager PyTorch if
compilation fails. See ``scripts/benchmark_render.py``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

STROKE_FIELDS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "x2", "y2", "r0", "r2", "a0", "a2")
"""Names of the first ten entries of a stroke; the colour values ``c0 .. c{C-1}`` follow them."""

_LIMITS = {0: (0.0, 1.0), 6: (0.0, 0.5), 8: (0.0, 1.0)}  # first index of a group -> clamp range
_BLOCK = 8  # side of the pixel blocks that are culled or evaluated together
_CHORD_TOL = 0.125  # max distance (px) between the chords and the curve
_MAX_CHORDS = 64
_TAIL = 16.0  # soft mode: coverage below exp(-_TAIL) is dropped
_AUTO_COMPILE_WORK = 1 << 23  # pixel x chord evaluations above which backend="auto" compiles
_CHUNK = 1 << 22  # eager: elements per chunk of the (pixels, chords) search


def stroke_size(channels: int) -> int:
    """Length of one stroke vector for a canvas with ``channels`` colour channels: ``10 + channels``."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return len(STROKE_FIELDS) + channels


def _field_name(index: int) -> str:
    return STROKE_FIELDS[index] if index < len(STROKE_FIELDS) else f"c{index - len(STROKE_FIELDS)}"


def _check_strokes(strokes: Tensor) -> Tensor:
    """Validate ``(B, K, 10 + C)`` strokes and return them clamped to the documented ranges."""
    if not isinstance(strokes, Tensor):
        raise ValueError(f"strokes must be a torch.Tensor, got {type(strokes).__name__}")
    if strokes.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"strokes must be float32 or float64, got dtype {strokes.dtype}")
    if strokes.ndim != 3 or strokes.shape[-1] < len(STROKE_FIELDS) + 1:
        raise ValueError(
            f"strokes must have shape (B, K, 10 + C) with layout ({', '.join(STROKE_FIELDS)}, c0..c{{C-1}}), "
            f"got shape {tuple(strokes.shape)}"
        )
    finite = torch.isfinite(strokes).flatten(0, 1).all(0)  # (10 + C,)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0])
        raise ValueError(f"strokes field {_field_name(bad)!r} (index {bad}) contains NaN or inf")
    lo = strokes.new_tensor([_LIMITS[max(k for k in _LIMITS if k <= i)][0] for i in range(strokes.shape[-1])])
    hi = strokes.new_tensor([_LIMITS[max(k for k in _LIMITS if k <= i)][1] for i in range(strokes.shape[-1])])
    return torch.minimum(torch.maximum(strokes, lo), hi)


def _bezier(p0: Tensor, p1: Tensor, p2: Tensor, t: Tensor) -> Tensor:
    s = 1 - t
    return s * s * p0 + 2 * s * t * p1 + t * t * p2


def _nearest_chord(px: Tensor, py: Tensor, vx: Tensor, vy: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distance and index of the nearest chord of a polyline, for each point.

    ``px, py``: ``(M, P)`` points; ``vx, vy``: ``(M, n + 1)`` polyline vertices. Returns ``(M, P)`` each.
    """
    ax, ay = vx[:, None, :-1], vy[:, None, :-1]  # (M, 1, n)
    dx, dy = vx[:, None, 1:] - ax, vy[:, None, 1:] - ay
    inv = 1.0 / (dx * dx + dy * dy).clamp_min(1e-12)
    wx, wy = px[..., None] - ax, py[..., None] - ay  # (M, P, n)
    u = ((wx * dx + wy * dy) * inv).clamp(0.0, 1.0)
    ex, ey = wx - u * dx, wy - u * dy
    d2, j = (ex * ex + ey * ey).min(-1)
    return d2, j


def _soft_step(x: Tensor, s: float) -> Tensor:
    """``(softplus(s (x + 1/2)) - softplus(s (x - 1/2))) / s`` computed without cancellation."""
    a = x.abs()
    g = (F.softplus(s * (0.5 - a)) - F.softplus(-s * (a + 0.5))) / s  # value at -|x|
    return torch.where(x > 0, 1 - g, g)


def _alpha(px: Tensor, py: Tensor, j: Tensor, prm: Tensor, n: int, soft: bool, sharpness: float) -> Tensor:
    """Alpha of each pixel given its nearest chord ``j``. ``px, py, j``: ``(M, P)``; ``prm``: ``(M, 10)`` in px."""
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = (p[:, None] for p in prm.unbind(-1))  # (M, 1) each
    ta = j / n  # chord j runs from B(ta) to B(ta + 1/n)
    ax, ay = _bezier(x0, x1, x2, ta), _bezier(y0, y1, y2, ta)
    dx, dy = _bezier(x0, x1, x2, ta + 1.0 / n) - ax, _bezier(y0, y1, y2, ta + 1.0 / n) - ay
    u = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy).clamp_min(1e-12)
    t0 = ta + u.clamp(0.0, 1.0) / n
    # One Newton step on g(t) = (B(t) - p) . B'(t) = 0, kept only where it brings the curve point closer.
    cx, cy = _bezier(x0, x1, x2, t0) - px, _bezier(y0, y1, y2, t0) - py
    vx, vy = 2 * ((1 - t0) * (x1 - x0) + t0 * (x2 - x1)), 2 * ((1 - t0) * (y1 - y0) + t0 * (y2 - y1))
    h = vx * vx + vy * vy + 2 * (cx * (x0 - 2 * x1 + x2) + cy * (y0 - 2 * y1 + y2))
    t1 = (t0 - (cx * vx + cy * vy) / h.clamp_min(1e-9)).clamp(0.0, 1.0)
    ex, ey = _bezier(x0, x1, x2, t1) - px, _bezier(y0, y1, y2, t1) - py
    d0, d1 = cx * cx + cy * cy, ex * ex + ey * ey
    better = (d1 < d0) & (h > 1e-9)
    t = torch.where(better, t1, t0)
    d = torch.sqrt(torch.where(better, d1, d0) + 1e-12)
    r, a = r0 + (r2 - r0) * t, a0 + (a2 - a0) * t
    if soft:
        return a * (_soft_step(r - d, sharpness) - _soft_step(-r - d, sharpness))
    return a * ((r - d + 0.5).clamp(0.0, 1.0) - (0.5 - r - d).clamp(0.0, 1.0))


class _Kernels:
    """The two inner kernels, eager or ``torch.compile``-d (compiled lazily, eager fallback on failure)."""

    def __init__(self, compiled: bool) -> None:
        self.search: Callable[..., tuple[Tensor, Tensor]] = _nearest_chord
        self.alpha: Callable[..., Tensor] = _alpha
        self.compiled = compiled
        if compiled:
            self.search = torch.compile(_nearest_chord, dynamic=True)
            self.alpha = torch.compile(_alpha, dynamic=True)

    def run(self, name: str, *args: object) -> object:
        try:
            return getattr(self, name)(*args)
        except Exception as err:  # a missing/broken compiler: fall back to eager for good
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager PyTorch", stacklevel=3)
            self.compiled, self.search, self.alpha = False, _nearest_chord, _alpha
            return getattr(self, name)(*args)


@functools.cache
def _kernels(compiled: bool) -> _Kernels:
    return _Kernels(compiled)


def _search(kern: _Kernels, px: Tensor, py: Tensor, vx: Tensor, vy: Tensor) -> tuple[Tensor, Tensor]:
    if kern.compiled:
        return kern.run("search", px, py, vx, vy)
    rows = max(1, _CHUNK // max(1, px.shape[1] * (vx.shape[1] - 1)))  # bound the (M, P, n) intermediates
    parts = [
        _nearest_chord(px[i : i + rows], py[i : i + rows], vx[i : i + rows], vy[i : i + rows])
        for i in range(0, px.shape[0], rows)
    ]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _check_options(mode: str, sharpness: float, backend: str) -> None:
    if mode not in ("hard", "soft"):
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
    if not (isinstance(sharpness, int | float) and math.isfinite(sharpness) and sharpness > 0):
        raise ValueError(f"sharpness must be a finite number > 0, got {sharpness!r}")
    if backend not in ("auto", "eager", "compiled"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'compiled', got {backend!r}")


def _block_alpha(
    strokes: Tensor, height: int, width: int, mode: str, sharpness: float, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha on the 8x8 blocks near each stroke of clamped ``(N, 10 + C)`` strokes.

    Returns ``si`` (M,) stroke index, ``bi`` (M,) block index (row-major over the ``ceil(H/8) x ceil(W/8)``
    block grid) and ``alpha`` (M, 64) over the block's pixels (row-major); every other pixel has alpha 0.
    """
    N, H, W, S = strokes.shape[0], height, width, min(height, width)
    prm = strokes[:, :10] * strokes.new_tensor([W, H, W, H, W, H, S, S, 1.0, 1.0])  # (N, 10) in pixels
    nb_x = -(-W // _BLOCK)
    nb = -(-H // _BLOCK) * nb_x
    with torch.no_grad():
        p = prm.detach()
        bend = torch.hypot(p[:, 0] - 2 * p[:, 2] + p[:, 4], p[:, 1] - 2 * p[:, 3] + p[:, 5])  # |B''| / 2
        n = int(min(_MAX_CHORDS, max(1, math.ceil(math.sqrt(float(bend.max()) / (4 * _CHORD_TOL))))))
        tv = torch.linspace(0, 1, n + 1, dtype=p.dtype, device=p.device)
        vx, vy = _bezier(p[:, 0:1], p[:, 2:3], p[:, 4:5], tv), _bezier(p[:, 1:2], p[:, 3:4], p[:, 5:6], tv)
        # Conservative cull of 8x8 blocks: nothing within reach of the curve (radius + filter + tails).
        reach = p[:, 6:8].amax(1) + 0.5 + (_TAIL / sharpness if mode == "soft" else 0.0)
        reach = reach + _CHORD_TOL + _BLOCK / math.sqrt(2) + 1e-3
        blocks = torch.arange(nb, device=p.device)
        cx = ((blocks % nb_x + 0.5) * _BLOCK).to(p.dtype).expand(N, nb).contiguous()  # (N, nb) block centres
        cy = ((blocks // nb_x + 0.5) * _BLOCK).to(p.dtype).expand(N, nb).contiguous()
        work = N * nb * _BLOCK * _BLOCK * n
        kern = _kernels(backend == "compiled" or (backend == "auto" and work > _AUTO_COMPILE_WORK))
        d2, _ = _search(kern, cx, cy, vx, vy)
        si, bi = (d2 <= reach[:, None] ** 2).nonzero(as_tuple=True)  # (M,) active (stroke, block) pairs
        off = torch.arange(_BLOCK * _BLOCK, device=p.device)
        px = ((bi % nb_x)[:, None] * _BLOCK + off % _BLOCK + 0.5).to(p.dtype)  # (M, 64) pixel centres
        py = ((bi // nb_x)[:, None] * _BLOCK + off // _BLOCK + 0.5).to(p.dtype)
        _, j = _search(kern, px, py, vx[si], vy[si])
    if si.numel() == 0:
        return si, bi, prm.new_zeros(0, _BLOCK * _BLOCK)
    alpha = kern.run("alpha", px, py, j.to(p.dtype), prm[si], n, mode == "soft", float(sharpness))  # (M, 64)
    return si, bi, alpha


def stroke_coverage(
    strokes: Tensor,
    height: int,
    width: int,
    *,
    mode: str = "hard",
    sharpness: float = 4.0,
    backend: str = "auto",
) -> Tensor:
    """Alpha map of every stroke on its own: ``(B, K, 10 + C)`` strokes -> ``(B, K, height, width)``.

    ``alpha = opacity x coverage`` in [0, 1]; see the module docstring for modes and ``backend``.
    """
    strokes = _check_strokes(strokes)
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_options(mode, sharpness, backend)
    B, K = strokes.shape[:2]
    nb_y, nb_x = -(-height // _BLOCK), -(-width // _BLOCK)
    si, bi, alpha = _block_alpha(strokes.reshape(B * K, -1), height, width, mode, sharpness, backend)
    out = alpha.new_zeros(B * K, nb_y * nb_x, _BLOCK * _BLOCK).index_put((si, bi), alpha)
    out = out.view(B * K, nb_y, nb_x, _BLOCK, _BLOCK).transpose(2, 3).reshape(B * K, nb_y * _BLOCK, -1)
    return out[:, :height, :width].reshape(B, K, height, width)


def render_strokes(
    strokes: Tensor,
    canvas: Tensor | None = None,
    *,
    height: int | None = None,
    width: int | None = None,
    mode: str = "hard",
    sharpness: float = 4.0,
    backend: str = "auto",
) -> Tensor:
    """Composite ``K`` strokes, in order, onto each of ``B`` canvases.

    ``strokes``: ``(B, K, 10 + C)`` normalised parameters (layout in the module docstring), float32 or
    float64, on any device. ``canvas``: ``(B, C, H, W)`` in [0, 1], or ``None`` for black canvases of
    ``height x width``. ``mode``: ``"hard"`` (exact box-filter anti-aliasing) or ``"soft"`` (smooth,
    differentiable everywhere; ``sharpness`` per pixel, -> hard as it grows). ``backend``: ``"eager"``,
    ``"compiled"`` (``torch.compile``) or ``"auto"`` (compile only large calls). Returns ``(B, C, H, W)``
    with the dtype and device of ``strokes``; the input canvas is not modified.
    """
    strokes = _check_strokes(strokes)
    _check_options(mode, sharpness, backend)
    B, K, C = strokes.shape[0], strokes.shape[1], strokes.shape[2] - len(STROKE_FIELDS)
    if canvas is None:
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int when no canvas is given, got {value!r}")
        canvas = strokes.new_zeros(B, C, height, width)
    else:
        if not isinstance(canvas, Tensor) or canvas.ndim != 4:
            raise ValueError(f"canvas must be a (B, C, H, W) tensor, got {getattr(canvas, 'shape', canvas)!r}")
        if canvas.dtype != strokes.dtype or canvas.device != strokes.device:
            raise ValueError(
                f"canvas must match strokes' dtype/device ({strokes.dtype}, {strokes.device}), "
                f"got ({canvas.dtype}, {canvas.device})"
            )
        if tuple(canvas.shape[:2]) != (B, C):
            raise ValueError(
                f"canvas shape {tuple(canvas.shape)} does not match strokes: expected batch {B} "
                f"and {C} channels (strokes' last dim 10 + C = {strokes.shape[2]})"
            )
        if (height is not None and height != canvas.shape[2]) or (width is not None and width != canvas.shape[3]):
            raise ValueError(f"height/width {height}x{width} disagree with canvas shape {tuple(canvas.shape)}")
        if not bool(torch.isfinite(canvas).all()):
            raise ValueError("canvas contains NaN or inf")
        height, width = canvas.shape[2], canvas.shape[3]
    H, W = height, width
    nb_y, nb_x = -(-H // _BLOCK), -(-W // _BLOCK)
    Hp, Wp = nb_y * _BLOCK, nb_x * _BLOCK
    out = F.pad(canvas, (0, Wp - W, 0, Hp - H)) if (Hp, Wp) != (H, W) else canvas.clone()
    blocks = out.view(B, C, nb_y, _BLOCK, nb_x, _BLOCK)  # a view: writes below land in `out`
    colour = strokes[..., len(STROKE_FIELDS) :]  # (B, K, C)
    per_chunk = max(1, (1 << 20) // max(1, B * nb_y * nb_x))  # bound the number of (stroke, block) pairs
    for k0 in range(0, K, per_chunk):
        chunk = strokes[:, k0 : k0 + per_chunk]  # (B, k, 10 + C)
        k = chunk.shape[1]
        si, bi, alpha = _block_alpha(chunk.reshape(B * k, -1), H, W, mode, sharpness, backend)
        for kk in range(k):  # in order: the pairs of one stroke index touch distinct blocks
            sel = (si % k == kk).nonzero().squeeze(1)
            b, blk = si[sel] // k, bi[sel]
            by, bx = blk // nb_x, blk % nb_x
            old = blocks[b, :, by, :, bx, :]  # (m, C, 8, 8)
            a = alpha[sel].view(-1, 1, _BLOCK, _BLOCK)
            blocks[b, :, by, :, bx, :] = old + a * (colour[b, k0 + kk, :, None, None] - old)
    return out[:, :, :H, :W]


def demo_gif(path: str, n_strokes: int = 40, size: int = 128, seed: int = 0) -> Tensor:
    """Write a GIF of ``n_strokes`` random strokes painted one by one, coarse to fine; returns the strokes.

    The same strokes are also written as an SVG next to the GIF (``.svg``), to show the resolution-free export.
    """
    from pathlib import Path

    from paintrnn.media import write_gif
    from paintrnn.svg import strokes_to_svg

    g = torch.Generator().manual_seed(seed)
    s = torch.rand(1, n_strokes, stroke_size(3), generator=g)  # (1, K, 13)
    fine = torch.linspace(0, 1, n_strokes)[None, :, None]  # later strokes are thinner
    s[..., 6:8] = 0.015 + (0.12 - 0.1 * fine) * s[..., 6:8]
    s[..., 8:10] = 0.5 + 0.5 * s[..., 8:10]
    s[..., 10:] = 0.15 + 0.85 * s[..., 10:]
    canvas = torch.full((1, 3, size, size), 0.95)
    frames = [canvas]
    for k in range(n_strokes):
        canvas = render_strokes(s[:, k : k + 1], canvas)
        frames.append(canvas)
    video = torch.cat(frames).permute(0, 2, 3, 1).numpy()  # (K + 1, H, W, 3)
    write_gif(path, video, duration_ms=80, hold_last_ms=1500, scale=2)
    Path(path).with_suffix(".svg").write_text(strokes_to_svg(s[0], size, size, background=(0.95, 0.95, 0.95)))
    return s


def demo_main(argv: list[str] | None = None) -> None:
    """``python scripts/render_demo.py [--out docs/render_demo.gif]``: paint random strokes into a GIF."""
    import argparse

    parser = argparse.ArgumentParser(description=demo_main.__doc__)
    parser.add_argument("--out", default="docs/render_demo.gif", help="GIF path (an SVG is written beside it)")
    parser.add_argument("--strokes", type=int, default=40, help="number of strokes")
    parser.add_argument("--size", type=int, default=128, help="canvas side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    demo_gif(args.out, args.strokes, args.size, args.seed)
    print(f"wrote {args.out}")
