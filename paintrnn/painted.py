"""The result of painting, :class:`Painting`: strokes in the layout of :mod:`paintrnn.render` (normalised,
resolution-free) that render at any size, tile by tile (:meth:`Painting.render`), and write PNG, GIF (coarse to
fine), SVG and ``strokes.json`` (:data:`JSON_FORMAT`, version :data:`JSON_VERSION`, read back by
:meth:`Painting.load`). :func:`get_brush` is a brush by name, an unknown one a :class:`~paintrnn.picture.PaintError`.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from paintrnn import brushes
from paintrnn.brushes import Brush
from paintrnn.picture import ImageNotFoundError, PaintError, fit_size
from paintrnn.render import STROKE_FIELDS
from paintrnn.svg import strokes_to_svg
from paintrnn.tiles import TILE, render_frames, render_tiled

JSON_FORMAT = "paintrnn-strokes"
JSON_VERSION = 1
CHANNELS = 3
_STROKE = len(STROKE_FIELDS) + CHANNELS  # 13 numbers per RGB stroke


def get_brush(name: str) -> Brush:
    """The brush called ``name`` (:func:`paintrnn.brushes.get_brush`); an unknown name is a :class:`PaintError`."""
    try:
        return brushes.get_brush(name)
    except brushes.UnknownBrushError as err:
        raise PaintError(str(err)) from None


def _short(v: float) -> float:
    """The float64 with the shortest decimal text that reads back as the float32 ``v``."""
    short = float(repr(np.float32(v)).removeprefix("np.float32(").removesuffix(")"))
    return short if np.float32(short) == np.float32(v) else float(np.float32(v))


@dataclass
class Painting:
    """Strokes that paint a picture, resolution-free: ``strokes`` ``(K, 13)`` in the layout of
    :mod:`paintrnn.render` (normalised to the picture: x by its width, y by its height, radius by its shorter
    side), composited in order onto ``background``. ``width x height`` gives the aspect (and the size the
    strokes were made at); ``levels`` the strokes of each pyramid level, coarse to fine."""

    strokes: Tensor
    width: int
    height: int
    background: tuple[float, ...] = (1.0, 1.0, 1.0)
    brush: str = "round"
    levels: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.strokes, dtype=torch.float32).detach().cpu()
        if s.ndim != 2 or s.shape[1] != _STROKE:
            raise PaintError(f"strokes must be (K, {_STROKE}), got shape {tuple(s.shape)}")
        if not bool(torch.isfinite(s).all()):
            raise PaintError("strokes contain NaN or inf")
        self.strokes = s
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PaintError(f"{name} must be a positive integer, got {v!r}")
        if len(self.background) != CHANNELS or not all(math.isfinite(float(v)) for v in self.background):
            raise PaintError(f"background must be {CHANNELS} finite values, got {self.background!r}")
        self.background = tuple(_short(min(max(float(v), 0.0), 1.0)) for v in self.background)  # float32 values
        get_brush(self.brush)
        if self.levels and sum(self.levels) != len(s):
            raise PaintError(f"levels {self.levels} do not add up to the {len(s)} strokes")

    def __len__(self) -> int:
        return self.strokes.shape[0]

    def size_at(self, size: int | None = None) -> tuple[int, int]:
        """``(H, W)`` of a rendering whose longer side is ``size`` (``None``: the painting's own size)."""
        if size is None:
            return self.height, self.width
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise PaintError(f"size must be a positive integer, got {size!r}")
        return fit_size(self.height, self.width, size)

    def render(
        self, size: int | None = None, *, dtype: type = np.float32, tile: int = TILE, backend: str = "auto"
    ) -> np.ndarray:
        """The painting as ``(H, W, 3)`` NumPy (float32 in [0, 1], or uint8) with the longer side ``size``,
        rendered tile by tile in bounded memory (:func:`paintrnn.tiles.render_tiled`: ``backend`` "auto"
        compiles the alpha kernel from 1024 x 1024 px; "eager" is bit-exact with the renderer)."""
        H, W = self.size_at(size)
        texture = get_brush(self.brush).texture
        return render_tiled(
            self.strokes, H, W, self.background, tile=tile, dtype=dtype, backend=backend, texture=texture
        )

    def save_png(self, path: str | os.PathLike, size: int | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.render(size, dtype=np.uint8)).save(path)
        return path

    def frame_marks(self, max_frames: int = 60) -> list[int]:
        """Stroke counts at which the animation shows the picture: 0, every level's end, and counts spaced
        quadratically (more frames early, where the strokes are large), ``max_frames`` at most."""
        K = len(self)
        bounds = list(np.cumsum(self.levels)) if self.levels else [K]
        for n in range(max_frames, 1, -1):
            marks = sorted({0, K, *(int(b) for b in bounds), *(round(K * (i / n) ** 2) for i in range(n + 1))})
            if len(marks) <= max_frames:
                return marks
        return sorted({0, K})[:max_frames]

    def frames(self, size: int | None = 512, max_frames: int = 60) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 pictures of the painting process (see :meth:`frame_marks`), longer side
        ``min(size, the painting's)``."""
        H, W = self.size_at(min(size or max(self.height, self.width), max(self.height, self.width)))
        marks, texture = self.frame_marks(max_frames), get_brush(self.brush).texture
        return render_frames(self.strokes, H, W, self.background, marks, texture)

    def save_gif(
        self,
        path: str | os.PathLike,
        size: int = 512,
        max_frames: int = 60,
        max_bytes: int = 8_000_000,
        frame_ms: int = 80,
        hold_ms: int = 2000,
    ) -> Path:
        """An animated GIF of the painting process, coarse to fine, that loops; at most ``max_frames`` frames
        and ``max_bytes`` bytes (fewer frames, then a smaller size, until it fits). One palette (median cut of
        the last frame) serves every frame, without dithering, so unchanged areas compress away."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames_n, side = max_frames, min(size, max(self.height, self.width))
        while True:
            data = _gif_bytes(self.frames(side, frames_n), frame_ms, hold_ms)
            if len(data) <= max_bytes or (frames_n <= 2 and side <= 16):
                break
            if frames_n > 8 or side <= 16:  # fewer frames first, then a smaller picture, then the fewest frames
                frames_n = max(2, frames_n // 2)
            else:
                side = max(16, side * 3 // 4)
        path.write_bytes(data)
        return path

    def svg(self) -> str:
        """The painting as SVG: one quadratic Bézier path per stroke (:func:`paintrnn.svg.strokes_to_svg`; a
        textured brush's stroke: its bands), ``viewBox`` the painting's size; exact up to anti-aliasing for
        plain brushes without taper."""
        texture = get_brush(self.brush).texture
        return strokes_to_svg(self.strokes, self.height, self.width, background=self.background, texture=texture)

    def save_svg(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.svg())
        return path

    def to_dict(self) -> dict[str, Any]:
        """The ``strokes.json`` content (numbers: the shortest text that reads back as the same float32)."""
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "width": self.width,
            "height": self.height,
            "background": [_short(v) for v in self.background],
            "brush": self.brush,
            "fields": [*STROKE_FIELDS, *(f"c{i}" for i in range(CHANNELS))],
            "levels": list(self.levels),
            "info": self.info,
            "strokes": [[_short(v) for v in row] for row in self.strokes.numpy().tolist()],
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write ``strokes.json``: everything needed to re-render at any size (:meth:`load`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = {k: v for k, v in self.to_dict().items() if k != "strokes"}
        rows = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in self.to_dict()["strokes"])
        text = json.dumps(head, indent=1)[:-2] + ',\n "strokes": [\n' + rows + "\n ]\n}\n"
        path.write_text(text)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "strokes.json") -> Painting:
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise PaintError(f"{source} is not a paintrnn strokes file (format {JSON_FORMAT!r})")
        if data.get("version") != JSON_VERSION:
            raise PaintError(f"{source} has version {data.get('version')!r}; this paintrnn reads {JSON_VERSION}")
        fields = [*STROKE_FIELDS, *(f"c{i}" for i in range(CHANNELS))]
        if data.get("fields") != fields:
            raise PaintError(f"{source}: stroke fields must be {fields}, got {data.get('fields')!r}")
        try:
            rows = np.asarray(data["strokes"], dtype=np.float32).reshape(-1, _STROKE)
            return cls(
                strokes=torch.from_numpy(rows),
                width=data["width"],
                height=data["height"],
                background=tuple(float(v) for v in data["background"]),
                brush=str(data.get("brush", "round")),
                levels=tuple(int(v) for v in data.get("levels", ())),
                info=dict(data.get("info", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, PaintError):
                raise PaintError(f"{source}: {err}") from err
            raise PaintError(f"{source} is malformed ({type(err).__name__}: {err})") from err

    @classmethod
    def load(cls, path: str | os.PathLike) -> Painting:
        """Read a ``strokes.json`` written by :meth:`save_json`."""
        path = Path(path)
        if not path.is_file():
            raise ImageNotFoundError(f"no such strokes file: {path}")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PaintError(f"{path} is not valid JSON ({err})") from err
        return cls.from_dict(data, str(path))

    def save(self, folder: str | os.PathLike, gif_size: int = 512) -> dict[str, Path]:
        """Write ``painting.png``, ``painting.gif``, ``painting.svg`` and ``strokes.json`` into ``folder``."""
        folder = Path(folder)
        return {
            "png": self.save_png(folder / "painting.png"),
            "gif": self.save_gif(folder / "painting.gif", size=gif_size),
            "svg": self.save_svg(folder / "painting.svg"),
            "json": self.save_json(folder / "strokes.json"),
        }


def _gif_bytes(frames: np.ndarray, frame_ms: int, hold_ms: int) -> bytes:
    """GIF bytes of ``(F, H, W, 3)`` uint8 frames with one shared palette, looping forever."""
    palette = Image.fromarray(frames[-1]).quantize(256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    step = max(20, round(frame_ms / 10) * 10)
    durations = [step] * len(images)
    durations[-1] = step + max(0, round(hold_ms / 10) * 10)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buf.getvalue()
