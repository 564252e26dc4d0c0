"""``paintrnn/Paint-v0``: stroke painting with continuous actions (Learning to Paint style).

Each step paints ``k`` quadratic Bézier strokes (``strokes_per_step``, default 1) with the renderer of
:mod:`paintrnn.render` (hard mode, exact anti-aliasing) onto a canvas that starts at ``background``. Big
batches switch to the compiled renderer once a background compile is ready (``render_backend``, see
:mod:`paintrnn.envs.renderer`).

## Action layout

``Box(-1, 1, (k * d,), float32)`` with ``d = 10 + C`` numbers per stroke, in the renderer's order; each
``a`` in [-1, 1] is clipped, then mapped affinely with ``u = (a + 1) / 2`` in [0, 1]:

| index in a stroke | field | value |
|---|---|---|
| 0, 1 | ``x0, y0`` start point | ``u`` (fraction of width / height; x right, y down) |
| 2, 3 | ``x1, y1`` control point | ``u`` |
| 4, 5 | ``x2, y2`` end point | ``u`` |
| 6, 7 | ``r0, r2`` radius at start / end | ``lo + (hi - lo) u``, ``radius_range = (lo, hi)``, of ``min(H, W)`` |
| 8, 9 | ``a0, a2`` opacity at start / end | ``lo + (hi - lo) u`` with ``opacity_range`` |
| 10.. | colour, ``C`` values | ``u`` |

:func:`actions_to_strokes` is that map as differentiable torch code, so a learner can backpropagate
through the soft renderer with exactly the environment's action semantics. Every stroke painted is
recorded (``sim.stroke_history(i)``) for SVG export and re-rendering at any resolution.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from paintrnn.render import STROKE_FIELDS, stroke_size

from .batched import NativeVectorEnv, SingleEnv
from .canvas import CanvasConfig, CanvasEnv
from .renderer import BACKENDS, StrokeRenderer


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    ok = len(value) == 2 and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    if not ok or not lo <= value[0] <= value[1] <= hi:
        raise ValueError(f"{name} must be (low, high) with {lo} <= low <= high <= {hi}, got {value!r}")


@dataclass(frozen=True, eq=False)
class StrokeConfig(CanvasConfig):
    """Options of the stroke environments (on top of the shared canvas options)."""

    radius_range: tuple[float, float] = (0.01, 0.1)
    """Brush radius range, as a fraction of the canvas's shorter side (renderer limit: 0.5)."""
    background: float = 0.0
    """Grey level of the blank canvas, in [0, 1] (0 = black, as MNIST's background)."""
    render_backend: Literal["auto", "eager", "compiled"] = "auto"
    """Renderer: 'auto' (eager; big batches switch to torch.compile, ~3x faster, once a background compile is
    ready: repeatable to float rounding only), 'eager' (never compiles) or 'compiled' (compiles at the first step,
    in the foreground). 'eager' and 'compiled' repeat runs bit for bit (paintrnn.envs.renderer)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("radius_range", self.radius_range, 0.0, 0.5)
        if not (isinstance(self.background, int | float) and 0.0 <= self.background <= 1.0):
            raise ValueError(f"background must be a number in [0, 1], got {self.background!r}")
        if self.render_backend not in BACKENDS:
            raise ValueError(f"render_backend must be one of {BACKENDS}, got {self.render_backend!r}")


@dataclass(frozen=True, eq=False)
class PaintConfig(StrokeConfig):
    """Options of ``paintrnn/Paint-v0``."""

    strokes_per_step: int = 1
    """Strokes k painted per step (the action holds k * (10 + C) numbers)."""
    opacity_range: tuple[float, float] = (0.0, 1.0)
    """Opacity range of the strokes' ends."""

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.strokes_per_step
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"strokes_per_step must be a positive int, got {k!r}")
        _check_range("opacity_range", self.opacity_range, 0.0, 1.0)


