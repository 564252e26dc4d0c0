"""Scenes to read with attention: cluttered MNIST and rows of several digits, batched and seeded.

Two kinds of scene, both made from MNIST digits ``(B, C, 28, 28)`` (uint8 or float: pieces are combined by a
pixelwise maximum), drawing every random number from one ``torch.Generator`` so that a seed fixes the scenes
(the test scenes of a benchmark are a seed):

- :func:`cluttered`: the papers' cluttered translated MNIST (Mnih et al. 2014, Gregor et al. 2015). The digit
  is put at a uniformly random place on a ``canvas x canvas`` black image, and ``clutter`` distractors, each a
  ``fragment x fragment`` piece cut at a random place from another random digit, at random places; a distractor
  never covers the centre of the target digit (the central 2 x 2 pixels of its 28 x 28 box). The two tasks of
  the papers are :data:`CLUTTERED`: 60 x 60 with 4 distractors and 100 x 100 with 8.
- :func:`digit_rows`: a row of 2 to 5 digits (the multi-digit task of Ba et al. 2014, with MNIST digits standing
  in for house numbers), each scaled by a random factor, separated by random gaps, optionally among clutter,
  labelled by the digit string.

Pixel convention: box ``(x0, y0, x1, y1)`` in pixels, ``x1`` / ``y1`` exclusive for the digit boxes of a row
(they are fractional after scaling), inclusive for the integer box of a cluttered digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

END = 10
"""The end-of-sequence symbol of a digit row (after the digits 0-9)."""
N_SYMBOLS = 11
"""Digits 0-9 and :data:`END`."""


@dataclass(frozen=True)
class ClutterSpec:
    """One cluttered-MNIST task: the canvas and its distractors."""

    canvas: int
    """Canvas width and height in pixels."""
    clutter: int
    """Distractor pieces cut from other digits."""
    fragment: int = 8
    """Width of each distractor piece in pixels."""


CLUTTERED = {"cluttered60": ClutterSpec(60, 4), "cluttered100": ClutterSpec(100, 8)}
"""The papers' cluttered tasks: RAM's 60 x 60 with 4 distractors, RAM's and DRAW's 100 x 100 with 8."""


@dataclass(frozen=True)
class RowSpec:
    """The multi-digit task: a row of digits on a ``height x width`` canvas."""

    height: int = 32
    """Canvas height in pixels."""
    width: int = 128
    """Canvas width in pixels."""
    min_digits: int = 2
    """Fewest digits in a row."""
    max_digits: int = 5
    """Most digits in a row."""
    min_scale: float = 0.6
    """Smallest digit scale: its 28 x 28 box becomes 28 x scale pixels wide."""
    max_scale: float = 0.8
    """Largest digit scale."""
    min_gap: float = -4.0
    """Smallest gap between neighbouring digit boxes, pixels (negative: the boxes overlap; MNIST boxes have empty
    borders)."""
    max_gap: float = 2.0
    """Largest gap between neighbouring digit boxes, pixels."""
    jitter: float = 1.5
    """Each digit's vertical offset from the row's centre line, uniform in +-jitter pixels."""
    clutter: int = 0
    """Distractor pieces cut from other digits, drawn under the row."""
    fragment: int = 8
    """Width of each distractor piece in pixels."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits} and {self.max_digits}")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {self.min_scale} and {self.max_scale}")
        if self.min_gap > self.max_gap:
            raise ValueError(f"need min_gap <= max_gap, got {self.min_gap} and {self.max_gap}")
        if self.jitter < 0 or self.clutter < 0:
            raise ValueError(f"jitter and clutter must be >= 0, got {self.jitter} and {self.clutter}")
        widest = self.max_digits * 28 * self.max_scale + (self.max_digits - 1) * max(self.max_gap, 0.0)
        if widest > self.width:
            raise ValueError(f"a row of {self.max_digits} digits can be {widest:.1f} pixels wide: more than the "
                             f"canvas width {self.width} (lower max_scale or max_gap, or widen it)")  # fmt: skip
        if 28 * self.max_scale + 2 * self.jitter > self.height:
            raise ValueError(f"digits up to {28 * self.max_scale:.1f} pixels high (+-{self.jitter} jitter) do not "
                             f"fit a canvas {self.height} pixels high")  # fmt: skip
        if self.clutter and not 1 <= self.fragment <= min(28, self.height, self.width):
            raise ValueError(f"fragment must lie in [1, {min(28, self.height, self.width)}], got {self.fragment}")


