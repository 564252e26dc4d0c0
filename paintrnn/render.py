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

The closest point is found in closed form: with ``m = P0 - p``, ``b = P1 - P0`` and ``a = P0 - 2 P1 + P2``,
``d/dt |B(t) - p|^2 = 0`` is the cubic ``(a.a) t^3 + 3 (a.b) t^2 + (2 b.b + m.a) t + m.b = 0``, solved by
Cardano (one real root) or the trigonometric form (three; only the outer two can be minima), or as a
straight segment when ``a.a <= 1e-6 b.b``. The roots clamped to [0, 1] and both ends are compared, and one
guarded Newton step polishes the winner, so ``d`` is exact up to rounding (float32: within ~3e-5 px of
float64 on random, nearly straight, folded and degenerate curves). Gradients do not differentiate the solve:
they are the implicit-function gradients at ``t*`` (what one Newton step from a converged ``t*`` gives),
``dt*/dθ = -(∂g/∂θ) / g'`` for ``g(t) = (B(t) - p) . B'(t)``, zero where ``t*`` sits at an end.

## Speed

Only 8x8-pixel blocks near each stroke are evaluated (a conservative test on the block centres' closed-form
distance: half-diagonal + radius + 1/2 + soft tails). Per call, a handful of kernels run: the cull, one fused
per-pixel kernel (solve + coverage), one compositing pass per stroke index, and in the backward pass one
fused reduction per kernel (hand-written backward, no per-pixel temporaries). ``backend="auto"`` compiles
them with ``torch.compile`` for calls of at least ``2^18`` stroke x canvas pixels (the first compile takes
seconds), falls back to eager PyTorch if compilation fails, and stays eager for small calls. Gradients are
first-order only (no double backward). See ``scripts/benchmark_render.py`` and ``docs/sections/render.md``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

STROKE_FIELDS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "x2", "y2", "r0", "r2", "a0", "a2")
"""Names of the first ten entries of a stroke; the colour values ``c0 .. c{C-1}`` follow them."""

_LIMITS = {0: (0.0, 1.0), 6: (0.0, 0.5), 8: (0.0, 1.0)}  # first index of a group -> clamp range
_BLOCK = 8  # side of the pixel blocks that are culled or evaluated together
_STRAIGHT = 1e-6  # |a|^2 <= _STRAIGHT |b|^2 (a = P0 - 2 P1 + P2, b = P1 - P0): solved as a straight segment
_CULL_TOL = 0.05  # px added to the cull radius, far above the rounding error of a block centre's distance
_TAIL = 16.0  # soft mode: coverage below exp(-_TAIL) is dropped
_AUTO_COMPILE_PIXELS = 1 << 18  # strokes x canvas pixels from which backend="auto" compiles
_CHUNK_PAIRS = 1 << 16  # render_strokes: at most this many (stroke, block) pairs per chunk of stroke indices


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