def actions_to_strokes(
    actions: Tensor,
    channels: int,
    radius_range: tuple[float, float] = (0.01, 0.1),
    opacity_range: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Paint-v0's action map: ``(..., k * (10 + C))`` in [-1, 1] -> renderer strokes ``(..., k, 10 + C)``.

    Actions are clipped to [-1, 1] (zero gradient outside: feed it ``tanh`` outputs when training).
    """
    d = stroke_size(channels)
    if actions.shape[-1] % d:
        raise ValueError(f"the last action dim must be a multiple of 10 + C = {d}, got shape {tuple(actions.shape)}")
    u = (actions.clamp(-1.0, 1.0).unflatten(-1, (actions.shape[-1] // d, d)) + 1) / 2  # (..., k, d) in [0, 1]
    (r_lo, r_hi), (a_lo, a_hi) = radius_range, opacity_range
    radius = r_lo + (r_hi - r_lo) * u[..., 6:8]
    opacity = a_lo + (a_hi - a_lo) * u[..., 8:10]
    return torch.cat([u[..., :6], radius, opacity, u[..., 10:]], dim=-1)


class StrokeEnv(CanvasEnv):
    """A canvas painted with renderer strokes; keeps every episode's strokes for SVG and re-rendering."""

    config: StrokeConfig

    @property
    def strokes_per_step(self) -> int:
        """Stroke slots per step in the history."""
        return getattr(self.config, "strokes_per_step", 1)

    def __init__(self, num_envs: int, render_mode: str | None = None, **options) -> None:
        super().__init__(num_envs, render_mode, **options)
        cfg = self.config
        self.canvas.fill_(cfg.background)
        slots = cfg.max_steps * self.strokes_per_step
        self.history = torch.zeros(num_envs, slots, stroke_size(cfg.channels), device=self.device)
        self.renderer = StrokeRenderer(cfg.render_backend)  # eager first, compiled when it pays (envs.renderer)

    @abstractmethod
    def _strokes(self, actions: Tensor) -> tuple[Tensor, np.ndarray]:
        """Strokes ``(N, k, 10 + C)`` for validated actions, and the number that paint ``(N,)``."""

    def _reset_canvas(self, mask: Tensor) -> None:
        self.canvas[mask] = self.config.background
        self.history[mask] = 0.0

    def _paint(self, actions: Tensor) -> np.ndarray:
        strokes, drawn = self._strokes(actions)  # (N, k, 10 + C)
        self.canvas = self.renderer(strokes, self.canvas)
        k = strokes.shape[1]
        step = np.minimum(self.steps, self.config.max_steps - 1)  # ended sub-envs (about to reset) write anywhere
        slots = torch.from_numpy(step[:, None] * k + np.arange(k)).to(self.device)  # (N, k)
        rows = torch.arange(self.num_envs, device=self.device)[:, None]
        self.history[rows, slots] = strokes
        return drawn

    def stroke_history(self, index: int = 0) -> Tensor:
        """The strokes sub-env ``index`` painted this episode, in order: ``(K, 10 + C)`` (invisible ones dropped)."""
        count = int(self.steps[index]) * self.strokes_per_step
        strokes = self.history[index, :count]
        return strokes[(strokes[:, 8:10] > 0).any(1)]


class PaintSim(StrokeEnv):
    """Batched simulator of ``paintrnn/Paint-v0`` (see the module docstring)."""

    config_class = PaintConfig
    config: PaintConfig

    def __init__(self, num_envs: int, render_mode: str | None = None, **options) -> None:
        super().__init__(num_envs, render_mode, **options)
        cfg = self.config
        d = stroke_size(cfg.channels)
        self.single_action_space = spaces.Box(-1.0, 1.0, (cfg.strokes_per_step * d,), np.float32)
        fields = STROKE_FIELDS + tuple(f"c{c}" for c in range(cfg.channels))
        self.action_fields = tuple(f"stroke {s} {f}" for s in range(cfg.strokes_per_step) for f in fields)

    def _strokes(self, actions: Tensor) -> tuple[Tensor, np.ndarray]:
        cfg = self.config
        strokes = actions_to_strokes(actions, cfg.channels, cfg.radius_range, cfg.opacity_range)
        return strokes, np.full(self.num_envs, cfg.strokes_per_step, np.int64)


class PaintEnv(SingleEnv):
    """``paintrnn/Paint-v0`` as a single ``gymnasium.Env``."""

    simulator = PaintSim


class PaintVectorEnv(NativeVectorEnv):
    """``paintrnn/Paint-v0`` as a native batched ``gymnasium.vector.VectorEnv``."""

    simulator = PaintSim
