"""The multi-resolution glimpse sensor of the recurrent attention model (Mnih et al. 2014), batched.

A glimpse at location ``l = (x, y)`` in ``[-1, 1]^2`` (``(-1, -1)`` is the top-left corner of the image,
``(0, 0)`` its centre, ``(1, 1)`` the bottom-right corner) is ``k`` square patches centred on ``l``, the
first ``g`` pixels wide and each next one twice as wide as the one before, all brought down to ``g x g``
by average pooling and stacked along the channel axis: a retina sharp in the middle and coarse around.

Pixel convention: the centre of ``l`` in pixel units is ``cx = (x + 1) / 2 * W``, rounded to the nearest
pixel boundary; a patch of width ``s`` covers the pixels ``cx - s // 2 ... cx - s // 2 + s - 1`` (and the
same for rows). Even-width patches are therefore exactly centred on ``l`` (to within half a pixel), and
parts of a patch outside the image read as zeros. The crop is a gather from a zero-padded image, so one
call costs the same on any batch and works on CPU and CUDA alike.

:func:`soft_glimpse` is its differentiable twin: the same patches at pixel boundaries, read between them by
bilinear interpolation of the box-filtered image (:func:`box_pyramid`), so a loss on what a model saw has a
gradient with respect to where it looked (the readers' ``--locations pathwise``).

The module also makes the scenes the retina looks at: :func:`place_on_canvas` puts digits at random places on
a larger canvas, optionally among clutter made of random fragments of other digits (translated and cluttered
MNIST of the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(images: Tensor, loc: Tensor | None, size: int, scales: int, values: bool) -> None:
    """The arguments of a glimpse (``loc`` None: the images, size and scales alone)."""
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point, got dtype {images.dtype}")
    if loc is not None:
        if not torch.is_tensor(loc) or loc.shape != (images.shape[0], 2):
            raise ValueError(f"loc must have shape (B, 2) = ({images.shape[0]}, 2), got {getattr(loc, 'shape', loc)}")
        if values and not torch.isfinite(loc).all():
            raise ValueError("loc contains NaN or inf")
        if values and (loc.abs() > 1 + 1e-6).any():
            raise ValueError(f"loc must lie in [-1, 1]^2, got values up to {loc.abs().max().item():.3f}")
    if int(size) != size or size < 1:
        raise ValueError(f"glimpse size must be a positive integer, got {size}")
    if int(scales) != scales or scales < 1:
        raise ValueError(f"scales must be a positive integer, got {scales}")


def loc_to_pixels(loc: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The pixel boundaries ``(cx, cy)`` (each ``(B,)``, int64) nearest to locations ``loc`` ``(B, 2)``."""
    cx = torch.round((loc[:, 0].double() + 1) / 2 * width).long()
    cy = torch.round((loc[:, 1].double() + 1) / 2 * height).long()
    return cx, cy


