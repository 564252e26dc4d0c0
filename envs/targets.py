"""Target images for conditional painting, drawn per reset with the sub-environment's own generator.

A target source is given to an environment as ``target=``:

* ``"mnist"`` (or ``"mnist:test"``): MNIST digits through :func:`paintrnn.data.load_mnist` with
  ``source="auto"`` (the full files under ``data_dir`` when present, else the bundled sample, with one
  warning), upscaled bilinearly to the canvas size;
* ``"texture:<name>"``: random canvas-sized crops (and left-right flips) of a bundled texture
  (``brick``, ``grass``) or of an image file given by path;
* ``"folder:<path>"`` (or the path of a directory): every image in the folder, resized to the canvas;
* a NumPy array ``(M, h, w)`` or ``(M, h, w, c)``, uint8 or floats in [0, 1], resized to the canvas;
* ``None``: no target (unconditional painting, ``reward="none"``).

Images are converted to the canvas's channels (grey <-> RGB) and returned as uint8 ``(H, W, C)``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from paintrnn.data import load_image, load_image_folder, load_mnist, texture_path

TargetSpec = str | os.PathLike | np.ndarray | None


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``(h, w, c)`` uint8 with c in (1, 3) -> ``(h, w, channels)``; RGB to grey uses PIL's luma weights."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return np.asarray(Image.fromarray(image).convert("L"), dtype=np.uint8)[..., None]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a uint8 ``(h, w, c)`` image to ``(height, width, c)``."""
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    return out.reshape(height, width, image.shape[-1])


CACHE_BYTES = 512 * 2**20
"""Resized targets are kept when all of a source's images fit in this many bytes (filled on first use)."""


class TargetSource:
    """A set of images, each drawn with ``sample(rng)`` as uint8 ``(height, width, channels)``."""

    def __init__(self, images: np.ndarray, height: int, width: int, channels: int) -> None:
        """``images``: uint8 ``(M, h, w, c)`` (c in 1, 3); resized and converted lazily, one per sample.

        Each image is converted once and kept (``CACHE_BYTES`` allows), so a reset costs a copy, not a resize.
        """
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
            raise ValueError(f"target images must be uint8 (M > 0, h, w, 1 or 3), got {images.dtype} {images.shape}")
        self.images, self.height, self.width, self.channels = images, height, width, channels
        shape = (len(images), height, width, channels)
        self._cache = np.zeros(shape, np.uint8) if np.prod(shape) <= CACHE_BYTES else None  # pages come on use
        self._cached = np.zeros(len(images), bool)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        i = int(rng.integers(len(self.images)))
        if self._cache is None:
            return self._convert(i)
        if not self._cached[i]:
            self._cache[i], self._cached[i] = self._convert(i), True
        return self._cache[i].copy()

    def _convert(self, i: int) -> np.ndarray:
        return _resize(_to_channels(self.images[i], self.channels), self.height, self.width)


class TextureTarget(TargetSource):
    """Random ``height x width`` crops of one texture image, flipped left-right half of the time."""

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        (texture,) = self.images
        h, w = texture.shape[:2]
        y, x = int(rng.integers(0, h - self.height + 1)), int(rng.integers(0, w - self.width + 1))
        crop = texture[y : y + self.height, x : x + self.width]
        return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


@functools.lru_cache(maxsize=4)
def _mnist(split: str, root: str | None, height: int, width: int, channels: int) -> TargetSource:
    """One MNIST source per split and canvas shape, shared by environments (e.g. a ``SyncVectorEnv``'s)."""
    images, _ = load_mnist(split, root=root, source="auto")  # type: ignore[arg-type]
    images = images[..., None]
    images.setflags(write=False)  # shared between environments: never modified
    return TargetSource(images, height, width, channels)


def _array_images(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise ValueError(f"a target array must have shape (M, h, w) or (M, h, w, 1 or 3), got {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"a target array must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError("a float target array must be finite and within [0, 1]")
    return (array * 255 + 0.5).astype(np.uint8)


def make_target_source(
    spec: TargetSpec, height: int, width: int, channels: int, data_dir: str | os.PathLike | None = None
) -> TargetSource | None:
    """The target source for ``spec`` (see the module docstring), or ``None`` for no target."""
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    if isinstance(spec, np.ndarray):
        return TargetSource(_array_images(spec), height, width, channels)
    if not isinstance(spec, str | os.PathLike):
        raise ValueError(f"target must be a string, a path, an array or None, got {type(spec).__name__}")
    text = os.fspath(spec)
    if text in ("mnist", "mnist:train", "mnist:test"):
        split = "test" if text.endswith(":test") else "train"
        return _mnist(split, None if data_dir is None else os.fspath(data_dir), height, width, channels)
    if text.startswith("texture:"):
        image = _to_channels(load_image(texture_path(text[len("texture:") :]), 3), channels)
        h, w = image.shape[:2]
        if h < height or w < width:  # enlarge a small texture to cover the canvas
            scale = max(height / h, width / w)
            image = _resize(image, int(np.ceil(h * scale)), int(np.ceil(w * scale)))
        return TextureTarget(image[None], height, width, channels)
    folder = Path(text[len("folder:") :] if text.startswith("folder:") else text)
    if folder.is_dir():
        return TargetSource(load_image_folder(folder, (height, width), channels), height, width, channels)
    raise ValueError(
        f"unknown target {spec!r}: use 'mnist', 'mnist:test', 'texture:<name or image path>', "
        "'folder:<path>' (or a directory path), a NumPy array of images, or None"
    )
