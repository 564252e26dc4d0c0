"""Rendering finished strokes at any size in bounded memory: tile by tile, composited in place.

:func:`paintrnn.render.render_strokes` is built for optimisation: it composites every stroke onto a whole
new canvas (dense, out of place, differentiable), so a 4096-px picture of 10,000 strokes would cost 10,000
passes over 50 M values. Here the same hard-mode picture is made for display and export:

* the canvas is cut into tiles (``tile`` px, a multiple of the renderer's 8-px blocks); each tile sees only
  the strokes whose bounding box (control points +- the larger radius + 1 px; a quadratic Bézier lies in the
  hull of its control points) touches it, in their order;
* a stroke's alpha is computed on the 8x8 blocks near it with the renderer's own kernel
  (:func:`paintrnn.stroke_kernels.alpha_only`, called with the *global* block indices, so every pixel sees
  exactly the numbers :func:`~paintrnn.render.render_strokes` would compute) and blended into those blocks in
  place with the renderer's formula ``canvas + alpha (colour - canvas)``; a brush ``texture``
  (:class:`paintrnn.stroke_kernels.Bristles`) goes to that kernel as it goes to the renderer's.

With ``backend="eager"`` the result equals ``render_strokes(strokes[None], background canvas, mode="hard",
backend="eager", texture=texture)`` bit for bit. ``"compiled"`` runs the alpha kernel through ``torch.compile``
(about 8x faster on a CPU, a few seconds to compile once; alpha then differs from eager by float rounding,
below 1e-4, as the renderer's own compiled backend does); ``"auto"`` compiles for pictures of 1024 x 1024 px
or more. A failing compiler falls back to eager with a warning. Memory: one tile canvas, the strokes, and the
temporaries of at most ``_CHUNK_PAIRS`` (stroke, block) alpha rows at a time, plus the output array.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from paintrnn import stroke_kernels as sk
from paintrnn.render import STROKE_FIELDS

TILE = 512
"""Default tile side in pixels (a multiple of the renderer's 8-px blocks)."""
_CULL_STROKES = 256  # strokes culled against a tile's blocks at once: (256, 4096) distances for a 512-px tile
_CHUNK_PAIRS = 1 << 14  # (stroke, block) alpha rows computed at once (4 MiB of float32 alpha per temporary)
_CULL_TOL = 0.05  # px, as the renderer's cull
_AUTO_COMPILE_PIXELS = 1 << 20  # render_tiled(backend="auto") compiles the alpha kernel from 1024 x 1024 px


@functools.cache
def _compiled_alpha() -> Callable[..., Tensor]:
    return torch.compile(sk.alpha_only, dynamic=True)


def _alpha(backend: str, *args: object) -> Tensor:
    """``stroke_kernels.alpha_only(*args)``, eager or compiled (falling back to eager for good on failure)."""
    global _COMPILE_FAILED
    if backend == "compiled" and not _COMPILE_FAILED:
        try:
            return _compiled_alpha()(*args)
        except Exception as err:  # a missing or broken compiler
            _COMPILE_FAILED = True
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); rendering eagerly", stacklevel=2)
    return sk.alpha_only(*args)


_COMPILE_FAILED = False


def clamp_strokes(strokes: Tensor) -> Tensor:
    """``(K, 10 + C)`` strokes clamped to the renderer's ranges (points [0, 1], radii [0, 0.5], rest [0, 1]);
    NaN or inf raise ``ValueError``."""
    if not isinstance(strokes, Tensor) or strokes.ndim != 2 or strokes.shape[1] < len(STROKE_FIELDS) + 1:
        raise ValueError(f"strokes must be a (K, 10 + C) tensor, got {getattr(strokes, 'shape', strokes)!r}")
    if not bool(torch.isfinite(strokes).all()):
        raise ValueError("strokes contain NaN or inf")
    out = strokes.clamp(0.0, 1.0)
    out[:, 6:8] = strokes[:, 6:8].clamp(0.0, 0.5)
    return out


def to_pixels(strokes: Tensor, height: int, width: int) -> Tensor:
    """Clamped ``(K, 10 + C)`` strokes -> ``(K, 10)`` geometry in pixels of a ``height x width`` canvas, computed
    exactly as the renderer does (``x W, y H, r min(H, W)``, opacities unchanged)."""
    s = min(height, width)
    return strokes[:, :10] * strokes.new_tensor([width, height, width, height, width, height, s, s, 1.0, 1.0])


def pixel_boxes(prm: Tensor) -> Tensor:
    """``(K, 4)`` boxes ``x0, y0, x1, y1`` in pixels that hold every pixel centre a stroke can touch: the
    control points' box grown by the larger radius + 1 px."""
    grow = prm[:, 6:8].amax(1) + 1.0  # (K,)
    xs, ys = prm[:, 0:6:2], prm[:, 1:6:2]  # (K, 3)
    return torch.stack([xs.amin(1) - grow, ys.amin(1) - grow, xs.amax(1) + grow, ys.amax(1) + grow], 1)


