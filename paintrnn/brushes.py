"""Brushes: what strokes a painting may use, by name (``paintrnn paint --brush NAME``).

Every brush paints the renderer's stroke, a quadratic Bézier with a radius and an opacity at each end
(:mod:`paintrnn.render`). A :class:`Brush` limits those (opacity range, taper, radii) for the painter and
its optimiser, and may give the renderer a texture (:class:`paintrnn.stroke_kernels.Bristles`) that every
rendering of the strokes uses: the soft renderer during optimisation, the exact PNG and GIF renders, and
the SVG export (:func:`paintrnn.svg.strokes_to_svg`). A painting records its brush's name in
``strokes.json``, so ``paintrnn render`` re-renders it with the same texture.

* ``round`` (default): constant width, opacity 0.3-1, no texture;
* ``marker``: opaque, no texture;
* ``tapered``: width and opacity vary along the stroke (the SVG shows their means);
* ``watercolor``: translucent glazes, opacity 0.05-0.5;
* ``bristle``: an oil brush: :data:`BRISTLES`, streaks of paint along the stroke (13 bristle bands of
  different widths whose loads follow the stroke's direction) and a dry-brush fade towards the stroke's end;
  opacity 0.5-1.
"""

from __future__ import annotations

from dataclasses import dataclass

from paintrnn.stroke_kernels import Bristles

BRISTLES = Bristles(
    edges=(-0.861, -0.667, -0.508, -0.382, -0.201, -0.054, 0.058, 0.226, 0.36, 0.549, 0.703, 0.824),
    depth=0.8,
    dry=0.3,
)
"""The ``bristle`` brush's texture: 13 bands of irregular widths (widths ``1 + 0.8 frac(0.618 j + 0.3)``,
normalised), loads in [0.2, 1], 30% less paint at the end of a stroke than at its start."""


@dataclass(frozen=True)
class Brush:
    """What strokes a painting may use (the renderer's stroke is always a quadratic Bézier)."""

    name: str
    opacity: tuple[float, float]
    """Range of a stroke's opacity (equal ends: a fixed opacity)."""
    taper: bool
    """False: one radius and one opacity per stroke (the SVG export is then exact up to anti-aliasing);
    True: start and end differ (the SVG shows their means)."""
    max_radius: float = 0.25
    """Largest radius, a fraction of the patch's shorter side (at most 0.25: patches of a class never touch)."""
    min_radius: float = 0.5
    """Smallest radius in pixels of the painting."""
    texture: Bristles | None = None
    """The renderer's texture for this brush (``None``: plain strokes)."""


BRUSHES: dict[str, Brush] = {
    "round": Brush("round", (0.3, 1.0), taper=False),
    "marker": Brush("marker", (1.0, 1.0), taper=False),
    "tapered": Brush("tapered", (0.3, 1.0), taper=True),
    "watercolor": Brush("watercolor", (0.05, 0.5), taper=False),
    "bristle": Brush("bristle", (0.5, 1.0), taper=False, texture=BRISTLES),
}
"""The brushes by name: ``round`` (default; constant width, opacity 0.3-1), ``marker`` (opaque), ``tapered``
(width and opacity vary along the stroke), ``watercolor`` (translucent glazes, opacity 0.05-0.5),
``bristle`` (an oil brush: streaks along the stroke and a dry-brush fade, opacity 0.5-1)."""


class UnknownBrushError(ValueError):
    """A brush name that is not in :data:`BRUSHES` (the message is one line meant for the user)."""


def get_brush(name: str) -> Brush:
    """The brush called ``name``; :class:`UnknownBrushError` names the choices otherwise."""
    if name not in BRUSHES:
        raise UnknownBrushError(f"unknown brush {name!r}; choose one of {', '.join(BRUSHES)}")
    return BRUSHES[name]


__all__ = ["BRISTLES", "BRUSHES", "Brush", "UnknownBrushError", "get_brush"]
