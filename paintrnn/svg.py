"""SVG export of strokes: resolution-free quadratic Bézier paths (layout of :mod:`paintrnn.render`).

A plain stroke is one path with round caps. A stroke with a bristle texture
(:class:`paintrnn.stroke_kernels.Bristles`) is drawn as the renderer models it: its bands of paint are
paths parallel to the stroke (offset curves, each a few quadratic Béziers, with the renderer's band widths
and loads as opacities), run on straight past both ends as the renderer's bands do, and cut to the
stroke's round-capped outline by a mask that also carries the opacity and the dry-brush fade along the
stroke (a gradient along the chord). Adjacent bands with nearly equal loads are merged into one path, and
adjacent paths overlap by 0.2 px, which cancels most of the seam that a rasteriser leaves where two
anti-aliased edges meet (rasterised by cairosvg, a bristle painting matches its PNG to about 40 dB PSNR).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from paintrnn import stroke_kernels as sk
from paintrnn.render import STROKE_FIELDS

_TURN = math.cos(math.radians(30))  # an offset curve is split until its end normals differ by at most 30 deg
_MERGE = 0.1  # adjacent bands whose loads lie within this of each other are one path
_SEAM = 0.1  # px by which a band reaches into its neighbours: offsets most of the seam of two anti-aliased edges


def _colour(c: np.ndarray) -> str:
    v = np.round(np.clip(c, 0.0, 1.0) * 255).astype(int)
    r, g, b = (v[0], v[0], v[0]) if len(v) == 1 else v[:3]
    return f"rgb({r},{g},{b})"


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = float(np.hypot(*v))
    return v / n if n > 1e-9 else fallback


def offset_curve(p: np.ndarray, d0: float, d2: float, depth: int = 0) -> list[np.ndarray]:
    """Quadratic Béziers ``(3, 2)`` that follow the curve ``p`` (3, 2) (px) at the lateral offset ``d0`` at its
    start and ``d2`` at its end (linear in ``t``; along the renderer's normal ``(-v_y, v_x) / |v|``): each piece's end
    points are offset along their normals and its control point along the mitre of the two, split in
    halves (de Casteljau) until the piece turns by at most 30 degrees."""
    chord = _unit(p[2] - p[0], np.array([1.0, 0.0]))
    t0, t2 = _unit(p[1] - p[0], chord), _unit(p[2] - p[1], chord)
    n0, n2 = np.array([-t0[1], t0[0]]), np.array([-t2[1], t2[0]])
    cos = float(n0 @ n2)
    if cos < _TURN and depth < 3:
        m01, m12 = (p[0] + p[1]) / 2, (p[1] + p[2]) / 2
        mid, dm = (m01 + m12) / 2, (d0 + d2) / 2
        return offset_curve(np.stack([p[0], m01, mid]), d0, dm, depth + 1) + offset_curve(
            np.stack([mid, m12, p[2]]), dm, d2, depth + 1
        )
    mitre = (n0 + n2) / max(1.0 + cos, 0.2)
    return [np.stack([p[0] + d0 * n0, p[1] + (d0 + d2) / 2 * mitre, p[2] + d2 * n2])]


def _bands(texture: sk.Bristles, rho: np.ndarray) -> list[tuple[float, float, float]]:
    """``(lo, hi, load)`` of the bands in units of the radius (the outer ones from -inf / to inf); adjacent
    bands whose loads all lie within ``_MERGE`` of each other are one band, with their width-weighted mean
    load."""
    edges = [-1.0, *texture.edges, 1.0]
    runs: list[list[int]] = []
    for j, load in enumerate(rho.tolist()):
        if runs and max(rho[runs[-1]].max(), load) - min(rho[runs[-1]].min(), load) <= _MERGE:
            runs[-1].append(j)
        else:
            runs.append([j])
    bands = []
    for run in runs:
        widths = [edges[j + 1] - edges[j] for j in run]
        load = sum(w * float(rho[j]) for w, j in zip(widths, run)) / sum(widths)
        bands.append((edges[run[0]], edges[run[-1] + 1], load))
    bands[0] = (-math.inf, *bands[0][1:])
    bands[-1] = (bands[-1][0], math.inf, bands[-1][2])
    return bands


def _num(v: float, digits: int = 2) -> str:
    """``v`` rounded to ``digits`` decimals, without trailing zeros (``-0`` as ``0``)."""
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _fmt(points: np.ndarray) -> str:
    return " ".join(_num(v) for v in np.asarray(points).ravel())


def _band_path(points: list[np.ndarray]) -> str:
    """Path data ``m start l P0' q ... l end`` (relative coordinates between the rounded absolute points, so
    no rounding error accumulates) for the start, the offset curve's pieces (3, 2) and the end."""
    start, pieces, end = points[0], points[1:-1], points[-1]
    pos = np.round(start, 2)
    out = [f"M {_fmt(pos)}"]
    segments = [("l", [pieces[0][0]])] + [("q", [q[1], q[2]]) for q in pieces] + [("l", [end])]
    for cmd, pts in segments:
        pts = [np.round(q, 2) for q in pts]
        out.append(f"{cmd} " + " ".join(_fmt(q - pos) for q in pts))
        pos = pts[-1]
    return " ".join(out)