def composite_region(
    canvas: Tensor,
    prm: Tensor,
    colour: Tensor,
    origin: tuple[int, int],
    nb_x: int,
    marks: Sequence[int] = (),
    on_mark: Callable[[int, Tensor], None] | None = None,
    backend: str = "eager",
    texture: sk.Bristles | None = None,
) -> None:
    """Composite strokes, in order and in place, onto ``canvas`` (C, h, w): the region of a block-padded
    global canvas whose top-left block is ``origin`` = (block row, block column), ``h`` and ``w`` multiples of
    8, in a global grid ``nb_x`` blocks wide.

    ``prm`` (n, 10) is the strokes' geometry in *global* pixels (:func:`to_pixels`), ``colour`` (n, C). After
    the ``k``-th stroke, for each ``k`` in ``marks``, ``on_mark(k, canvas)`` is called (``k = 0`` before any).
    ``backend``: ``"eager"`` or ``"compiled"`` alpha kernel (see the module docstring); ``texture``: the brush
    texture (``None``: plain strokes).
    """
    C, h, w = canvas.shape
    if h % sk.BLOCK or w % sk.BLOCK:
        raise ValueError(f"region must be whole {sk.BLOCK}-px blocks, got {h}x{w}")
    tby, tbx = h // sk.BLOCK, w // sk.BLOCK
    marks = sorted(set(int(k) for k in marks))
    if on_mark is not None and 0 in marks:
        on_mark(0, canvas)
    n = prm.shape[0]
    if n == 0:
        return
    work = canvas.view(C, tby, sk.BLOCK, tbx, sk.BLOCK).permute(1, 3, 0, 2, 4).reshape(tby * tbx, C, -1)
    lb_all = torch.arange(tby * tbx, device=prm.device)
    cx = ((origin[1] + lb_all % tbx) * sk.BLOCK + sk.BLOCK / 2).to(prm.dtype)  # block centres, global px
    cy = ((origin[0] + lb_all // tbx) * sk.BLOCK + sk.BLOCK / 2).to(prm.dtype)
    done = 0
    for s0 in range(0, n, _CULL_STROKES):
        p = prm[s0 : s0 + _CULL_STROKES]
        reach = p[:, 6:8].amax(1) + 0.5 + (sk.BLOCK - 1) / math.sqrt(2) + _CULL_TOL
        _, d2 = sk.closest(cx, cy, *(p[:, i, None] for i in range(6)))  # (k, nb)
        si, lb = (d2 <= (reach * reach)[:, None]).nonzero(as_tuple=True)  # sorted by stroke
        gb = (origin[0] + lb // tbx) * nb_x + origin[1] + lb % tbx  # global block index
        ends = np.concatenate([[0], np.cumsum(torch.bincount(si, minlength=p.shape[0]).cpu().numpy())])
        k = 0
        while k < p.shape[0]:  # strokes k..j-1 whose (stroke, block) pairs fit in one alpha chunk
            j = max(k + 1, int(np.searchsorted(ends, ends[k] + _CHUNK_PAIRS, side="right")) - 1)
            a0, a1 = int(ends[k]), int(ends[j])
            alpha = _alpha(backend, p[si[a0:a1]], gb[a0:a1], nb_x, False, 1.0, texture)  # (a1 - a0, 64)
            for kk in range(k, j):
                r0, r1 = int(ends[kk]), int(ends[kk + 1])
                if r1 > r0:
                    rows = lb[r0:r1]
                    blk = work[rows]  # (count, C, 64)
                    c = colour[s0 + kk][None, :, None]
                    work[rows] = blk + alpha[r0 - a0 : r1 - a0, None, :] * (c - blk)
                done += 1
                if on_mark is not None and done in marks and done < n:
                    canvas.copy_(work.view(tby, tbx, C, sk.BLOCK, sk.BLOCK).permute(2, 0, 3, 1, 4).reshape(C, h, w))
                    on_mark(done, canvas)
            k = j
        del d2
    canvas.copy_(work.view(tby, tbx, C, sk.BLOCK, sk.BLOCK).permute(2, 0, 3, 1, 4).reshape(C, h, w))
    if on_mark is not None and n in marks:
        on_mark(n, canvas)


def render_tiled(
    strokes: Tensor,
    height: int,
    width: int,
    background: Sequence[float] | Tensor,
    *,
    tile: int = TILE,
    dtype: type = np.float32,
    backend: str = "auto",
    texture: sk.Bristles | None = None,
) -> np.ndarray:
    """Render ``(K, 10 + C)`` strokes (normalised, as :mod:`paintrnn.render`) onto a ``background`` colour at
    ``height x width``, tile by tile; returns ``(H, W, C)`` NumPy, float32 in [0, 1] or uint8 (``dtype``).

    Computed on the strokes' device; ``render_strokes`` in hard mode (with the brush ``texture``), exactly with
    ``backend="eager"`` (see the module docstring for ``"compiled"`` and ``"auto"``).
    """
    for name, value in (("height", height), ("width", width), ("tile", tile)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if tile % sk.BLOCK:
        raise ValueError(f"tile must be a multiple of {sk.BLOCK}, got {tile}")
    if backend not in ("auto", "eager", "compiled"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'compiled', got {backend!r}")
    if texture is not None and not isinstance(texture, sk.Bristles):
        raise ValueError(f"texture must be None or a paintrnn.stroke_kernels.Bristles, got {type(texture).__name__}")
    if backend == "auto":
        backend = "compiled" if height * width >= _AUTO_COMPILE_PIXELS else "eager"
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"dtype must be numpy.float32 or numpy.uint8, got {dtype!r}")
    strokes = clamp_strokes(strokes)
    C = strokes.shape[1] - len(STROKE_FIELDS)
    bg = torch.as_tensor(background, dtype=strokes.dtype, device=strokes.device).reshape(-1)
    if bg.numel() != C:
        raise ValueError(f"background has {bg.numel()} values, the strokes {C} colour channels")
    prm = to_pixels(strokes, height, width)  # (K, 10)
    colour = strokes[:, len(STROKE_FIELDS) :]
    boxes = pixel_boxes(prm)  # (K, 4)
    nb_y, nb_x = -(-height // sk.BLOCK), -(-width // sk.BLOCK)
    out = np.empty((height, width, C), dtype=dtype)
    for y0 in range(0, nb_y * sk.BLOCK, tile):
        for x0 in range(0, nb_x * sk.BLOCK, tile):
            h, w = min(tile, nb_y * sk.BLOCK - y0), min(tile, nb_x * sk.BLOCK - x0)
            touch = (boxes[:, 2] >= x0) & (boxes[:, 0] <= x0 + w) & (boxes[:, 3] >= y0) & (boxes[:, 1] <= y0 + h)
            idx = touch.nonzero()[:, 0]  # in stroke order
            canvas = bg[:, None, None].expand(C, h, w).contiguous()
            origin = (y0 // sk.BLOCK, x0 // sk.BLOCK)
            composite_region(canvas, prm[idx], colour[idx], origin, nb_x, backend=backend, texture=texture)
            hh, ww = min(h, height - y0), min(w, width - x0)
            out[y0 : y0 + hh, x0 : x0 + ww] = _to_numpy(canvas[:, :hh, :ww], dtype)
    return out


def render_frames(
    strokes: Tensor,
    height: int,
    width: int,
    background: Sequence[float] | Tensor,
    marks: Sequence[int],
    texture: sk.Bristles | None = None,
) -> np.ndarray:
    """The picture after the first ``k`` strokes for each ``k`` in ``marks`` (sorted, unique, 0..K), as uint8
    ``(F, H, W, C)``: one pass over the strokes on one canvas (meant for animation sizes, not for 4096 px),
    with the brush ``texture`` (``None``: plain strokes)."""
    strokes = clamp_strokes(strokes)
    C = strokes.shape[1] - len(STROKE_FIELDS)
    marks = sorted(set(int(k) for k in marks))
    if not marks or marks[0] < 0 or marks[-1] > strokes.shape[0]:
        raise ValueError(f"marks must lie in 0..{strokes.shape[0]}, got {marks[:3]}...{marks[-3:]}")
    bg = torch.as_tensor(background, dtype=strokes.dtype, device=strokes.device).reshape(-1)
    nb_y, nb_x = -(-height // sk.BLOCK), -(-width // sk.BLOCK)
    canvas = bg[:, None, None].expand(C, nb_y * sk.BLOCK, nb_x * sk.BLOCK).contiguous()
    frames: list[np.ndarray] = []
    grab = lambda k, c: frames.append(_to_numpy(c[:, :height, :width], np.uint8))  # noqa: ARG005
    prm = to_pixels(strokes, height, width)
    composite_region(canvas, prm, strokes[:, 10:], (0, 0), nb_x, marks, grab, texture=texture)
    return np.stack(frames)


def _to_numpy(canvas: Tensor, dtype: type) -> np.ndarray:
    """``(C, h, w)`` in [0, 1] -> ``(h, w, C)`` NumPy float32, or uint8 rounded as :func:`paintrnn.media.to_uint8`."""
    img = canvas.detach().permute(1, 2, 0).float().cpu().numpy()
    if dtype == np.uint8:
        return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return img
