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

## Texture

``texture=paintrnn.stroke_kernels.Bristles(...)`` (default ``None``: the plain stroke above) paints with a
bristle brush: the stroke's cross-section is cut into bands along the stroke with different paint loads,
``alpha = a * (1 - dry t*^2) * cov * T``, ``T`` the 1-px box filter (soft mode: the same smooth edge as the
coverage) of the bands' loads across the stroke at the pixel's signed lateral offset; the loads' pattern is
a smooth function of the stroke's direction. Still a closed-form function of the stroke and the pixel, with
exact gradients in the hand-written backward (see :class:`paintrnn.stroke_kernels.Bristles`); the brushes
of :mod:`paintrnn.brushes` name the textures.

The closest point is found in closed form (a cubic; see :mod:`paintrnn.stroke_kernels`), so ``d`` is exact
up to rounding; gradients are implicit-function gradients at the closest point.

## Speed

Only 8x8-pixel blocks near each stroke are evaluated (a conservative test on the block centres' closed-form
distance: half-diagonal + radius + 1/2 + soft tails). Per call, a handful of kernels run: the cull, one fused
per-pixel kernel (solve + coverage), one compositing pass per stroke index, and in the backward pass one
fused reduction per kernel (hand-written backward, no per-pixel temporaries). ``backend="auto"`` compiles
them with ``torch.compile`` for calls of at least ``2^18`` stroke x canvas pixels (the first compile takes
seconds), falls back to eager PyTorch if compilation fails, and stays eager for small calls. Gradients are
first-order only (no double backward). See ``scripts/benchmark_render.py`` and the README.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from paintrnn import stroke_kernels as sk

STROKE_FIELDS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "x2", "y2", "r0", "r2", "a0", "a2")
"""Names of the first ten entries of a stroke; the colour values ``c0 .. c{C-1}`` follow them."""

_LIMITS = {0: (0.0, 1.0), 6: (0.0, 0.5), 8: (0.0, 1.0)}  # first index of a group -> clamp range
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


class _Alpha(torch.autograd.Function):
    """``stroke_kernels.alpha`` with the implicit-function backward of ``alpha_grad`` (the solve is not
    differentiated)."""

    @staticmethod
    def forward(ctx, q, bi, nb_x, soft, sharpness, kern, texture):  # noqa: ANN001, ANN205
        alpha, t = kern.run("alpha", q, bi, nb_x, soft, sharpness, texture)
        ctx.save_for_backward(q, bi, t)
        ctx.args = (nb_x, soft, sharpness, kern, texture)
        return alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        q, bi, t = ctx.saved_tensors
        nb_x, soft, sharpness, kern, texture = ctx.args
        g = kern.run("alpha_grad", q, bi, nb_x, t, grad, soft, sharpness, texture)
        return g, None, None, None, None, None, None


class _Composite(torch.autograd.Function):
    """``stroke_kernels.composite`` with the gather-only backward of ``composite_grad`` (no dense temporaries)."""

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


class _Kernels:
    """The kernels of ``stroke_kernels.KERNELS``, eager or ``torch.compile``-d (compiled lazily, eager fallback
    on failure)."""

    def __init__(self, compiled: bool) -> None:
        self.compiled = compiled
        self.fns: dict[str, Callable[..., object]] = dict(sk.KERNELS)
        if compiled:
            # The compositing kernels move rows of 8 pixels: 8-wide vectors beat AVX-512's 16 there.
            rows = {"cpp.simdlen": 256} if torch.backends.cpu.get_cpu_capability() == "AVX512" else {}
            self.fns = {
                name: torch.compile(fn, dynamic=True, options=rows if name.startswith("composite") else None)
                for name, fn in sk.KERNELS.items()
            }

    def run(self, name: str, *args: object) -> object:
        try:
            return self.fns[name](*args)
        except Exception as err:  # a missing/broken compiler: fall back to eager for good
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager PyTorch", stacklevel=3)
            self.compiled, self.fns = False, dict(sk.KERNELS)
            return self.fns[name](*args)


@functools.cache
def _kernels(compiled: bool) -> _Kernels:
    return _Kernels(compiled)


def _pick(backend: str, pixels: int) -> _Kernels:
    """The kernels for ``backend``; ``"auto"`` compiles calls of at least ``_AUTO_COMPILE_PIXELS`` stroke pixels."""
    return _kernels(backend == "compiled" or (backend == "auto" and pixels >= _AUTO_COMPILE_PIXELS))