def _bristle_stroke(k: int, row: np.ndarray, width: int, height: int, texture: sk.Bristles, rho: np.ndarray) -> str:
    """The SVG of one textured stroke ``row`` (clamped, normalised): gradient, mask and band paths."""
    side = min(height, width)
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2, *c = row
    p = np.array([[x0 * width, y0 * height], [x1 * width, y1 * height], [x2 * width, y2 * height]])
    r0, r2 = r0 * side, r2 * side
    r = (r0 + r2) / 2
    # The mask: the stroke's round-capped outline with its opacity a(t) (1 - dry t^2) along the chord P0 -> P2,
    # stops at the projections of B(0), B(1/2), B(1) (in order when 0 <= beta <= 1).
    chord = p[2] - p[0]
    length2 = float(chord @ chord)
    ts = (0.0, 0.5, 1.0)
    ops = [(a0 + (a2 - a0) * t) * (1 - texture.dry * t * t) for t in ts]
    outline = f'd="M {_fmt(p[0])} Q {_fmt(p[1:])}" fill="none" stroke-width="{_num(2 * r)}" stroke-linecap="round"'
    defs = []
    if length2 > 1e-6 and max(ops) - min(ops) > 1e-3:
        beta = float((p[1] - p[0]) @ chord) / length2
        at = [2 * t * (1 - t) * beta + t * t for t in ts] if 0.0 <= beta <= 1.0 else list(ts)
        stops = "".join(
            f'<stop offset="{_num(s, 3)}" stop-color="#fff" stop-opacity="{_num(o, 3)}"/>' for s, o in zip(at, ops)
        )
        defs.append(
            f'<linearGradient id="f{k}" gradientUnits="userSpaceOnUse" x1="{_num(p[0, 0])}" y1="{_num(p[0, 1])}" '
            f'x2="{_num(p[2, 0])}" y2="{_num(p[2, 1])}">{stops}</linearGradient>'
        )
        paint = f'stroke="url(#f{k})"'
    else:
        paint = f'stroke="#fff" stroke-opacity="{_num(sum(ops) / 3, 3)}"'
    defs.append(
        f'<mask id="b{k}" maskUnits="userSpaceOnUse" x="0" y="0" width="{width}" height="{height}">'
        f"<path {outline} {paint}/></mask>"
    )
    # The bands: offset curves, run on straight past both ends (the renderer's bands continue into the caps).
    t0 = _unit(p[1] - p[0], _unit(chord, np.array([1.0, 0.0])))
    t2 = _unit(p[2] - p[1], _unit(chord, np.array([1.0, 0.0])))
    reach = 1.5  # px past the outline, beyond its anti-aliasing
    paths = []
    for lo, hi, load in _bands(texture, rho):
        lo_px, hi_px = max(lo * r - _SEAM, -r - reach), min(hi * r + _SEAM, r + reach)
        mid = (lo_px + hi_px) / 2
        pieces = offset_curve(p, mid * r0 / r if r > 0 else 0.0, mid * r2 / r if r > 0 else 0.0)
        start, end = pieces[0][0] - (r0 + reach) * t0, pieces[-1][2] + (r2 + reach) * t2
        opacity = f' stroke-opacity="{_num(load, 3)}"' if load < 0.9995 else ""
        paths.append(f'<path d="{_band_path([start, *pieces, end])}" stroke-width="{_num(hi_px - lo_px)}"{opacity}/>')
    group = f'<g mask="url(#b{k})" fill="none" stroke="{_colour(np.asarray(c))}">' + "".join(paths) + "</g>"
    return "".join(defs) + group


def strokes_to_svg(
    strokes: Tensor | np.ndarray,
    height: int,
    width: int,
    background: tuple[float, ...] | float = 0.0,
    texture: sk.Bristles | None = None,
) -> str:
    """``(K, 10 + C)`` strokes -> an SVG document with ``viewBox="0 0 width height"``.

    Each stroke is a path ``M x0 y0 Q x1 y1 x2 y2`` with round caps, ``stroke-width`` = ``r0 + r2`` (the
    mean diameter; the SVG does not taper), ``stroke-opacity`` = mean of ``a0, a2`` and its colour (grey
    when ``C == 1``, else the first three channels as RGB). Values are clamped like the renderer's. With a
    bristle ``texture`` each stroke is its bands instead (see the module docstring; radius: the mean).
    """
    if isinstance(strokes, Tensor):
        strokes = strokes.detach().cpu().numpy()
    s = np.asarray(strokes, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < len(STROKE_FIELDS) + 1:
        raise ValueError(f"strokes must have shape (K, 10 + C), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("strokes contain NaN or inf")
    s = np.concatenate([np.clip(s[:, :6], 0, 1), np.clip(s[:, 6:8], 0, 0.5), np.clip(s[:, 8:], 0, 1)], axis=1)
    side = min(height, width)
    bg = np.atleast_1d(np.asarray(background, dtype=np.float64))
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="{_colour(bg)}"/>',
    ]
    if texture is not None:
        px = s[:, :6] * np.array([width, height] * 3)  # the loads follow the chord's direction in pixels
        dx, dy = (torch.from_numpy(px[:, 4 + i] - px[:, i])[:, None] for i in (0, 1))
        rho = torch.cat(sk.loads(dx, dy, texture)[0], 1).numpy()  # (K, bands)
        lines += [_bristle_stroke(k, row, width, height, texture, rho[k]) for k, row in enumerate(s)]
        return "\n".join([*lines, "</svg>"]) + "\n"
    for x0, y0, x1, y1, x2, y2, r0, r2, a0, a2, *c in s:
        xs, ys = np.array([x0, x1, x2]) * width, np.array([y0, y1, y2]) * height
        d = "M {:.4f} {:.4f} Q {:.4f} {:.4f} {:.4f} {:.4f}".format(*np.stack([xs, ys], 1).ravel())
        lines.append(
            f'<path d="{d}" fill="none" stroke="{_colour(np.asarray(c))}" stroke-width="{(r0 + r2) * side:.4f}" '
            f'stroke-linecap="round" stroke-opacity="{(a0 + a2) / 2:.4f}"/>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
