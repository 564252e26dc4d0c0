"""Synthetic pictures made of random strokes: training targets that need no dataset (Paint Transformer's idea).

:func:`synthetic_strokes` paints each picture with the project's own renderer: a background (flat, or a linear
gradient between two colours), then a random number of quadratic Bézier strokes, large ones first, in colours
drawn around a small per-picture palette (so that colours repeat, as in photos), mostly opaque. Some pictures
are blurred (25% by a 3 px box, 15% by a 5 px one) and 30% get pixel noise, so that soft edges and texture
occur too. Everything is drawn from the
given ``torch.Generator`` (on the CPU) in a fixed order: the same generator state gives the same pictures.

    >>> g = torch.Generator().manual_seed(0)
    >>> images = synthetic_strokes(8, size=32, generator=g)   # (8, 3, 32, 32) float in [0, 1]

:func:`synthetic_photos` makes photo-like pictures instead (what the colour painter sees in a photo's patches):
smooth shading over the whole picture, a few regions with their own shading and sharp or soft edges, fine
texture at several scales, thin lines, sometimes a blur. :func:`synthetic_mixed` draws half of each kind.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.render import render_strokes, stroke_coverage

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


def _palette(n: int, channels: int, generator: torch.Generator | None) -> Tensor:
    """``(n, PALETTE, channels)`` colours of a photo-like palette: a grey level plus a random, mostly small amount
    of colour (photos are less saturated than :func:`random_strokes`' pictures)."""
    g = generator
    grey, chroma = _rand(g, n, PALETTE, 1) * 0.9 + 0.05, _rand(g, n, PALETTE, 1) ** 2 * 0.6
    return (grey + chroma * (_rand(g, n, PALETTE, channels) - 0.5)).clamp(0, 1)


def smooth_fields(base: Tensor, size: int, generator: torch.Generator | None = None, spread: float = 0.35) -> Tensor:
    """Smoothly shaded pictures ``(n, C, size, size)`` around the colours ``base`` ``(n, C)``: a random grid of
    2-5 cells a side (each cell ``base`` moved by up to ``spread``, mostly in brightness) upsampled bicubically."""
    n, C = base.shape
    cells = int(torch.randint(2, 6, (1,), generator=generator))
    light = (_rand(generator, n, 1, cells, cells) - 0.5) * spread  # (n, 1, g, g) shading
    tint = (_rand(generator, n, C, cells, cells) - 0.5) * (spread * 0.4)  # a little colour change
    grid = base[:, :, None, None] + light + tint
    return F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def texture(n: int, channels: int, size: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-mean texture ``(n, C, size, size)`` at three scales (cells of about 8, 3 and 1 px), each
    with its own random amplitude (up to 0.05; none in a quarter of the pictures), mostly in brightness."""
    g = generator
    out = torch.zeros(n, channels, size, size)
    for cells in (max(2, size // 8), max(2, size // 3), size):
        amp = _rand(g, n, 1, 1, 1) * 0.05 * (_rand(g, n, 1, 1, 1) > 0.25).float()
        grid = torch.randn(n, 1, cells, cells, generator=g) + 0.3 * torch.randn(n, channels, cells, cells, generator=g)
        out = out + amp * F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    return out


def _box_blur(images: Tensor, width: int) -> Tensor:
    pad = width // 2
    return F.avg_pool2d(F.pad(images, (pad, pad, pad, pad), mode="replicate"), width, stride=1)


@torch.no_grad()
def synthetic_photos(
    n: int,
    size: int = 32,
    channels: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` photo-like pictures ``(n, channels, size, size)``, float32 in [0, 1] on ``device``: a smoothly shaded
    background (:func:`smooth_fields`), 1-6 regions (large random strokes, sorted large to small) each with its
    own shading, their edges sharp or blurred by 3 or 5 px, :func:`texture`, 0-5 thin lines (0.5-1.5 px radius),
    and 25% of the pictures blurred by a 3 px box. Deterministic under ``generator`` (a CPU one)."""
    if n < 0:
        raise ValueError(f"the number of pictures must be >= 0, got {n}")
    if channels < 1 or size < 1:
        raise ValueError(f"channels and size must be >= 1, got {channels} and {size}")
    g, R, T = generator, 6, 5
    palette = _palette(n, channels, g)  # (n, P, C)
    images = smooth_fields(palette[:, 0], size, g)
    regions = torch.arange(R)[None, :] < torch.randint(1, R + 1, (n, 1), generator=g)  # (n, R)
    shapes, _ = random_strokes(n, (R, R), channels, size, g)  # (n, R, 10 + C) sorted large to small
    radius = 0.06 + 0.3 * _rand(g, n, R)  # regions are large: 6-36% of the side
    radius = radius.sort(1, descending=True).values
    shapes[..., 6:8] = radius[..., None]
    shapes[..., 8:10] = regions[..., None].float()
    alpha = stroke_coverage(shapes, size, size, mode="hard", backend="eager")  # (n, R, S, S)
    soft = _rand(g, n, R)
    for j in range(R):
        a = alpha[:, j : j + 1]
        a = torch.where((soft[:, j] < 0.25)[:, None, None, None], _box_blur(a, 3), a)
        a = torch.where((soft[:, j] > 0.85)[:, None, None, None], _box_blur(a, 5), a)
        pick = torch.randint(PALETTE, (n,), generator=g)
        colour = palette[torch.arange(n), pick] + (_rand(g, n, channels) - 0.5) * 0.3
        images = images * (1 - a) + smooth_fields(colour.clamp(0, 1), size, g) * a
    images = images + texture(n, channels, size, g)
    lines, _ = random_strokes(n, (T, T), channels, size, g)
    lines[..., 6:8] = ((0.5 + _rand(g, n, T)) / size)[..., None]
    drawn = torch.arange(T)[None, :] < torch.randint(0, T + 1, (n, 1), generator=g)  # (n, T): 0-5 lines
    lines[..., 8:10] = lines[..., 8:10] * drawn[..., None].float()
    images = render_strokes(lines, images.clamp(0, 1), mode="hard", backend="eager")
    blur = (_rand(g, n) < 0.25)[:, None, None, None]
    images = torch.where(blur, _box_blur(images, 3), images)
    return images.clamp(0, 1).to(device)


def synthetic_mixed(
    n: int,
    size: int = 32,
    channels: int = 3,
    generator: torch.Generator | None = None,
    count: tuple[int, int] = (4, 40),
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` pictures ``(n, channels, size, size)``: the first half (rounded down) :func:`synthetic_strokes`, the
    rest :func:`synthetic_photos`, both drawn from ``generator`` in that order."""
    half = n // 2
    strokes = synthetic_strokes(half, size, channels, generator, count, device)
    return torch.cat([strokes, synthetic_photos(n - half, size, channels, generator, device)])


__all__ = ["gradient_background", "random_strokes", "smooth_fields", "synthetic_mixed", "synthetic_photos",
           "synthetic_strokes", "texture"]  # fmt: skip
