"""Synthetic pictures made of random strokes: training targets that need no dataset (Paint Transformer's idea).

:func:`synthetic_strokes` paints each picture with the project's own renderer: a background (flat, or a linear
gradient between two colours), then a random number of quadratic Bézier strokes, large ones first, in colours
drawn around a small per-picture palette (so that colours repeat, as in photos), mostly opaque. Some pictures
are blurred (25% by a 3 px box, 15% by a 5 px one) and 30% get pixel noise, so that soft edges and texture
occur too. Everything is drawn from the
given ``torch.Generator`` (on the CPU) in a fixed order: the same generator state gives the same pictures.

    >>> g = torch.Generator().manual_seed(0)
    >>> images = synthetic_strokes(8, size=32, generator=g)   # (8, 3, 32, 32) float in [0, 1]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.render import render_strokes

PALETTE = 3
"""Base colours of one picture (a grey level plus a random amount of colour); each stroke's colour is one of
them, moved by a random amount."""


def _rand(generator: torch.Generator | None, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=generator)


def random_strokes(
    n: int,
    count: tuple[int, int] = (4, 40),
    channels: int = 3,
    size: int = 32,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random strokes for ``n`` pictures: ``(n, count[1], 10 + channels)`` in the renderer's layout (strokes past
    each picture's own count have opacity 0) and the background colours ``(n, 2, channels)`` (gradient ends).

    Radii are log-uniform from half a pixel (of a ``size`` px picture) to a quarter of the side, sorted large to
    small; a stroke's half-length is 0-4 radii, its bend up to half its length; its centre may lie a little
    outside the picture."""
    lo, hi = count
    if not 1 <= lo <= hi:
        raise ValueError(f"stroke count range must satisfy 1 <= low <= high, got {count}")
    if channels < 1 or size < 1:
        raise ValueError(f"channels and size must be >= 1, got {channels} and {size}")
    K, g = hi, generator
    grey, chroma = _rand(g, n, PALETTE, 1) * 0.8 + 0.1, _rand(g, n, PALETTE, 1)
    palette = (grey + chroma * (_rand(g, n, PALETTE, channels) - 0.5)).clamp(0, 1)  # (n, P, C), photo-like
    background = torch.stack([palette[:, 0], _rand(g, n, channels)], 1)  # (n, 2, C)
    active = torch.arange(K)[None, :] < torch.randint(lo, hi + 1, (n, 1), generator=g)  # (n, K)
    r_min, r_max = 0.5 / size, 0.25
    radius = (r_min * (r_max / r_min) ** _rand(g, n, K)).sort(1, descending=True).values  # (n, K)
    u = _rand(g, n, K, 6)
    centre = u[..., 0:2] * 1.2 - 0.1  # (n, K, 2)
    angle = u[..., 2] * 2 * math.pi
    half = radius * 4 * u[..., 3]
    bend = (u[..., 4] - 0.5) * half
    d = torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # (n, K, 2) direction
    normal = torch.stack([-d[..., 1], d[..., 0]], -1)
    p0 = centre - d * half[..., None]
    p2 = centre + d * half[..., None]
    p1 = centre + normal * bend[..., None]
    opacity = torch.where(u[..., 5] < 0.7, torch.ones_like(radius), 0.3 + 0.7 * _rand(g, n, K)) * active
    pick = torch.randint(PALETTE, (n, K), generator=g)
    colour = palette.gather(1, pick[..., None].expand(n, K, channels))
    colour = (colour + (_rand(g, n, K, channels) - 0.5) * 0.6 * _rand(g, n, K, 1)).clamp(0, 1)
    strokes = torch.cat([p0, p1, p2, radius[..., None], radius[..., None], opacity[..., None], opacity[..., None],
                         colour], -1)  # fmt: skip
    return strokes, background


def gradient_background(background: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """Backgrounds ``(n, C, size, size)``: half of them flat (the first colour), half a linear gradient from the
    first to the second colour of ``background`` ``(n, 2, C)`` along a random direction."""
    n, _, C = background.shape
    u = _rand(generator, n, 2)
    angle = u[:, 0] * 2 * math.pi
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    t = (xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]) + 0.5  # (n, S, S)
    t = t.clamp(0, 1) * (u[:, 1] < 0.5).float()[:, None, None]  # flat where the draw says so
    a, b = background[:, 0, :, None, None], background[:, 1, :, None, None]  # (n, C, 1, 1)
    return a + (b - a) * t[:, None]


@torch.no_grad()
def synthetic_strokes(
    n: int,
    size: int = 32,
    channels: int = 3,
    generator: torch.Generator | None = None,
    count: tuple[int, int] = (4, 40),
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` synthetic pictures ``(n, channels, size, size)``, float32 in [0, 1] on ``device`` (see the module
    docstring); ``count`` is the range of strokes per picture. Deterministic under ``generator`` (a CPU one)."""
    if n < 0:
        raise ValueError(f"the number of pictures must be >= 0, got {n}")
    g = generator
    strokes, background = random_strokes(n, count, channels, size, g)
    canvas = gradient_background(background, size, g)  # (n, C, S, S)
    u = _rand(g, n, 3)
    noise = torch.randn(n, channels, size, size, generator=g) * (0.05 * u[:, 0])[:, None, None, None]
    images = render_strokes(strokes.to(device), canvas.to(device), mode="hard", backend="eager")
    for width, lo, hi in ((3, 0.0, 0.25), (5, 0.25, 0.4)):  # some pictures blurred (3 or 5 px box)
        pad = width // 2
        blurred = F.avg_pool2d(F.pad(images, (pad, pad, pad, pad), mode="replicate"), width, stride=1)
        images = torch.where(((u[:, 1] >= lo) & (u[:, 1] < hi)).to(device)[:, None, None, None], blurred, images)
    images = images + torch.where((u[:, 2] < 0.3)[:, None, None, None], noise, 0.0).to(device)
    return images.clamp(0, 1)


__all__ = ["gradient_background", "random_strokes", "synthetic_strokes"]
