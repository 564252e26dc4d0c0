"""Datasets: MNIST (IDX files, download with checksums, a bundled offline sample), textures, image folders.

Where data lives: :func:`data_dir` is the ``root`` argument, else ``$PAINTRNN_DATA``, else a per-user
cache (``$XDG_CACHE_HOME/paintrnn`` or ``~/.cache/paintrnn``). MNIST files are looked for in
``<data_dir>/mnist`` and ``<data_dir>`` itself, raw or gzipped. :func:`download_mnist` fetches the standard
files and checks their MD5 sums. An explicit ``root`` (``--data-dir``) that lacks the files is an error. With
no ``root`` and no files under ``$PAINTRNN_DATA`` or the cache, ``load_mnist(source="auto")`` falls back to
the small sample bundled in the package (MNIST by Y. LeCun and C. Cortes, CC BY-SA 3.0), announced by one
line on stderr, so defaults work offline; :func:`mnist_description` names what was read (for a run's
results); ``source="full"`` gives a clear error saying what to do instead.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MNIST_FILES = {  # name -> MD5 of the uncompressed file
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MNIST_FOLDERS = ("mnist", ".", "MNIST/raw")
"""Where under a data directory the MNIST files are looked for, in this order."""
SAMPLE_TRAIN_DIGITS = 2000
"""Training digits in the bundled sample (its test split holds 500)."""
_announced: set[str] = set()  # fallback messages this process has printed


class DataError(RuntimeError):
    """Data files are missing, corrupt or of the wrong kind."""


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root``, else ``$PAINTRNN_DATA``, else the per-user cache directory."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("PAINTRNN_DATA"):
        return Path(os.environ["PAINTRNN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "paintrnn"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``); truncated or malformed files raise :class:`DataError`."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc} (delete it and download again)") from exc
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header cut short)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path} is truncated or corrupt: {len(raw) - header} data bytes, header says {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_mnist_file(name: str, root: Path) -> Path | None:
    for folder in MNIST_FOLDERS:
        for candidate in (root / folder / name, root / folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _download_call(root: str | os.PathLike | None = None) -> str:
    return "paintrnn.data.download_mnist(" + ("" if root is None else repr(os.fspath(root))) + ")"


def _missing(base: Path, names: list[str], root: str | os.PathLike | None) -> str:
    """The one-line message for MNIST files missing under ``base``: what, where, how to get them."""
    folders = ", ".join(str(base) if f == "." else str(base / f) for f in MNIST_FOLDERS)
    what = "the MNIST files" if len(names) == len(MNIST_FILES) else "MNIST file(s)"
    return (
        f"{what} {', '.join(names)} (raw or .gz) not found in {folders}: {_download_call(root)} fetches them "
        "(needs the internet; see the data page of the docs, docs/data.md)"
    )


def find_mnist(root: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """Paths of the four MNIST files (raw or ``.gz``) under the data directory (:func:`data_dir`). An explicit
    ``root`` that lacks any of them is a :class:`DataError` naming the missing files and where they were looked
    for; without ``root``, None when ``$PAINTRNN_DATA`` or the per-user cache does not hold them all."""
    base = data_dir(root)
    found = {name: _find_mnist_file(name, base) for name in MNIST_FILES}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return found  # type: ignore[return-value]
    if root is not None:
        raise DataError(f"data dir {base}: {_missing(base, missing, root)}")
    return None


def download_mnist(root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download the standard MNIST files into ``<data_dir>/mnist`` and verify their MD5 sums."""
    target = data_dir(root) / "mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        dest = target / f"{name}.gz"
        if dest.is_file() and hashlib.md5(gzip.decompress(dest.read_bytes())).hexdigest() == md5:
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                if progress:
                    print(f"downloading {mirror}{name}.gz")
                with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=30) as resp:
                    blob = resp.read()
                if hashlib.md5(gzip.decompress(blob)).hexdigest() != md5:
                    raise DataError(f"checksum mismatch for {name} from {mirror}")
                tmp = dest.with_suffix(".part")
                tmp.write_bytes(blob)
                os.replace(tmp, dest)
                break
            except Exception as exc:  # network errors, bad gzip, checksum mismatch
                errors.append(f"{mirror}: {exc}")
        else:
            raise DataError(f"could not download {name} into {target}: " + "; ".join(errors))
    return target


def mnist_sample() -> dict[str, np.ndarray]:
    """The small MNIST sample bundled with the package (keys: train_images, train_labels, test_*)."""
    with resources.files("paintrnn").joinpath("assets/mnist_sample.npz").open("rb") as fh:
        with np.load(fh) as npz:
            return {k: npz[k] for k in npz.files}


def _resolve_mnist(
    root: str | os.PathLike | None, source: Literal["auto", "full", "sample"], download: bool = False
) -> dict[str, Path] | None:
    """The four MNIST files :func:`load_mnist` reads with these arguments, or None for the bundled sample."""
    if source not in ("auto", "full", "sample"):
        raise ValueError(f"source must be 'auto', 'full' or 'sample', got {source!r}")
    if source == "sample":
        return None
    base = data_dir(root)
    if download and any(_find_mnist_file(name, base) is None for name in MNIST_FILES):
        download_mnist(root)
    files = find_mnist(root)  # an explicit root without the files raises here
    if files is None and source == "full":
        raise DataError(f"source 'full': {_missing(base, list(MNIST_FILES), None)}")
    return files


