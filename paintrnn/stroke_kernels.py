"""The per-pixel kernels of the stroke renderer (:mod:`paintrnn.render`), as plain tensor functions.

Each is written for ``torch.compile`` (one fused loop per kernel) and runs eagerly as well:

* :func:`closest` — the closest point of a quadratic Bézier to each pixel centre, in closed form;
* :func:`cull` — which 8x8 pixel blocks lie near each stroke;
* :func:`coverage`, :func:`alpha`, :func:`alpha_grad` — a stroke's alpha on its blocks and the gradient of
  that alpha w.r.t. the stroke (implicit-function theorem at the closest point, no per-pixel temporaries);
  optionally textured by :class:`Bristles` (:func:`loads`, :func:`bristle`: bands of paint along the stroke);
* :func:`composite`, :func:`composite_grad` — alpha blending of block alpha into dense canvases and its
  gather-only gradient.

The closest point is found in closed form: with ``m = P0 - p``, ``b = P1 - P0`` and ``a = P0 - 2 P1 + P2``,
``d/dt |B(t) - p|^2 = 0`` is the cubic ``(a.a) t^3 + 3 (a.b) t^2 + (2 b.b + m.a) t + m.b = 0``, solved by
Cardano (one real root) or the trigonometric form (three; only the outer two can be minima), or as a
straight segment when ``a.a <= 1e-6 b.b``. The roots clamped to [0, 1] and both ends are compared, and one
guarded Newton step polishes the winner, so ``d`` is exact up to rounding (float32: within ~3e-5 px of
float64 on random, nearly straight, folded and degenerate curves). Gradients do not differentiate the solve:
they are the implicit-function gradients at ``t*`` (what one Newton step from a converged ``t*`` gives),
``dt*/dθ = -(∂g/∂θ) / g'`` for ``g(t) = (B(t) - p) . B'(t)``, zero where ``t*`` sits at an end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

BLOCK = 8
"""Side of the pixel blocks that are culled or evaluated together."""
STRAIGHT = 1e-6
"""``|a|^2 <= STRAIGHT |b|^2`` (``a = P0 - 2 P1 + P2``, ``b = P1 - P0``): solved as a straight segment."""


def closest(px: Tensor, py: Tensor, x0: Tensor, y0: Tensor, x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor):
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
    straight = aa <= STRAIGHT * bb + 1e-30
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


def cull(prm: Tensor, nb_y: int, nb_x: int, reach: Tensor) -> Tensor:
    """``(N, nb_y nb_x)`` mask of the 8x8 blocks whose centre is within ``reach`` (N,) px of each curve."""
    blocks = torch.arange(nb_y * nb_x, device=prm.device)
    cx = ((blocks % nb_x) * BLOCK + BLOCK / 2).to(prm.dtype)  # (nb,) block centres
    cy = ((blocks // nb_x) * BLOCK + BLOCK / 2).to(prm.dtype)
    _, d2 = closest(cx, cy, *(prm[:, i, None] for i in range(6)))  # (N, nb)
    return d2 <= (reach * reach)[:, None]


def pixels(bi: Tensor, nb_x: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Pixel centres ``(M, 64)`` of the 8x8 blocks ``bi`` (M,) (row-major over a grid ``nb_x`` blocks wide)."""
    off = torch.arange(BLOCK * BLOCK, device=bi.device)
    px = ((bi % nb_x)[:, None] * BLOCK + off % BLOCK).to(dtype) + 0.5
    py = ((bi // nb_x)[:, None] * BLOCK + off // BLOCK).to(dtype) + 0.5
    return px, py


def coverage(r: Tensor, d: Tensor, soft: bool, s: float) -> tuple[Tensor, Tensor, Tensor]:
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


@dataclass(frozen=True)
class Bristles:
    """A bristle texture: bands of paint that run along the stroke, each with its own load, thinning out
    towards the stroke's end (a parameter of :func:`alpha` and :func:`alpha_grad`; ``None`` = plain strokes).

    A pixel's *lateral offset* is ``l = n . (p - B(t*))``, with ``n = (-v_y, v_x) / |v|`` the unit normal at
    the closest point ``t*`` (``v = B'(t*)``): ``|l| = d`` along the stroke, and on the round caps ``l`` keeps
    measuring across the end's tangent, so the bands run straight on into the caps. Band ``j`` is where
    ``l / r`` lies between ``edges[j - 1]`` and ``edges[j]`` (the outer bands run on to the stroke's edge);
    its load is ``rho_j = 1 - depth h_j^3`` with ``h_j = 1/2 + 1/4 sin(theta + j w_1) + 1/4 sin(2 theta + j w_2)``
    in [0, 1], ``(w_1, w_2) = waves`` and ``theta`` the direction of the chord ``P2 - P0`` in pixels: a
    per-stroke phase that needs no random numbers, varies smoothly with the stroke and does not change when
    the stroke is moved or scaled (the same pattern in a crop and in the whole picture, at any size). The
    texture is the exact 1-px box filter of that piecewise-constant profile across the stroke,
    ``T = rho_0 + sum_j (rho_j - rho_{j-1}) clamp(l - edges[j-1] r + 1/2, 0, 1)`` (soft mode: the coverage's
    smooth ``clamp``), and ``alpha = a(t*) (1 - dry t*^2) cov(r, d) T``.
    """

    edges: tuple[float, ...]
    """Band boundaries across the stroke in units of the radius, increasing, inside (-1, 1): len + 1 bands."""
    depth: float = 0.6
    """How much paint a band may lack: loads lie in [1 - depth, 1]."""
    dry: float = 0.3
    """Dry-brush fade: the stroke's opacity falls by this fraction from its start to its end (as t^2)."""
    waves: tuple[float, float] = (2.39996, 4.54)
    """Phase steps ``w_1, w_2`` (radians) from one band to the next of the loads' two waves."""

    def __post_init__(self) -> None:
        e = tuple(float(v) for v in self.edges)
        if not e or any(not -1.0 < v < 1.0 for v in e) or any(b <= a for a, b in zip(e, e[1:])):
            raise ValueError(f"Bristles.edges must be increasing values inside (-1, 1), got {self.edges!r}")
        for name in ("depth", "dry"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"Bristles.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if len(self.waves) != 2 or not all(math.isfinite(w) for w in self.waves):
            raise ValueError(f"Bristles.waves must be two finite numbers, got {self.waves!r}")
        object.__setattr__(self, "edges", e)


def loads(dx: Tensor, dy: Tensor, tex: Bristles) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The loads ``rho_j`` of the bands of strokes whose chord ``P2 - P0`` is ``(dx, dy)`` px (each ``(M, 1)``),
    and their derivatives w.r.t. ``dx`` and ``dy``: three lists of ``len(tex.edges) + 1`` tensors."""
    n = torch.sqrt(dx * dx + dy * dy + 1e-12)
    c, s, n3 = dx / n, dy / n, n * n * n  # the chord's direction (cos, sin theta)
    c_x, c_y, s_y = (n * n - dx * dx) / n3, -dx * dy / n3, (n * n - dy * dy) / n3  # s_x = c_y
    s2, c2 = 2 * s * c, c * c - s * s  # sin, cos 2 theta
    rho, rho_x, rho_y = [], [], []
    for j in range(len(tex.edges) + 1):
        (u1, v1), (u2, v2) = [(math.cos(j * w), math.sin(j * w)) for w in tex.waves]
        h = 0.5 + 0.25 * (s * u1 + c * v1) + 0.25 * (s2 * u2 + c2 * v2)
        h_c, h_s = 0.25 * v1 + 0.5 * (s * u2 + c * v2), 0.25 * u1 + 0.5 * (c * u2 - s * v2)
        rho_h = -3 * tex.depth * h * h
        rho.append(1 - tex.depth * h * h * h)
        rho_x.append(rho_h * (h_c * c_x + h_s * c_y))
        rho_y.append(rho_h * (h_c * c_y + h_s * s_y))
    return rho, rho_x, rho_y


def step(x: Tensor, soft: bool, s: float) -> tuple[Tensor, Tensor]:
    """The 1-px box filter of a unit step at 0 seen from ``x`` (``clamp(x + 1/2, 0, 1)``; soft: the smooth
    ``S(x)`` of :func:`coverage`) and its derivative."""
    hard = (x + 0.5).clamp(0.0, 1.0)
    if not soft:
        return hard, ((x >= -0.5) & (x <= 0.5)).to(x.dtype)
    u0, u1 = x + 0.5, x - 0.5
    e0, e1 = torch.exp(-s * u0.abs()), torch.exp(-s * u1.abs())
    sig0 = torch.where(u0 >= 0, 1.0, e0) / (1 + e0)  # sigmoid(s u0)
    sig1 = torch.where(u1 >= 0, 1.0, e1) / (1 + e1)
    return hard + torch.log1p((e0 - e1) / (1 + e1)) / s, sig0 - sig1


def bristle(
    lat: Tensor,
    r: Tensor,
    rho: list[Tensor],
    tex: Bristles,
    soft: bool,
    s: float,
    rho_xy: tuple[list[Tensor], list[Tensor]] | None = None,
) -> tuple[Tensor, ...]:
    """Texture ``T`` ``(M, P)`` at lateral offsets ``lat`` (px) from strokes of radius ``r``, band loads ``rho``
    (:func:`loads`). With ``rho_xy = (rho_x, rho_y)`` also ``dT/dl``, ``dT/dr`` and ``dT/d(dx, dy)``."""
    T = rho[0].expand_as(lat)
    if rho_xy is None:
        for j, e in enumerate(tex.edges, 1):
            T = T + (rho[j] - rho[j - 1]) * step(lat - e * r, soft, s)[0]
        return (T,)
    rho_x, rho_y = rho_xy
    T_l, T_r, T_x, T_y = torch.zeros_like(T), torch.zeros_like(T), rho_x[0].expand_as(lat), rho_y[0].expand_as(lat)
    for j, e in enumerate(tex.edges, 1):
        h, dh = step(lat - e * r, soft, s)
        jump = rho[j] - rho[j - 1]
        T, T_l, T_r = T + jump * h, T_l + jump * dh, T_r - (e * jump) * dh
        T_x, T_y = T_x + (rho_x[j] - rho_x[j - 1]) * h, T_y + (rho_y[j] - rho_y[j - 1]) * h
    return T, T_l, T_r, T_x, T_y


def lateral(ex: Tensor, ey: Tensor, vx: Tensor, vy: Tensor) -> tuple[Tensor, Tensor]:
    """Signed lateral offset ``l = (vy ex - vx ey) / |v| = n . (p - B(t))``, ``n = (-vy, vx) / |v|``, of the pixels
    with ``e = B(t) - p`` from the curve with tangent ``v`` at ``t``, and ``|v|``."""
    m = torch.sqrt(vx * vx + vy * vy + 1e-12)
    return (vy * ex - vx * ey) / m, m


def alpha(
    q: Tensor, bi: Tensor, nb_x: int, soft: bool, sharpness: float, texture: Bristles | None = None
) -> tuple[Tensor, Tensor]:
    """Alpha and closest-point parameter ``t*``, each ``(M, 64)``, of stroke ``q`` (M, 10) (in px) on the pixels
    of block ``bi`` (M,), plain or with a bristle ``texture``."""
    px, py = pixels(bi, nb_x, q.dtype)
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = (v[:, None] for v in q.unbind(-1))  # (M, 1) each
    t, d2 = closest(px, py, x0, y0, x1, y1, x2, y2)
    if texture is None:
        cov = coverage(r0 + (r2 - r0) * t, torch.sqrt(d2 + 1e-12), soft, sharpness)[0]
        return (a0 + (a2 - a0) * t) * cov, t
    r = r0 + (r2 - r0) * t
    cov = coverage(r, torch.sqrt(d2 + 1e-12), soft, sharpness)[0]
    s = 1 - t
    ex, ey = s * s * x0 + 2 * s * t * x1 + t * t * x2 - px, s * s * y0 + 2 * s * t * y1 + t * t * y2 - py
    vx, vy = x1 - x0 + (x0 - 2 * x1 + x2) * t, y1 - y0 + (y0 - 2 * y1 + y2) * t  # B'(t) / 2
    T = bristle(lateral(ex, ey, vx, vy)[0], r, loads(x2 - x0, y2 - y0, texture)[0], texture, soft, sharpness)[0]
    return (a0 + (a2 - a0) * t) * (1 - texture.dry * t * t) * cov * T, t


def alpha_only(
    q: Tensor, bi: Tensor, nb_x: int, soft: bool, sharpness: float, texture: Bristles | None = None
) -> Tensor:
    return alpha(q, bi, nb_x, soft, sharpness, texture)[0]


def alpha_grad(
    q: Tensor,
    bi: Tensor,
    nb_x: int,
    t: Tensor,
    grad: Tensor,
    soft: bool,
    sharpness: float,
    texture: Bristles | None = None,
) -> Tensor:
    """Gradient ``(M, 10)`` of ``(grad * alpha).sum()`` w.r.t. ``q``, given the closest points ``t`` of :func:`alpha`.

    ``alpha = a(t*) cov(r(t*), d)``. Moving the curve moves ``d`` directly (``d d / d P_k = w_k(t) e / d``
    with ``e = B(t*) - p`` and the Bézier weights ``w_k``; the shift of ``t*`` along the curve does not
    change ``d`` to first order) and moves ``t*``, by the implicit-function theorem on
    ``g(t) = e . B'(t) / 2 = 0``: ``dt*/dP_k = -(w_k B'/2 + c_k e) / g'(t*)`` with ``c_k = d(B'/2)/dP_k``,
    which is the gradient of one Newton step from a converged ``t*``. At an end of the curve (an active
    constraint) or where ``g'`` is tiny (the medial axis of a bent stroke) ``t*`` is held fixed. A bristle
    ``texture`` adds the fade ``1 - dry t^2`` and ``T(l(t*, P), r(t*), P2 - P0)``: ``l`` depends on ``t*`` and,
    through ``e`` and the tangent ``v = B'(t*)/2``, on the points directly; the loads on the chord.
    """
    px, py = pixels(bi, nb_x, q.dtype)
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = (v[:, None] for v in q.unbind(-1))  # (M, 1) each
    s = 1 - t
    w, c = (s * s, 2 * s * t, t * t), (-s, 1 - 2 * t, t)  # dB/dP_k and d(B'/2)/dP_k
    ex, ey = w[0] * x0 + w[1] * x1 + w[2] * x2 - px, w[0] * y0 + w[1] * y1 + w[2] * y2 - py  # B(t) - p
    vx, vy = x1 - x0 + (x0 - 2 * x1 + x2) * t, y1 - y0 + (y0 - 2 * y1 + y2) * t  # B'(t) / 2
    v2 = vx * vx + vy * vy
    g1 = 2 * v2 + ex * (x0 - 2 * x1 + x2) + ey * (y0 - 2 * y1 + y2)  # g'(t)
    d = torch.sqrt(ex * ex + ey * ey + 1e-12)
    op = a0 + (a2 - a0) * t
    cov, cov_r, cov_d = coverage(r0 + (r2 - r0) * t, d, soft, sharpness)
    free = (t > 0) & (t < 1) & (g1 > 1e-4 * v2)
    if texture is None:
        ga, gr, gd = grad * cov, grad * op * cov_r, grad * op * cov_d / d  # d/d opacity, radius, distance
        gt = torch.where(free, (ga * (a2 - a0) + gr * (r2 - r0)) / torch.where(free, g1, 1.0), 0.0)  # d/dt / g'
        out = []
        for wk, ck in zip(w, c):
            out += [(gd * wk * ex - gt * (wk * vx + ck * ex)).sum(1), (gd * wk * ey - gt * (wk * vy + ck * ey)).sum(1)]
        out += [(gr * s).sum(1), (gr * t).sum(1), (ga * s).sum(1), (ga * t).sum(1)]
        return torch.stack(out, 1)
    ax, ay = x0 - 2 * x1 + x2, y0 - 2 * y1 + y2  # d(B'/2)/dt
    lat, m = lateral(ex, ey, vx, vy)
    rho, rho_x, rho_y = loads(x2 - x0, y2 - y0, texture)
    T, T_l, T_r, T_x, T_y = bristle(lat, r0 + (r2 - r0) * t, rho, texture, soft, sharpness, (rho_x, rho_y))
    fade = 1 - texture.dry * t * t
    g_all = grad * op * fade  # d alpha / d (cov T)
    ga, gr, gd = grad * fade * cov * T, g_all * (cov_r * T + cov * T_r), g_all * cov_d * T / d
    gl, gc = g_all * cov * T_l, g_all * cov  # d/dl; gc T_x: d/d chord
    l_t = (ay * ex - ax * ey) / m - lat * (vx * ax + vy * ay) / (m * m)  # dl/dt at fixed points
    dt_all = ga * (a2 - a0) + gr * (r2 - r0) + gl * l_t - grad * op * 2 * texture.dry * t * cov * T
    gt = torch.where(free, dt_all / torch.where(free, g1, 1.0), 0.0)  # d/dt / g'
    gm, gmm = gl / m, gl * lat / (m * m)  # dl/dP_k = (d(vy ex - vx ey)/dP_k) / m - lat (v . dv/dP_k) / m^2
    out = []
    for wk, ck in zip(w, c):
        out += [
            (gd * wk * ex - gt * (wk * vx + ck * ex) + gm * (vy * wk - ck * ey) - gmm * vx * ck).sum(1),
            (gd * wk * ey - gt * (wk * vy + ck * ey) + gm * (ck * ex - vx * wk) - gmm * vy * ck).sum(1),
        ]
    chord_x, chord_y = (gc * T_x).sum(1), (gc * T_y).sum(1)  # d/d(x2 - x0), d/d(y2 - y0)
    out[0], out[1], out[4], out[5] = out[0] - chord_x, out[1] - chord_y, out[4] + chord_x, out[5] + chord_y
    out += [(gr * s).sum(1), (gr * t).sum(1), (ga * s).sum(1), (ga * t).sum(1)]
    return torch.stack(out, 1)


def dense_blocks(alpha: Tensor, b: Tensor, bi: Tensor, n: int, nb_y: int, nb_x: int) -> Tensor:
    """Block alpha ``(m, 64)`` of blocks ``bi`` of canvases ``b`` as a ``(n, 1, nb_y, 8, nb_x, 8)`` view of
    dense ``(n, 1, 8 nb_y, 8 nb_x)`` maps (zero elsewhere), stored block by block (rows of 64 contiguous)."""
    dense = alpha.new_zeros(n, nb_y * nb_x, BLOCK * BLOCK).index_put((b, bi), alpha)
    return dense.view(n, 1, nb_y, nb_x, BLOCK, BLOCK).transpose(3, 4)


def blocks(x: Tensor) -> Tensor:
    """``(B, C, 8 nb_y, 8 nb_x)`` -> the ``(B, C, nb_y, 8, nb_x, 8)`` view matching :func:`dense_blocks`."""
    return x.view(x.shape[0], x.shape[1], x.shape[2] // BLOCK, BLOCK, x.shape[3] // BLOCK, BLOCK)


def composite(canvas: Tensor | None, colour: Tensor, alpha: Tensor, b: Tensor, bi: Tensor, nb_y: int, nb_x: int):
    """``canvas + a (colour - canvas)`` on block-padded ``(B, C, 8 nb_y, 8 nb_x)`` canvases (``None``: black),
    with ``a`` the block alpha ``(m, 64)`` of blocks ``bi`` (m,) of canvases ``b`` (m,); ``colour``: (B, C)."""
    B, C = colour.shape
    a = dense_blocks(alpha, b, bi, B, nb_y, nb_x)  # (B, 1, nb_y, 8, nb_x, 8)
    c = colour[:, :, None, None, None, None]
    out = c * a if canvas is None else blocks(canvas) + a * (c - blocks(canvas))
    return out.reshape(B, C, nb_y * BLOCK, nb_x * BLOCK)


def composite_grad(
    grad: Tensor, canvas: Tensor | None, colour: Tensor, alpha: Tensor, b: Tensor, bi: Tensor, full: bool
) -> tuple[Tensor | None, Tensor, Tensor]:
    """Gradients of :func:`composite` w.r.t. canvas (if ``full``), colour and alpha, given ``grad`` (B, C, H, W).

    The colour and alpha gradients only gather ``grad`` on the blocks ``bi`` of canvases ``b``; only the
    canvas gradient is dense.
    """
    B, C, H, W = grad.shape
    nb_y, nb_x = H // BLOCK, W // BLOCK
    ar = torch.arange(BLOCK, device=grad.device)
    at = (b[:, None, None, None], torch.arange(C, device=grad.device)[:, None, None])  # (m, C, 8, 8) below
    at = at + ((bi // nb_x)[:, None, None, None], ar[:, None], (bi % nb_x)[:, None, None, None], ar)
    g = blocks(grad)[at].flatten(2)  # (m, C, 64)
    base = colour[b][:, :, None] if canvas is None else colour[b][:, :, None] - blocks(canvas)[at].flatten(2)
    grad_colour = colour.new_zeros(B, C).index_add(0, b, (g * alpha[:, None]).sum(2))
    grad_canvas = None
    if full:
        grad_canvas = (blocks(grad) * (1 - dense_blocks(alpha, b, bi, B, nb_y, nb_x))).reshape(B, C, H, W)
    return grad_canvas, grad_colour, (g * base).sum(1)


KERNELS = {
    "cull": cull,
    "alpha": alpha,
    "alpha_only": alpha_only,
    "alpha_grad": alpha_grad,
    "composite": composite,
    "composite_grad": composite_grad,
}