def _closest(px: Tensor, py: Tensor, x0: Tensor, y0: Tensor, x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor):
    """Closest point of each quadratic Bézier to each point, in closed form: ``(t*, |B(t*) - p|^2)``.

    All arguments broadcast (points ``(M, P)``, curves ``(M, 1)``). With ``m = P0 - p``, ``b = P1 - P0``,
    ``a = P0 - 2 P1 + P2`` the curve is ``B(t) - p = m + 2 b t + a t^2`` and ``d/dt |B(t) - p|^2 = 0`` is the
    cubic ``(a.a) t^3 + 3 (a.b) t^2 + (2 b.b + m.a) t + m.b = 0``, solved by Cardano (one real root) or the
    trigonometric form (three; the middle one is a maximum), or as a straight segment when ``a.a`` is
    negligible. The candidates, clamped to [0, 1], and both ends are compared; one guarded Newton step
    polishes the winner. Not differentiated (callers detach the inputs).
    """
    bx, by = x1 - x0, y1 - y0
    ax, ay = x0 - 2 * x1 + x2, y0 - 2 * y1 + y2
    mx, my = x0 - px, y0 - py
    aa, ab, bb = ax * ax + ay * ay, ax * bx + ay * by, bx * bx + by * by
    ma, mb = mx * ax + my * ay, mx * bx + my * by
    straight = aa <= _STRAIGHT * bb + 1e-30
    kk = 1.0 / torch.where(straight, 1.0, aa)
    kx, ky, kz = ab * kk, (2 * bb + ma) * kk / 3, mb * kk  # t^3 + 3 kx t^2 + 3 ky t + kz = 0
    p, q = ky - kx * kx, kx * (2 * kx * kx - 3 * ky) + kz  # t = u - kx: u^3 + 3 p u + q = 0
    h = q * q + 4 * p * p * p
    one = h >= 0  # one real root: Cardano, with the cube root of the larger-magnitude term (no cancellation)
    w = -0.5 * (q + torch.copysign(torch.sqrt(h.clamp_min(0.0)), q))
    c = torch.copysign(w.abs().pow(1.0 / 3.0), w)
    u1 = c - p / torch.where(c == 0, 1.0, c)
    z = torch.sqrt((-p).clamp_min(0.0))  # three real roots: 2 z cos(v - 2 pi k / 3)
    v = torch.acos((q / torch.where(one, -1.0, 2 * p * z)).clamp(-1.0, 1.0)) / 3
    cv, sv = torch.cos(v), torch.sin(v) * math.sqrt(3.0)
    line = -mb / (2 * bb).clamp_min(1e-30)  # straight segment: closest point of P0 + 2 b t
    ta = torch.where(straight, line, torch.where(one, u1, 2 * cv * z) - kx).clamp(0.0, 1.0)
    tb = torch.where(straight, line, torch.where(one, u1, -(cv + sv) * z) - kx).clamp(0.0, 1.0)

    def dist2(t: Tensor) -> Tensor:
        ex, ey = mx + (2 * bx + ax * t) * t, my + (2 * by + ay * t) * t
        return ex * ex + ey * ey

    best_t, best = ta, dist2(ta)
    for t in (tb, torch.zeros_like(ta), torch.ones_like(ta)):
        d2 = dist2(t)
        best_t, best = torch.where(d2 < best, t, best_t), torch.minimum(d2, best)
    for _ in range(1):  # a guarded Newton step on g(t) = (B(t) - p) . B'(t) / 2: kept where it gets closer
        vx, vy = bx + ax * best_t, by + ay * best_t  # B'(t) / 2
        ex, ey = mx + (2 * bx + ax * best_t) * best_t, my + (2 * by + ay * best_t) * best_t
        g1 = 2 * (vx * vx + vy * vy) + ex * ax + ey * ay
        t1 = (best_t - (ex * vx + ey * vy) / torch.where(g1 > 0, g1, 1.0)).clamp(0.0, 1.0)
        d2 = dist2(t1)
        # (scaled by the per-curve a.a + b.b, which also keeps torch.compile's loops fused)
        keep = (d2 < best) & (g1 > 1e-12 * (aa + bb))
        best_t, best = torch.where(keep, t1, best_t), torch.where(keep, d2, best)
    return best_t, best


