"""Reading the picture to paint: :func:`load_image` turns a file path, a PIL image, a NumPy array or a tensor into
a float32 ``(3, H, W)`` tensor of RGB values in [0, 1].

Any file Pillow opens is read: greyscale is repeated, palette and CMYK converted, 16-bit scaled by 65535,
transparency composited **on white**, EXIF rotation applied, the first frame of an animation taken. A picture
longer than ``max_side`` (4096) px is downscaled on loading, with a message on stderr. :func:`load_target` then
resizes it to the painting size: longer side ``size``, aspect kept (:func:`fit_size`). Bad input raises
:class:`PaintError`, a one-line ``ValueError`` (a missing file :class:`ImageNotFoundError`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

ImageLike = str | os.PathLike | np.ndarray | Image.Image | Tensor


# ----------------------------------------------------------------------------------------------- errors


class PaintError(ValueError):
    """Bad input to painting (file, option, format): the message is one line meant for the user."""


class ImageNotFoundError(PaintError, FileNotFoundError):
    """The picture file does not exist."""


def _note(message: str) -> None:
    print(f"paintrnn: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- input


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> ``(H, W, 3)`` float32 in [0, 1] (transparency composited on white)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "I":
            scale = 65535.0 if a.max(initial=0) > 255 else 255.0
        else:  # float: [0, 1] as it is, else 0..255
            scale = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(a / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # on white
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1|3|4)`` uint8/uint16/bool/float NumPy -> ``(H, W, 3)`` float32 in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise PaintError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    elif a.dtype == np.bool_:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise PaintError("the image array contains NaN or inf")
        f = np.clip(a.astype(np.float32), 0.0, 1.0)
    else:
        raise PaintError(f"an image array must be uint8, uint16, bool or float in [0, 1], got dtype {a.dtype}")
    if f.shape[2] == 4:
        f = f[..., :3] * f[..., 3:] + (1.0 - f[..., 3:])  # on white
    return np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f


def _open(path: Path, max_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (a JPEG larger than ``max_side`` decoded at a reduced scale) and its size in the file."""
    if not path.exists():
        raise ImageNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise PaintError(f"{path} is a folder, not an image file")
    try:
        img = Image.open(path)
        size = img.size
        if max(size) > max_side:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale (>= the asked size)
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise PaintError(f"cannot read {path} as an image ({type(err).__name__}: {err})") from err
    return img, size


def load_image(source: ImageLike, max_side: int = 4096) -> Tensor:
    """A picture as a float32 ``(3, H, W)`` tensor in [0, 1] (conversions in the module docstring).

    ``source``: a file path, a PIL image, a NumPy array ``(H, W[, 1|3|4])`` (uint8, uint16, bool or float in
    [0, 1]) or a tensor ``(C, H, W)`` / ``(H, W)`` of floats in [0, 1]. A picture longer than ``max_side`` px is
    downscaled (antialiased) with a message on stderr. Errors: :class:`ImageNotFoundError`, :class:`PaintError`.
    """
    if isinstance(source, (str, os.PathLike)):
        img, (w0, h0) = _open(Path(source), max_side)
        arr, name = _pil_to_array(ImageOps.exif_transpose(img)), f"{source} ({w0}x{h0} px)"
    elif isinstance(source, Image.Image):
        arr, name = _pil_to_array(ImageOps.exif_transpose(source)), "the image"
    elif isinstance(source, np.ndarray):
        arr, name = _array_to_rgb(source), "the image array"
    elif isinstance(source, Tensor):
        t = source.detach().cpu()
        t = t[None] if t.ndim == 2 else t
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise PaintError(f"an image tensor must be (C, H, W) with C in 1, 3, 4, got shape {tuple(source.shape)}")
        arr, name = _array_to_rgb(t.permute(1, 2, 0).float().numpy()), "the image tensor"
    else:
        raise PaintError(f"cannot paint a {type(source).__name__}: give a file path, PIL image, array or tensor")
    image = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()  # (3, h, w)
    h, w = image.shape[1:]
    if max(h, w) > max_side:
        nh, nw = fit_size(h, w, max_side)
        _note(f"{name} is larger than {max_side} px; downscaled to {nw}x{nh}")
        image = resize(image, nh, nw)
    return image


def fit_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the longer side ``size`` and the aspect of ``height x width`` (each side >= 1)."""
    if height >= width:
        return size, max(1, round(size * width / height))
    return max(1, round(size * height / width)), size


def resize(image: Tensor, height: int, width: int) -> Tensor:
    """``(C, h, w)`` -> ``(C, height, width)``: area-like antialiased bilinear, clipped to [0, 1]."""
    if tuple(image.shape[1:]) == (height, width):
        return image.clone()
    out = F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp(0.0, 1.0)


def load_target(image: ImageLike, size: int, max_side: int = 4096) -> Tensor:
    """The picture to paint, ``(3, H, W)`` with the longer side ``size`` (:func:`load_image` then :func:`resize`)."""
    photo = load_image(image, max_side)
    return resize(photo, *fit_size(photo.shape[1], photo.shape[2], size))