def _check_options(mode: str, sharpness: float, backend: str, texture: sk.Bristles | None = None) -> None:
    if texture is not None and not isinstance(texture, sk.Bristles):
        raise ValueError(f"texture must be None or a paintrnn.stroke_kernels.Bristles, got {type(texture).__name__}")
    if mode not in ("hard", "soft"):
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
    if not (isinstance(sharpness, int | float) and math.isfinite(sharpness) and sharpness > 0):
        raise ValueError(f"sharpness must be a finite number > 0, got {sharpness!r}")
    if backend not in ("auto", "eager", "compiled"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'compiled', got {backend!r}")


def _block_alpha(
    strokes: Tensor, height: int, width: int, mode: str, sharpness: float, backend: str, texture: sk.Bristles | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha on the 8x8 blocks near each stroke of clamped ``(N, 10 + C)`` strokes.

    Returns ``si`` (M,) stroke index, ``bi`` (M,) block index (row-major over the ``ceil(H/8) x ceil(W/8)``
    block grid), sorted by ``si``, and ``alpha`` (M, 64) over the block's pixels (row-major); every other
    pixel has alpha 0.
    """
    N, H, W, S = strokes.shape[0], height, width, min(height, width)
    prm = strokes[:, :10] * strokes.new_tensor([W, H, W, H, W, H, S, S, 1.0, 1.0])  # (N, 10) in pixels
    nb_y, nb_x = -(-H // sk.BLOCK), -(-W // sk.BLOCK)
    kern = _pick(backend, N * H * W)
    with torch.no_grad():
        p = prm.detach()
        # Conservative cull: a pixel centre is at most 3.5 sqrt(2) px from its block's centre, and it has
        # alpha > 0 only within radius + 1/2 (+ the soft tails) of the curve.
        reach = p[:, 6:8].amax(1) + 0.5 + (_TAIL / sharpness if mode == "soft" else 0.0)
        reach = reach + (sk.BLOCK - 1) / math.sqrt(2) + _CULL_TOL
        si, bi = kern.run("cull", p, nb_y, nb_x, reach).nonzero(as_tuple=True)  # (M,) active pairs
    if si.numel() == 0:
        return si, bi, prm.new_zeros(0, sk.BLOCK * sk.BLOCK)
    q = prm[si]  # (M, 10); gathered here so that the kernels' backward reduces over each block's pixels
    if torch.is_grad_enabled() and q.requires_grad:
        return si, bi, _Alpha.apply(q, bi, nb_x, mode == "soft", float(sharpness), kern, texture)  # (M, 64)
    return si, bi, kern.run("alpha_only", q, bi, nb_x, mode == "soft", float(sharpness), texture)


def _dense(si: Tensor, bi: Tensor, alpha: Tensor, n: int, height: int, width: int) -> Tensor:
    """Scatter the block alpha of :func:`_block_alpha` into ``(n, height, width)`` maps (zero elsewhere)."""
    nb_y, nb_x = -(-height // sk.BLOCK), -(-width // sk.BLOCK)
    out = alpha.new_zeros(n, nb_y, sk.BLOCK, nb_x, sk.BLOCK)
    out[si, bi // nb_x, :, bi % nb_x, :] = alpha.view(-1, sk.BLOCK, sk.BLOCK)
    return out.view(n, nb_y * sk.BLOCK, nb_x * sk.BLOCK)[:, :height, :width]


def stroke_coverage(
    strokes: Tensor,
    height: int,
    width: int,
    *,
    mode: str = "hard",
    sharpness: float = 4.0,
    backend: str = "auto",
    texture: sk.Bristles | None = None,
) -> Tensor:
    """Alpha map of every stroke on its own: ``(B, K, 10 + C)`` strokes -> ``(B, K, height, width)``.

    ``alpha = opacity x coverage`` (x a bristle ``texture``'s fade and bands) in [0, 1]; see the module
    docstring for modes, ``backend`` and ``texture``.
    """
    strokes = _check_strokes(strokes)
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_options(mode, sharpness, backend, texture)
    B, K = strokes.shape[:2]
    si, bi, alpha = _block_alpha(strokes.reshape(B * K, -1), height, width, mode, sharpness, backend, texture)
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
    texture: sk.Bristles | None = None,
) -> Tensor:
    """Composite ``K`` strokes, in order, onto each of ``B`` canvases.

    ``strokes``: ``(B, K, 10 + C)`` normalised parameters (layout in the module docstring), float32 or
    float64, on any device. ``canvas``: ``(B, C, H, W)`` in [0, 1], or ``None`` for black canvases of
    ``height x width``. ``mode``: ``"hard"`` (exact box-filter anti-aliasing) or ``"soft"`` (smooth,
    differentiable everywhere; ``sharpness`` per pixel, -> hard as it grows). ``backend``: ``"eager"``,
    ``"compiled"`` (``torch.compile``) or ``"auto"`` (compile only large calls). ``texture``: ``None`` (plain
    strokes) or a :class:`~paintrnn.stroke_kernels.Bristles` brush texture. Returns ``(B, C, H, W)`` with
    the dtype and device of ``strokes``; the input canvas is not modified.
    """
    strokes = _check_strokes(strokes)
    _check_options(mode, sharpness, backend, texture)
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
    nb_y, nb_x = -(-H // sk.BLOCK), -(-W // sk.BLOCK)
    pad = (0, nb_x * sk.BLOCK - W, 0, nb_y * sk.BLOCK - H)  # composite on whole 8x8 blocks, crop at the end
    kern = _pick(backend, B * K * H * W)
    out = canvas if canvas is None or pad == (0, 0, 0, 0) else torch.nn.functional.pad(canvas, pad)
    per_chunk = max(1, _CHUNK_PAIRS // (B * nb_y * nb_x))  # bound the (stroke, block) pairs of one chunk
    for k0 in range(0, K, per_chunk):
        chunk = strokes[:, k0 : k0 + per_chunk].transpose(0, 1)  # (k, B, 10 + C), stroke index major
        k = chunk.shape[0]
        si, bi, alpha = _block_alpha(chunk.reshape(k * B, -1), H, W, mode, sharpness, backend, texture)
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