@dataclass(frozen=True)
class Rows:
    """A batch of digit rows from :func:`digit_rows`."""

    images: Tensor
    """The scenes ``(B, C, H, W)``, in the digits' dtype."""
    symbols: Tensor
    """What a reader emits ``(B, max_digits + 1)`` int64: the digits, then :data:`END`, then -1 (nothing)."""
    lengths: Tensor
    """Digits per row ``(B,)`` int64."""
    boxes: Tensor
    """Digit boxes ``(B, max_digits, 4)`` float ``(x0, y0, x1, y1)`` in pixels (zeros past the row's end)."""


def _ints(
    high: Tensor | int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform integers in ``[0, high)`` (``high`` an int or a tensor broadcast to ``shape``), on ``device``."""
    gen_dev = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, device=gen_dev, dtype=torch.float64).to(device)
    return (u * high).long()


def _uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> Tensor:  # fmt: skip
    gen_dev = generator.device if generator is not None else device
    return low + (high - low) * torch.rand(shape, generator=generator, device=gen_dev, dtype=torch.float64).to(device)


def _other(exclude: Tensor | None, n_pool: int, shape: tuple[int, ...], generator: torch.Generator | None,
           device: torch.device) -> Tensor:  # fmt: skip
    """Random pool indices ``shape = (B, ...)``, never equal to ``exclude[b]`` (when given and the pool has others)."""
    if exclude is None or n_pool < 2:
        return _ints(n_pool, shape, generator, device)
    skip = 1 + _ints(n_pool - 1, shape, generator, device)  # 1 .. n_pool - 1 past the excluded index
    return (exclude.view(-1, *[1] * (len(shape) - 1)) + skip) % n_pool


def _paste(out: Tensor, pieces: Tensor, top: Tensor, left: Tensor) -> None:
    """``out[b, :, top:top+f, left:left+f] = max(itself, pieces[b])`` in place, for ``pieces (B, C, f, f)``."""
    b, _, f, _ = pieces.shape
    ar = torch.arange(f, device=out.device)
    bidx = torch.arange(b, device=out.device)[:, None, None]
    rows, cols = (top[:, None] + ar)[:, :, None], (left[:, None] + ar)[:, None, :]  # (B, f, 1), (B, 1, f)
    view = out.permute(0, 2, 3, 1)  # (B, S, S, C), a view of out
    view[bidx, rows, cols] = torch.maximum(view[bidx, rows, cols], pieces.permute(0, 2, 3, 1))


def _cut(pool: Tensor, src: Tensor, top: Tensor, left: Tensor, f: int) -> Tensor:
    """Pieces ``(B, C, f, f)``: ``pool[src[b], :, top[b]:top[b]+f, left[b]:left[b]+f]``."""
    ar = torch.arange(f, device=pool.device)
    rows, cols = (top[:, None] + ar)[:, :, None], (left[:, None] + ar)[:, None, :]
    return pool.permute(0, 2, 3, 1)[src[:, None, None], rows, cols].permute(0, 3, 1, 2)


def _check_digits(name: str, digits: Tensor) -> None:
    if not torch.is_tensor(digits) or digits.ndim != 4:
        raise ValueError(f"{name} must be a (N, C, h, w) tensor, got {getattr(digits, 'shape', type(digits))}")


def cluttered(
    digits: Tensor,
    canvas: int,
    clutter: int,
    generator: torch.Generator | None = None,
    pool: Tensor | None = None,
    index: Tensor | None = None,
    fragment: int = 8,
    tries: int = 16,
) -> tuple[Tensor, Tensor]:
    """Cluttered translated MNIST: each digit of ``digits (B, C, h, w)`` at a random place on a black
    ``canvas x canvas`` image, ``clutter`` distractor pieces under it; returns the scenes ``(B, C, canvas, canvas)``
    and the digits' boxes ``(B, 4)`` int64 ``(x0, y0, x1, y1)`` (inclusive).

    The pieces (``fragment x fragment``, cut at a uniformly random place) come from random digits of ``pool``
    ``(N, C, h, w)`` (default: ``digits`` itself), never from ``pool[index[b]]`` when ``index`` (the digits' own
    rows of ``pool``, ``(B,)``) is given. Each piece lies at a uniformly random place among those that leave the
    digit's central 2 x 2 pixels uncovered (rejection sampling, ``tries`` candidates; if all fail, which needs
    ~1e-26 luck on a 60 x 60 canvas, the piece goes just left of the centre). Random numbers come from
    ``generator`` (on any device; the scenes land on the digits' device).
    """
    _check_digits("digits", digits)
    pool = digits if pool is None else pool
    _check_digits("pool", pool)
    b, c, h, w = digits.shape
    if pool.shape[1:] != digits.shape[1:]:
        raise ValueError(f"pool digits {tuple(pool.shape[1:])} differ from the digits {tuple(digits.shape[1:])}")
    if canvas < max(h, w):
        raise ValueError(f"canvas of {canvas} pixels is smaller than the {h}x{w} digits")
    if clutter < 0 or not 1 <= fragment <= (min(h, w) - 1) // 2:
        raise ValueError(f"need clutter >= 0 and 1 <= fragment <= {(min(h, w) - 1) // 2}, got {clutter}, {fragment}")
    if index is not None and index.shape != (b,):
        raise ValueError(f"index must hold the {b} digits' rows of the pool, got shape {tuple(index.shape)}")
    dev = digits.device
    out = torch.zeros(b, c, canvas, canvas, dtype=digits.dtype, device=dev)
    oy, ox = _ints(canvas - h + 1, (b,), generator, dev), _ints(canvas - w + 1, (b,), generator, dev)
    cy0, cx0 = oy + (h - 1) // 2, ox + (w - 1) // 2  # the central pixels: rows cy0, cy0 + 1 (h even), same for x
    cy1, cx1 = oy + h // 2, ox + w // 2
    for _ in range(clutter):
        src = _other(index, len(pool), (b,), generator, dev)
        fy, fx = _ints(h - fragment + 1, (b,), generator, dev), _ints(w - fragment + 1, (b,), generator, dev)
        py = _ints(canvas - fragment + 1, (b, tries), generator, dev)  # candidate places
        px = _ints(canvas - fragment + 1, (b, tries), generator, dev)
        covers = (py <= cy1[:, None]) & (py + fragment - 1 >= cy0[:, None])
        covers &= (px <= cx1[:, None]) & (px + fragment - 1 >= cx0[:, None])
        ok = ~covers
        first = ok.int().argmax(1)  # the first candidate that leaves the centre free (0 if none does)
        rows = torch.arange(b, device=dev)
        top, left = py[rows, first], px[rows, first]
        none = ~ok.any(1)
        left = torch.where(none, cx0 - fragment, left)  # fallback: right next to the centre, on its left
        top = torch.where(none, oy, top)
        _paste(out, _cut(pool, src, fy, fx, fragment), top, left)
    _paste_digit(out, digits, oy, ox)
    return out, torch.stack([ox, oy, ox + w - 1, oy + h - 1], dim=-1)


def _paste_digit(out: Tensor, digits: Tensor, top: Tensor, left: Tensor) -> None:
    b, _, h, w = digits.shape
    bidx = torch.arange(b, device=out.device)[:, None, None]
    rows = (top[:, None] + torch.arange(h, device=out.device))[:, :, None]
    cols = (left[:, None] + torch.arange(w, device=out.device))[:, None, :]
    view = out.permute(0, 2, 3, 1)
    view[bidx, rows, cols] = torch.maximum(view[bidx, rows, cols], digits.permute(0, 2, 3, 1))


def _bilinear(coords: Tensor, n: int) -> Tensor:
    """Bilinear interpolation weights ``(B, M, n)`` of positions ``coords`` ``(B, M)`` (in pixel indices of an
    ``n``-pixel axis, pixel ``q`` centred at ``q``); positions off the axis get the weights of zero padding."""
    pixels = torch.arange(n, device=coords.device, dtype=coords.dtype)
    return (1 - (coords[..., None] - pixels).abs()).clamp(min=0)


def digit_rows(
    pool: Tensor, labels: Tensor, batch: int, spec: RowSpec, generator: torch.Generator | None = None
) -> Rows:
    """``batch`` scenes of ``spec``: rows of random digits of ``pool`` ``(N, C, 28, 28)`` (labels ``(N,)``).

    Per scene: a length L uniform in ``[min_digits, max_digits]``; per digit a scale uniform in
    ``[min_scale, max_scale]`` and a gap to the next uniform in ``[min_gap, max_gap]``; the row starts at a
    uniformly random x where it fits and sits on a random centre line (each digit offset by up to ``jitter``).
    Digits are resampled bilinearly into their boxes (as ``grid_sample`` with zero padding would, as separable
    matrix products) and combined by a pixelwise maximum, over ``clutter`` distractor pieces cut from random
    digits. Float pools give float scenes; uint8 pools are resampled in float32 and rounded back to uint8.
    """
    _check_digits("pool", pool)
    if labels.shape != (len(pool),):
        raise ValueError(f"labels must be ({len(pool)},), got {tuple(labels.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n, c, h, w = pool.shape
    dev, k = pool.device, spec.max_digits
    big_h, big_w = spec.height, spec.width
    lengths = spec.min_digits + _ints(spec.max_digits - spec.min_digits + 1, (batch,), generator, dev)
    src = _ints(n, (batch, k), generator, dev)
    size = _uniform(spec.min_scale, spec.max_scale, (batch, k), generator, dev) * w  # box sides (B, K)
    gaps = _uniform(spec.min_gap, spec.max_gap, (batch, k), generator, dev)
    jitter = _uniform(-spec.jitter, spec.jitter, (batch, k), generator, dev)
    present = torch.arange(k, device=dev) < lengths[:, None]  # (B, K)
    size = torch.where(present, size, torch.zeros_like(size))
    steps = size + torch.where(torch.arange(k, device=dev) < lengths[:, None] - 1, gaps, torch.zeros_like(gaps))
    x0 = torch.cumsum(steps, 1) - steps  # each box's left edge from the row's start
    total = steps.sum(1)  # (B,)
    start = _uniform(0.0, 1.0, (batch,), generator, dev) * (big_w - total).clamp(min=0)
    tallest = size.amax(1)
    room = (big_h - tallest - 2 * spec.jitter).clamp(min=0)  # (B,) where the centre line may go
    centre = tallest / 2 + spec.jitter + _uniform(0.0, 1.0, (batch,), generator, dev) * room
    left = start[:, None] + x0  # (B, K)
    top = centre[:, None] + jitter - size / 2
    dtype = pool.dtype if pool.is_floating_point() else torch.float32
    out = torch.zeros(batch, c, big_h, big_w, dtype=dtype, device=dev)
    if spec.clutter:
        f = spec.fragment
        for _ in range(spec.clutter):
            piece_src = _ints(n, (batch,), generator, dev)
            fy, fx = _ints(h - f + 1, (batch,), generator, dev), _ints(w - f + 1, (batch,), generator, dev)
            py, px = _ints(big_h - f + 1, (batch,), generator, dev), _ints(big_w - f + 1, (batch,), generator, dev)
            _paste(out, _cut(pool, piece_src, fy, fx, f).to(dtype), py, px)
    safe = size.clamp(min=1e-6).to(dtype)
    xs = torch.arange(big_w, device=dev, dtype=dtype) + 0.5  # pixel centres of the canvas
    ys = torch.arange(big_h, device=dev, dtype=dtype) + 0.5
    for j in range(k):  # bilinear resampling is separable: digit (h, w) -> canvas (H, W) is Ky @ digit @ Kx^T
        kx = _bilinear((xs - left[:, j, None].to(dtype)) / safe[:, j, None] * w - 0.5, w)  # (B, W, w)
        ky = _bilinear((ys - top[:, j, None].to(dtype)) / safe[:, j, None] * h - 0.5, h)  # (B, H, h)
        warped = ky[:, None] @ pool[src[:, j]].to(dtype) @ kx[:, None].transpose(-1, -2)  # (B, C, H, W)
        out = torch.maximum(out, warped * present[:, j].to(dtype)[:, None, None, None])
    if not pool.is_floating_point():
        out = out.round().clamp(0, 255).to(pool.dtype)
    digits = labels[src]  # (B, K)
    symbols = torch.full((batch, k + 1), -1, dtype=torch.int64, device=dev)
    symbols[:, :k] = torch.where(present, digits, symbols[:, :k])
    symbols[torch.arange(batch, device=dev), lengths] = END
    boxes = torch.stack([left, top, left + size, top + size], dim=-1) * present[..., None]
    return Rows(images=out, symbols=symbols, lengths=lengths, boxes=boxes.float())


def symbol_string(symbols: Sequence[int] | Tensor | np.ndarray) -> str:
    """The digit string of one emitted sequence: the digits before its first :data:`END` (or -1)."""
    out = []
    for s in (symbols.tolist() if hasattr(symbols, "tolist") else symbols):
        if s < 0 or s == END:
            break
        out.append(str(int(s)))
    return "".join(out)
