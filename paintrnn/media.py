"""Pictures for people: animated GIFs, PNG grids, boxes over frames.

Frames are NumPy arrays ``(T, H, W)`` (grey) or ``(T, H, W, 3)`` (RGB), uint8, or floats in [0, 1].
GIF timing is in milliseconds (imageio v3) and stored in 10 ms units, so durations are rounded to 10 ms.
Pillow merges identical consecutive frames into one, adding up their durations: the frame count of the
written file can be smaller than ``T`` while the total play time stays ``T x duration``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw


def to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 unchanged; floats clipped to [0, 1] and scaled to 0..255. Accepts torch tensors too."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise ValueError("images contain NaN or inf")
    return (np.clip(images, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = to_uint8(frames)
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if not (frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] == 3)):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, 3), got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("no frames to write")
    return frames


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of the two spatial axes of ``(..., H, W[, 3])`` images."""
    if factor == 1:
        return images
    rgb = images.ndim >= 3 and images.shape[-1] == 3
    h_axis = images.ndim - (3 if rgb else 2)
    return images.repeat(factor, axis=h_axis).repeat(factor, axis=h_axis + 1)


def write_gif(
    path: str | os.PathLike,
    frames: np.ndarray,
    duration_ms: float = 80,
    hold_last_ms: float = 1000,
    scale: int = 1,
) -> Path:
    """Write an animated GIF that loops forever; the last frame is held ``hold_last_ms`` longer."""
    frames = upscale(_check_frames(frames), scale)
    step = max(10, int(round(duration_ms / 10)) * 10)
    durations = [step] * len(frames)
    durations[-1] = step + max(0, int(round(hold_last_ms / 10)) * 10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, extension=".gif", duration=durations, loop=0)
    return path


def image_grid(
    images: np.ndarray | Sequence[np.ndarray], nrow: int | None = None, pad: int = 2, pad_value: int = 128
) -> np.ndarray:
    """Tile ``(N, H, W[, 3])`` images into one ``(rows*H, cols*W[, 3])`` uint8 image, ``nrow`` per row."""
    images = to_uint8(np.stack(list(images)) if not isinstance(images, np.ndarray) else images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n, h, w = images.shape[:3]
    cols = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *images.shape[3:]), pad_value, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return grid


def grid_frames(videos: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``(N, T, H, W[, 3])`` clips into ``(T, ...)`` frames of a grid."""
    videos = to_uint8(videos)
    return np.stack([image_grid(videos[:, t], nrow, pad) for t in range(videos.shape[1])])


def save_png(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = upscale(to_uint8(image), scale)
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(path)
    return path


def save_grid(path: str | os.PathLike, images: np.ndarray, nrow: int | None = None, scale: int = 1) -> Path:
    """Write ``(N, H, W[, 3])`` images as one PNG grid."""
    return save_png(path, image_grid(images, nrow), scale)


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, colours: Sequence[tuple[int, int, int]] = ((255, 64, 64),), width: int = 1
) -> np.ndarray:
    """Draw ``(K, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels onto an image; returns RGB uint8 ``(H, W, 3)``."""
    image = to_uint8(image)
    rgb = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image
    pil = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(pil)
    for k, box in enumerate(np.asarray(boxes, dtype=float).reshape(-1, 4)):
        if np.isfinite(box).all():
            draw.rectangle([float(v) for v in box], outline=tuple(colours[k % len(colours)]), width=width)
    return np.asarray(pil)


def side_by_side(*images: np.ndarray, pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """Concatenate same-height images left to right (grey ones become RGB if any is RGB)."""
    images = [to_uint8(im) for im in images]
    if any(im.ndim == 3 for im in images):
        images = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images]
    h = images[0].shape[0]
    sep = np.full((h, pad, *images[0].shape[2:]), pad_value, np.uint8)
    out = [images[0]]
    for im in images[1:]:
        out += [sep, im]
    return np.concatenate(out, axis=1)