def glimpse(images: Tensor, loc: Tensor, size: int, scales: int = 1, check_values: bool = True) -> Tensor:
    """Glimpses ``(B, scales * C, size, size)`` of ``images`` ``(B, C, H, W)`` at ``loc`` ``(B, 2)``.

    Channels ``[i * C, (i + 1) * C)`` hold patch ``i`` (width ``size * 2**i``) pooled down by ``2**i``.
    ``check_values=False`` skips the NaN/range check of ``loc`` (it waits for the GPU; callers that clip
    their locations use it in training loops; out-of-range locations then read zeros or clip at the pad).
    """
    _check(images, loc, size, scales, check_values)
    b, c, h, w = images.shape
    big = size * 2 ** (scales - 1)  # width of the widest patch
    pad = big // 2 + 1  # enough that every patch lies inside the padded image
    padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H + 2 pad, W + 2 pad)
    wp = w + 2 * pad
    cx, cy = loc_to_pixels(loc, h, w)
    ar = torch.arange(big, device=images.device)
    rows = (cy - big // 2 + pad)[:, None] + ar  # (B, P)
    cols = (cx - big // 2 + pad)[:, None] + ar  # (B, P)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, big * big).expand(b, c, big * big)
    widest = padded.flatten(2).gather(2, flat).view(b, c, big, big)  # (B, C, P, P)
    out = []
    for i in range(scales):
        s = size * 2**i
        off = big // 2 - s // 2
        patch = widest[:, :, off : off + s, off : off + s]  # (B, C, s, s)
        out.append(F.avg_pool2d(patch, 2**i) if i else patch)
    return torch.cat(out, dim=1)  # (B, k * C, g, g)


def _soft_pad(size: int, scales: int) -> int:
    """Zero padding of :func:`box_pyramid`: every sample point of a glimpse in ``[-1, 1]^2`` and its bilinear
    neighbours lie inside the padded image."""
    return size * 2 ** (scales - 1) // 2 + 2


def box_pyramid(images: Tensor, size: int, scales: int = 1) -> list[Tensor]:
    """What :func:`soft_glimpse` samples from: per scale ``i``, the images zero-padded by ``p`` pixels and
    box-filtered ``k = 2**i`` wide, ``(B, C, H + 2p - k + 1, W + 2p - k + 1)`` (``box[u]`` = the mean of padded
    pixels ``u .. u + k - 1``). Compute it once per image batch when reading several glimpses of it."""
    _check(images, None, size, scales, values=False)
    pad = _soft_pad(size, scales)
    padded = F.pad(images, (pad, pad, pad, pad))
    return [F.avg_pool2d(padded, 2**i, stride=1) if i else padded for i in range(scales)]


def soft_glimpse(
    images: Tensor, loc: Tensor, size: int, scales: int = 1, pyramid: list[Tensor] | None = None
) -> Tensor:
    """:func:`glimpse` made differentiable in ``loc``: the same patches ``(B, scales * C, size, size)``, read at the
    unrounded centre ``cx = (x + 1) / 2 * W`` by bilinear interpolation of the box-filtered image.

    At a location on a pixel boundary it equals :func:`glimpse` (to float rounding); between boundaries it blends
    the neighbouring glimpses, so a loss on what it sees has a gradient with respect to where it looks (for a
    pooled patch, as far as its pooling reaches). ``pyramid`` is :func:`box_pyramid` of ``images`` (computed here
    when None). ``loc`` is expected in ``[-1, 1]^2`` (no check: it waits for the GPU).
    """
    _check(images, loc, size, scales, values=False)
    b, _, h, w = images.shape
    if pyramid is None:
        pyramid = box_pyramid(images, size, scales)
    pad = _soft_pad(size, scales)
    cx = (loc[:, 0] + 1) / 2 * w + pad  # (B,) in padded pixel units, unrounded
    cy = (loc[:, 1] + 1) / 2 * h + pad
    steps = torch.arange(size, device=images.device, dtype=loc.dtype)  # (g,)
    out = []
    for i, box in enumerate(pyramid):
        k = 2**i
        hb, wb = box.shape[-2:]
        xs = cx[:, None] - size * k // 2 + k * steps  # (B, g) first pixel of each pooled cell
        ys = cy[:, None] - size * k // 2 + k * steps
        grid = torch.stack([(2 * xs / (wb - 1) - 1)[:, None, :].expand(b, size, size),
                            (2 * ys / (hb - 1) - 1)[:, :, None].expand(b, size, size)], -1)  # fmt: skip
        out.append(F.grid_sample(box, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
    return torch.cat(out, dim=1)  # (B, k * C, g, g)


def glimpse_boxes(loc: Tensor, height: int, width: int, size: int, scales: int = 1) -> Tensor:
    """Pixel boxes ``(B, scales, 4)`` = ``(x0, y0, x1, y1)`` (inclusive) of each patch, for drawing."""
    if loc.ndim != 2 or loc.shape[-1] != 2:
        raise ValueError(f"loc must have shape (B, 2), got {tuple(loc.shape)}")
    cx, cy = loc_to_pixels(loc, height, width)
    boxes = []
    for i in range(scales):
        s = size * 2**i
        x0, y0 = cx - s // 2, cy - s // 2
        boxes.append(torch.stack([x0, y0, x0 + s - 1, y0 + s - 1], dim=-1))
    return torch.stack(boxes, dim=1)  # (B, k, 4)


def place_on_canvas(
    digits: Tensor, canvas: int, clutter: int = 0, fragment: int = 8, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Put each ``(B, C, h, w)`` digit at a uniformly random place on a ``canvas x canvas`` black image.

    With ``clutter > 0``, that many ``fragment x fragment`` pieces cut at random from other digits of the
    batch are first scattered at random places (the digit is drawn over them by a pixelwise maximum).
    Returns the canvases ``(B, C, canvas, canvas)`` and the digits' top-left corners ``(B, 2)`` (x, y).
    Randomness comes from ``generator`` (on any device; the result lands on the digits' device).
    """
    if digits.ndim != 4:
        raise ValueError(f"digits must be (B, C, h, w), got shape {tuple(digits.shape)}")
    b, c, h, w = digits.shape
    if canvas < max(h, w):
        raise ValueError(f"canvas of {canvas} pixels is smaller than the {h}x{w} digits")
    if clutter < 0 or (clutter and not 1 <= fragment <= min(h, w)):
        raise ValueError(f"clutter must be >= 0 with 1 <= fragment <= {min(h, w)}, got {clutter}, {fragment}")
    dev = digits.device

    gen_dev = generator.device if generator is not None else dev

    def ints(high: int, *shape: int) -> Tensor:
        return torch.randint(0, high, shape, generator=generator, device=gen_dev).to(dev)

    out = torch.zeros(b, c, canvas, canvas, dtype=digits.dtype, device=dev)
    bidx = torch.arange(b, device=dev)[:, None, None]
    chw = out.permute(0, 2, 3, 1)  # (B, S, S, C), a view of out
    for _ in range(clutter):
        src = ints(b, b)  # which digit each fragment is cut from
        fy, fx = ints(h - fragment + 1, b), ints(w - fragment + 1, b)
        py, px = ints(canvas - fragment + 1, b), ints(canvas - fragment + 1, b)
        ar = torch.arange(fragment, device=dev)
        piece = digits.permute(0, 2, 3, 1)[
            src[:, None, None], (fy[:, None] + ar)[:, :, None], (fx[:, None] + ar)[:, None]
        ]
        rows, cols = (py[:, None] + ar)[:, :, None], (px[:, None] + ar)[:, None, :]
        chw[bidx, rows, cols] = torch.maximum(chw[bidx, rows, cols], piece)
    oy, ox = ints(canvas - h + 1, b), ints(canvas - w + 1, b)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]
    chw[bidx, rows, cols] = torch.maximum(chw[bidx, rows, cols], digits.permute(0, 2, 3, 1))
    return out, torch.stack([ox, oy], dim=-1)