def _announce_sample() -> None:
    """One line on stderr, once per process: the run reads the bundled sample, not the full MNIST."""
    env = os.environ.get("PAINTRNN_DATA")
    where = f"$PAINTRNN_DATA={env}" if env else str(data_dir())
    message = (
        f"paintrnn: no --data-dir given and no MNIST files in {where}: using the {SAMPLE_TRAIN_DIGITS:,}-digit "
        f"sample bundled with paintrnn ({_download_call()} fetches the full 60,000; see docs/data.md)"
    )
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr, flush=True)


def mnist_description(root: str | os.PathLike | None = None, source: Literal["auto", "full", "sample"] = "auto") -> str:
    """What :func:`load_mnist` reads with these arguments, for a run's config and results: ``"mnist (60000 digits)"``
    (the standard files; the count of their training split) or ``"mnist-sample (2000 digits)"`` (the bundled sample).
    Raises as :func:`load_mnist` does; announces nothing."""
    files = _resolve_mnist(root, source)
    if files is None:
        return f"mnist-sample ({SAMPLE_TRAIN_DIGITS} digits)"
    path = files["train-images-idx3-ubyte"]
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(8)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc} (delete it and download again)") from exc
    return f"mnist ({int.from_bytes(header[4:8], 'big')} digits)"


def check_mnist(images: np.ndarray, labels: np.ndarray, images_file: Path, labels_file: Path) -> None:
    """MNIST images must be ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8 digits 0-9; anything else is a
    one-line :class:`DataError` naming the file."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_file} holds {images.dtype} images of shape {images.shape}, but MNIST images are (N, 28, 28) "
            "uint8 (a wrong or damaged file: delete it and download again)"
        )
    if labels.dtype != np.uint8 or labels.shape != (images.shape[0],) or (labels.size and labels.max() > 9):
        raise DataError(
            f"{labels_file} holds {labels.dtype} labels of shape {labels.shape}, but the {images.shape[0]} images of "
            f"{images_file.name} need ({images.shape[0]},) uint8 digits 0-9 (a mismatched or damaged file)"
        )


def load_mnist(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike | None = None,
    source: Literal["auto", "full", "sample"] = "auto",
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64.

    ``source="full"`` needs the standard files (``download=True`` fetches them); ``"sample"`` is the bundled
    subset; ``"auto"`` uses the full files when present. An explicit ``root`` that lacks them is an error (it
    is never replaced by the sample); without ``root``, ``"auto"`` falls back to the sample when neither
    ``$PAINTRNN_DATA`` nor the cache holds the files, announced by one line on stderr. The files' shapes are
    checked (:func:`check_mnist`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    files = _resolve_mnist(root, source, download)
    if files is None:
        if source == "auto":
            _announce_sample()
        sample = mnist_sample()
        return sample[f"{split}_images"], sample[f"{split}_labels"].astype(np.int64)
    prefix = "train" if split == "train" else "t10k"
    images_file, labels_file = files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"]
    images, labels = read_idx(images_file), read_idx(labels_file)
    check_mnist(images, labels, images_file, labels_file)
    return images, labels.astype(np.int64)


def binarize_dynamic(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli sample of intensities ``x`` in [0, 1] (new each call: dynamic binarisation)."""
    if generator is not None and generator.device != x.device:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    else:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (u < x).to(x.dtype)


def binarize_fixed(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One Bernoulli sample drawn with a fixed seed: the same binary test set every time."""
    return binarize_dynamic(x, torch.Generator().manual_seed(seed))


def load_image(path: str | os.PathLike, channels: int = 1) -> np.ndarray:
    """An image file as uint8 ``(H, W, channels)`` (1 = grey, 3 = RGB); non-images are a clear error."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} is not a readable image file: {exc}") from exc
    return arr[..., None] if channels == 1 else arr


def load_image_folder(folder: str | os.PathLike, size: tuple[int, int], channels: int = 1) -> np.ndarray:
    """Every image in ``folder`` resized to ``size`` (H, W): uint8 ``(N, H, W, channels)``."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = []
    for p in paths:
        img = Image.fromarray(load_image(p, channels).squeeze(-1) if channels == 1 else load_image(p, channels))
        out.append(np.asarray(img.resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8))
    arr = np.stack(out)
    return arr[..., None] if channels == 1 else arr


def list_textures() -> list[str]:
    """Names of the CC0 textures bundled with the package."""
    folder = resources.files("paintrnn").joinpath("assets/textures")
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".png"))


def texture_path(name: str) -> Path:
    """Path of a bundled texture by name (``brick``, ``grass``), or of a user file if ``name`` is a path."""
    if Path(name).is_file():
        return Path(name)
    path = Path(str(resources.files("paintrnn").joinpath(f"assets/textures/{name}.png")))
    if not path.is_file():
        raise ValueError(f"unknown texture {name!r}: not a file, and the bundled ones are {list_textures()}")
    return path


def random_crops(image: np.ndarray, size: int, n: int, rng: np.random.Generator, flips: bool = True) -> np.ndarray:
    """``n`` random ``size x size`` crops of an ``(H, W, C)`` image, optionally flipped left-right."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image of {h}x{w} pixels is smaller than the {size}x{size} crop")
    ys = rng.integers(0, h - size + 1, n)
    xs = rng.integers(0, w - size + 1, n)
    crops = np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs)])
    if flips:
        flip = rng.random(n) < 0.5
        crops[flip] = crops[flip, :, ::-1]
    return crops


def build_mnist_sample(
    out: str | os.PathLike, root: str | os.PathLike | None = None, n_train: int = 2000, n_test: int = 500
) -> Path:
    """Write the bundled sample (the first ``n_train``/``n_test`` digits of each split) from the full files."""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = load_mnist(split, root, source="full")
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[:n], labels[:n].astype(np.uint8)
    out = Path(out)
    np.savez_compressed(out, **arrays)
    return out