def _cull(prm: Tensor, nb_y: int, nb_x: int, reach: Tensor) -> Tensor:
    """``(N, nb_y nb_x)`` mask of the 8x8 blocks whose centre is within ``reach`` (N,) px of each curve."""
    blocks = torch.arange(nb_y * nb_x, device=prm.device)
    cx = ((blocks % nb_x) * _BLOCK + _BLOCK / 2).to(prm.dtype)  # (nb,) block centres
    cy = ((blocks // nb_x) * _BLOCK + _BLOCK / 2).to(prm.dtype)
    _, d2 = _closest(cx, cy, *(prm[:, i, None] for i in range(6)))  # (N, nb)
    return d2 <= (reach * reach)[:, None]


def _pixels(bi: Tensor, nb_x: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Pixel centres ``(M, 64)`` of the 8x8 blocks ``bi`` (M,) (row-major over a grid ``nb_x`` blocks wide)."""
    off = torch.arange(_BLOCK * _BLOCK, device=bi.device)
    px = ((bi % nb_x)[:, None] * _BLOCK + off % _BLOCK).to(dtype) + 0.5
    py = ((bi // nb_x)[:, None] * _BLOCK + off // _BLOCK).to(dtype) + 0.5
    return px, py


def _coverage(r: Tensor, d: Tensor, soft: bool, s: float) -> tuple[Tensor, Tensor, Tensor]:
    """Coverage of a pixel at distance ``d`` from a stroke of radius ``r``, and its derivatives ``d/dr, d/dd``.

    Hard: ``clamp(r - d + 1/2, 0, 1) - clamp(1/2 - r - d, 0, 1)``. Soft: each ``clamp(x + 1/2, 0, 1)`` becomes
    ``S(x) = (softplus(s (x + 1/2)) - softplus(s (x - 1/2))) / s``, computed without cancellation as
    ``clamp(x + 1/2, 0, 1) + (L(x + 1/2) - L(x - 1/2)) / s`` with ``L(u) = log(1 + exp(-s |u|))`` (the four
    ``L`` terms of the two edges summed inside one ``log1p``); its derivative is
    ``sigmoid(s (x + 1/2)) - sigmoid(s (x - 1/2))``.
    """
    us = (r - d + 0.5, r - d - 0.5, 0.5 - r - d, -0.5 - r - d)  # S(r - d) uses the first two, S(-r - d) the rest
    hard = us[0].clamp(0.0, 1.0) - us[2].clamp(0.0, 1.0)
    if not soft:
        du, dw = ((us[0] >= 0) & (us[0] <= 1)).to(r.dtype), ((us[2] >= 0) & (us[2] <= 1)).to(r.dtype)
        return hard, du + dw, dw - du
    e = [torch.exp(-s * u.abs()) for u in us]
    sig = [torch.where(u >= 0, 1.0, ei) / (1 + ei) for u, ei in zip(us, e)]  # sigmoid(s u)
    # L0 - L1 - L2 + L3 = log1p(x) with x = (1 + e0)(1 + e3) / ((1 + e1)(1 + e2)) - 1: one log, not four
    x = (e[0] - e[1] + e[3] - e[2] + e[0] * e[3] - e[1] * e[2]) / ((1 + e[1]) * (1 + e[2]))
    cov = hard + torch.log1p(x) / s
    d_pos, d_neg = sig[0] - sig[1], sig[2] - sig[3]  # S'(r - d), S'(-r - d)
    return cov, d_pos + d_neg, d_neg - d_pos


def _alpha(q: Tensor, bi: Tensor, nb_x: int, soft: bool, sharpness: float) -> tuple[Tensor, Tensor]:
    """Alpha and closest-point parameter ``t*``, each ``(M, 64)``, of stroke ``q`` (M, 10) (in px) on the pixels
    of block ``bi`` (M,)."""
    px, py = _pixels(bi, nb_x, q.dtype)
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = (v[:, None] for v in q.unbind(-1))  # (M, 1) each
    t, d2 = _closest(px, py, x0, y0, x1, y1, x2, y2)
    cov = _coverage(r0 + (r2 - r0) * t, torch.sqrt(d2 + 1e-12), soft, sharpness)[0]
    return (a0 + (a2 - a0) * t) * cov, t


def _alpha_only(q: Tensor, bi: Tensor, nb_x: int, soft: bool, sharpness: float) -> Tensor:
    return _alpha(q, bi, nb_x, soft, sharpness)[0]


def _alpha_grad(q: Tensor, bi: Tensor, nb_x: int, t: Tensor, grad: Tensor, soft: bool, sharpness: float) -> Tensor:
    """Gradient ``(M, 10)`` of ``(grad * alpha).sum()`` w.r.t. ``q``, given the closest points ``t`` of :func:`_alpha`.

    ``alpha = a(t*) cov(r(t*), d)``. Moving the curve moves ``d`` directly (``d d / d P_k = w_k(t) e / d``
    with ``e = B(t*) - p`` and the Bézier weights ``w_k``; the shift of ``t*`` along the curve does not
    change ``d`` to first order) and moves ``t*``, by the implicit-function theorem on
    ``g(t) = e . B'(t) / 2 = 0``: ``dt*/dP_k = -(w_k B'/2 + c_k e) / g'(t*)`` with ``c_k = d(B'/2)/dP_k``,
    which is the gradient of one Newton step from a converged ``t*``. At an end of the curve (an active
    constraint) or where ``g'`` is tiny (the medial axis of a bent stroke) ``t*`` is held fixed.
    """
    px, py = _pixels(bi, nb_x, q.dtype)
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = (v[:, None] for v in q.unbind(-1))  # (M, 1) each
    s = 1 - t
    w, c = (s * s, 2 * s * t, t * t), (-s, 1 - 2 * t, t)  # dB/dP_k and d(B'/2)/dP_k
    ex, ey = w[0] * x0 + w[1] * x1 + w[2] * x2 - px, w[0] * y0 + w[1] * y1 + w[2] * y2 - py  # B(t) - p
    vx, vy = x1 - x0 + (x0 - 2 * x1 + x2) * t, y1 - y0 + (y0 - 2 * y1 + y2) * t  # B'(t) / 2
    v2 = vx * vx + vy * vy
    g1 = 2 * v2 + ex * (x0 - 2 * x1 + x2) + ey * (y0 - 2 * y1 + y2)  # g'(t)
    d = torch.sqrt(ex * ex + ey * ey + 1e-12)
    op = a0 + (a2 - a0) * t
    cov, cov_r, cov_d = _coverage(r0 + (r2 - r0) * t, d, soft, sharpness)
    ga, gr, gd = grad * cov, grad * op * cov_r, grad * op * cov_d / d  # d/d opacity, radius, distance
    free = (t > 0) & (t < 1) & (g1 > 1e-4 * v2)
    gt = torch.where(free, (ga * (a2 - a0) + gr * (r2 - r0)) / torch.where(free, g1, 1.0), 0.0)  # d/dt / g'
    out = []
    for wk, ck in zip(w, c):
        out += [(gd * wk * ex - gt * (wk * vx + ck * ex)).sum(1), (gd * wk * ey - gt * (wk * vy + ck * ey)).sum(1)]
    out += [(gr * s).sum(1), (gr * t).sum(1), (ga * s).sum(1), (ga * t).sum(1)]
    return torch.stack(out, 1)


class _Alpha(torch.autograd.Function):
    """:func:`_alpha` with the implicit-function backward of :func:`_alpha_grad` (the solve is not differentiated)."""

    @staticmethod
    def forward(ctx, q, bi, nb_x, soft, sharpness, kern):  # noqa: ANN001, ANN205
        alpha, t = kern.run("alpha", q, bi, nb_x, soft, sharpness)
        ctx.save_for_backward(q, bi, t)
        ctx.args = (nb_x, soft, sharpness, kern)
        return alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        q, bi, t = ctx.saved_tensors
        nb_x, soft, sharpness, kern = ctx.args
        return kern.run("alpha_grad", q, bi, nb_x, t, grad, soft, sharpness), None, None, None, None, None


def _dense_blocks(alpha: Tensor, b: Tensor, bi: Tensor, n: int, nb_y: int, nb_x: int) -> Tensor:
    """Block alpha ``(m, 64)`` of blocks ``bi`` of canvases ``b`` as a ``(n, 1, nb_y, 8, nb_x, 8)`` view of
    dense ``(n, 1, 8 nb_y, 8 nb_x)`` maps (zero elsewhere), stored block by block (rows of 64 contiguous)."""
    dense = alpha.new_zeros(n, nb_y * nb_x, _BLOCK * _BLOCK).index_put((b, bi), alpha)
    return dense.view(n, 1, nb_y, nb_x, _BLOCK, _BLOCK).transpose(3, 4)


def _blocks(x: Tensor) -> Tensor:
    """``(B, C, 8 nb_y, 8 nb_x)`` -> the ``(B, C, nb_y, 8, nb_x, 8)`` view matching :func:`_dense_blocks`."""
    return x.view(x.shape[0], x.shape[1], x.shape[2] // _BLOCK, _BLOCK, x.shape[3] // _BLOCK, _BLOCK)


def _composite(canvas: Tensor | None, colour: Tensor, alpha: Tensor, b: Tensor, bi: Tensor, nb_y: int, nb_x: int):
    """``canvas + a (colour - canvas)`` on block-padded ``(B, C, 8 nb_y, 8 nb_x)`` canvases (``None``: black),
    with ``a`` the block alpha ``(m, 64)`` of blocks ``bi`` (m,) of canvases ``b`` (m,); ``colour``: (B, C)."""
    B, C = colour.shape
    a = _dense_blocks(alpha, b, bi, B, nb_y, nb_x)  # (B, 1, nb_y, 8, nb_x, 8)
    c = colour[:, :, None, None, None, None]
    out = c * a if canvas is None else _blocks(canvas) + a * (c - _blocks(canvas))
    return out.reshape(B, C, nb_y * _BLOCK, nb_x * _BLOCK)


def _composite_grad(
    grad: Tensor, canvas: Tensor | None, colour: Tensor, alpha: Tensor, b: Tensor, bi: Tensor, full: bool
) -> tuple[Tensor | None, Tensor, Tensor]:
    """Gradients of :func:`_composite` w.r.t. canvas (if ``full``), colour and alpha, given ``grad`` (B, C, H, W).

    The colour and alpha gradients only gather ``grad`` on the blocks ``bi`` of canvases ``b``; only the
    canvas gradient is dense.
    """
    B, C, H, W = grad.shape
    nb_y, nb_x = H // _BLOCK, W // _BLOCK
    ar = torch.arange(_BLOCK, device=grad.device)
    at = (b[:, None, None, None], torch.arange(C, device=grad.device)[:, None, None])  # (m, C, 8, 8) below
    at = at + ((bi // nb_x)[:, None, None, None], ar[:, None], (bi % nb_x)[:, None, None, None], ar)
    g = _blocks(grad)[at].flatten(2)  # (m, C, 64)
    base = colour[b][:, :, None] if canvas is None else colour[b][:, :, None] - _blocks(canvas)[at].flatten(2)
    grad_colour = colour.new_zeros(B, C).index_add(0, b, (g * alpha[:, None]).sum(2))
    grad_canvas = None
    if full:
        grad_canvas = (_blocks(grad) * (1 - _dense_blocks(alpha, b, bi, B, nb_y, nb_x))).reshape(B, C, H, W)
    return grad_canvas, grad_colour, (g * base).sum(1)


class _Composite(torch.autograd.Function):
    """:func:`_composite` with the gather-only backward of :func:`_composite_grad` (no dense temporaries)."""

    @staticmethod
    def forward(ctx, canvas, colour, alpha, b, bi, nb_y, nb_x, kern):  # noqa: ANN001, ANN205
        ctx.save_for_backward(canvas, colour, alpha, b, bi)
        ctx.kern = kern
        return kern.run("composite", canvas, colour, alpha, b, bi, nb_y, nb_x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        canvas, colour, alpha, b, bi = ctx.saved_tensors
        full = canvas is not None and ctx.needs_input_grad[0]
        g_canvas, g_colour, g_alpha = ctx.kern.run("composite_grad", grad, canvas, colour, alpha, b, bi, full)
        return g_canvas, g_colour, g_alpha, None, None, None, None, None


_EAGER = {
    "cull": _cull,
    "alpha": _alpha,
    "alpha_only": _alpha_only,
    "alpha_grad": _alpha_grad,
    "composite": _composite,
    "composite_grad": _composite_grad,
}


class _Kernels:
    """The kernels of ``_EAGER``, eager or ``torch.compile``-d (compiled lazily, eager fallback on failure)."""

    def __init__(self, compiled: bool) -> None:
        self.compiled = compiled
        self.fns: dict[str, Callable[..., object]] = dict(_EAGER)
        if compiled:
            # The compositing kernels move rows of 8 pixels: 8-wide vectors beat AVX-512's 16 there.
            rows = {"cpp.simdlen": 256} if torch.backends.cpu.get_cpu_capability() == "AVX512" else {}
            self.fns = {
                name: torch.compile(fn, dynamic=True, options=rows if name.startswith("composite") else None)
                for name, fn in _EAGER.items()
            }

    def run(self, name: str, *args: object) -> object:
        try:
            return self.fns[name](*args)
        except Exception as err:  # a missing/broken compiler: fall back to eager for good
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager PyTorch", stacklevel=3)
            self.compiled, self.fns = False, dict(_EAGER)
            return self.fns[name](*args)


@functools.cache
def _kernels(compiled: bool) -> _Kernels:
    return _Kernels(compiled)


def _pick(backend: str, pixels: int) -> _Kernels:
    """The kernels for ``backend``; ``"auto"`` compiles calls of at least ``_AUTO_COMPILE_PIXELS`` stroke pixels."""
    return _kernels(backend == "compiled" or (backend == "auto" and pixels >= _AUTO_COMPILE_PIXELS))


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
    block grid), sorted by ``si``, and ``alpha`` (M, 64) over the block's pixels (row-major); every other
    pixel has alpha 0.
    """
    N, H, W, S = strokes.shape[0], height, width, min(height, width)
    prm = strokes[:, :10] * strokes.new_tensor([W, H, W, H, W, H, S, S, 1.0, 1.0])  # (N, 10) in pixels
    nb_y, nb_x = -(-H // _BLOCK), -(-W // _BLOCK)
    kern = _pick(backend, N * H * W)
    with torch.no_grad():
        p = prm.detach()
        # Conservative cull: a pixel centre is at most 3.5 sqrt(2) px from its block's centre, and it has
        # alpha > 0 only within radius + 1/2 (+ the soft tails) of the curve.
        reach = p[:, 6:8].amax(1) + 0.5 + (_TAIL / sharpness if mode == "soft" else 0.0)
        reach = reach + (_BLOCK - 1) / math.sqrt(2) + _CULL_TOL
        si, bi = kern.run("cull", p, nb_y, nb_x, reach).nonzero(as_tuple=True)  # (M,) active pairs
    if si.numel() == 0:
        return si, bi, prm.new_zeros(0, _BLOCK * _BLOCK)
    q = prm[si]  # (M, 10); gathered here so that the kernels' backward reduces over each block's pixels
    if torch.is_grad_enabled() and q.requires_grad:
        return si, bi, _Alpha.apply(q, bi, nb_x, mode == "soft", float(sharpness), kern)  # (M, 64)
    return si, bi, kern.run("alpha_only", q, bi, nb_x, mode == "soft", float(sharpness))


def _dense(si: Tensor, bi: Tensor, alpha: Tensor, n: int, height: int, width: int) -> Tensor:
    """Scatter the block alpha of :func:`_block_alpha` into ``(n, height, width)`` maps (zero elsewhere)."""
    nb_y, nb_x = -(-height // _BLOCK), -(-width // _BLOCK)
    out = alpha.new_zeros(n, nb_y, _BLOCK, nb_x, _BLOCK)
    out[si, bi // nb_x, :, bi % nb_x, :] = alpha.view(-1, _BLOCK, _BLOCK)
    return out.view(n, nb_y * _BLOCK, nb_x * _BLOCK)[:, :height, :width]


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
    si, bi, alpha = _block_alpha(strokes.reshape(B * K, -1), height, width, mode, sharpness, backend)
    return _dense(si, bi, alpha, B * K, height, width).reshape(B, K, height, width)


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
    pad = (0, nb_x * _BLOCK - W, 0, nb_y * _BLOCK - H)  # composite on whole 8x8 blocks, crop at the end
    kern = _pick(backend, B * K * H * W)
    out = canvas if canvas is None or pad == (0, 0, 0, 0) else torch.nn.functional.pad(canvas, pad)
    per_chunk = max(1, _CHUNK_PAIRS // (B * nb_y * nb_x))  # bound the (stroke, block) pairs of one chunk
    for k0 in range(0, K, per_chunk):
        chunk = strokes[:, k0 : k0 + per_chunk].transpose(0, 1)  # (k, B, 10 + C), stroke index major
        k = chunk.shape[0]
        si, bi, alpha = _block_alpha(chunk.reshape(k * B, -1), H, W, mode, sharpness, backend)
        ends = [0] + torch.bincount(si // B, minlength=k).cumsum(0).tolist() if k > 1 else [0, si.numel()]
        for kk in range(k):  # in order: canvas * (1 - alpha) + colour * alpha
            rows = slice(ends[kk], ends[kk + 1])  # the blocks of stroke index k0 + kk (distinct per canvas)
            if rows.stop == rows.start:
                continue
            b, colour = si[rows] - kk * B, chunk[kk, :, len(STROKE_FIELDS) :]
            out = _Composite.apply(out, colour, alpha[rows], b, bi[rows], nb_y, nb_x, kern)
    if out is None:
        return strokes.new_zeros(B, C, H, W)
    return out.clone() if out is canvas else out[:, :, :H, :W]


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
