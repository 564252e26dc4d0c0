"""SVG export of strokes: resolution-free quadratic Bézier paths (layout of :mod:`paintrnn.render`)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from paintrnn.render import STROKE_FIELDS


def _colour(c: np.ndarray) -> str:
    v = np.round(np.clip(c, 0.0, 1.0) * 255).astype(int)
    r, g, b = (v[0], v[0], v[0]) if len(v) == 1 else v[:3]
    return f"rgb({r},{g},{b})"


def strokes_to_svg(
    strokes: Tensor | np.ndarray, height: int, width: int, background: tuple[float, ...] | float = 0.0
) -> str:
    """``(K, 10 + C)`` strokes -> an SVG document with ``viewBox="0 0 width height"``.

    Each stroke is a path ``M x0 y0 Q x1 y1 x2 y2`` with round caps, ``stroke-width`` = ``r0 + r2`` (the
    mean diameter; the SVG does not taper), ``stroke-opacity`` = mean of ``a0, a2`` and its colour (grey
    when ``C == 1``, else the first three channels as RGB). Values are clamped like the renderer's.
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
    for x0, y0, x1, y1, x2, y2, r0, r2, a0, a2, *c in s:
        xs, ys = np.array([x0, x1, x2]) * width, np.array([y0, y1, y2]) * height
        d = "M {:.4f} {:.4f} Q {:.4f} {:.4f} {:.4f} {:.4f}".format(*np.stack([xs, ys], 1).ravel())
        lines.append(
            f'<path d="{d}" fill="none" stroke="{_colour(np.asarray(c))}" stroke-width="{(r0 + r2) * side:.4f}" '
            f'stroke-linecap="round" stroke-opacity="{(a0 + a2) / 2:.4f}"/>'
        )
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
