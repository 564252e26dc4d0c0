"""``paintrnn/Draw-v0``: DRAW's write operation as an environment (Gregor et al. 2015, eqs. 18, 27-29).

Each step writes an ``N x N`` patch (per channel) through a Gaussian filterbank, exactly as a DRAW
decoder does, and adds it to the canvas in logit space::

    canvas_logits += write(patch, *filterbank(window_from_raw(params, H, W, N), N, H, W), gamma)

The observed canvas is ``sigmoid(canvas_logits)`` as uint8; the float logits stay available as
``env.unwrapped.sim.canvas_logits`` ``(N, C, H, W)``. See :mod:`paintrnn.attention` for the filterbank.

The logits are clipped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` (``1e4``) after every write, so they stay finite
whatever the actions (a few raw patches of ``3e38`` would otherwise overflow them to ``inf``, and
``inf - inf`` to NaN). Clipping, not rejecting: float32's sigmoid is exactly 0 or 1 long before ``+-1e4``
(beyond about ``+-104``), so the observation, the float canvas and the rewards are those of the unclipped sum;
only the hidden logits forget how far past saturation they were, and a DRAW decoder's canvas (tens of logits)
replays exactly.

## Action layout (``5 + C * N * N`` numbers)

| index | raw parameter | default map from ``a`` in [-1, 1] | range |
|---|---|---|---|
| 0 | ``g~x`` (grid centre x; -1 left edge, 1 right edge) | ``a`` | [-1, 1] |
| 1 | ``g~y`` (grid centre y) | ``a`` | [-1, 1] |
| 2 | ``log sigma^2`` (filter variance, px^2) | ``1 + 3 a`` | [-2, 4] |
| 3 | ``log delta~`` (stride; 0 = the grid spans the image) | ``-1.5 + 1.5 a`` | [-3, 0] |
| 4 | ``log gamma`` (write divides by ``gamma``) | ``2 a`` | [-2, 2] |
| 5.. | patch ``(C, N, N)``, row-major, added in logit space | ``patch_scale * a`` | +- ``patch_scale`` |

The default action space is ``Box(-1, 1, (5 + C N N,), float32)`` (actions outside are clipped), ready for
Stable-Baselines3. With ``raw_actions=True`` it is ``Box(-inf, inf)`` and the action *is* the raw
parameter vector, so a DRAW model's ``(window parameters, patch)`` can be replayed verbatim; a raw action
whose write is not finite raises ``ValueError`` and leaves the canvas untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from paintrnn.attention import filterbank, window_box, window_from_raw, write

from .batched import NativeVectorEnv, SingleEnv
from .canvas import CanvasConfig, CanvasEnv

LOGIT_LIMIT = 1e4
"""``canvas_logits`` are clipped to ``[-LOGIT_LIMIT, LOGIT_LIMIT]`` after each write (see the module docstring)."""
RAW_OFFSET = (0.0, 0.0, 1.0, -1.5, 0.0)
"""Offsets of the affine maps ``raw = offset + scale * a`` of the five window parameters."""
RAW_SCALE = (1.0, 1.0, 3.0, 1.5, 2.0)
"""Scales of the affine maps of the five window parameters."""
WINDOW_FIELDS = ("gx", "gy", "log_sigma2", "log_delta", "log_gamma")


@dataclass(frozen=True, eq=False)
class DrawConfig(CanvasConfig):
    """Options of ``paintrnn/Draw-v0`` (on top of the shared canvas options)."""

    max_steps: int = 16
    """Steps (writes) per episode."""
    n: int = 5
    """Side N of the written patch (the filterbank has N x N filters)."""
    raw_actions: bool = False
    """Actions are the raw DRAW parameters, Box(-inf, inf), instead of the [-1, 1] Box with affine maps."""
    canvas_init: float = 0.0
    """Initial canvas logit (0.0 as in DRAW: the canvas starts at sigmoid(0) = 0.5), within +-1e4."""
    patch_scale: float = 8.0
    """Patch values in logit units for actions of +-1, at most 1e4 (not used with raw_actions)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n must be a positive int, got {self.n!r}")
        for name in ("canvas_init", "patch_scale"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")
        limit = f"{LOGIT_LIMIT:g} (the logits' clip)"
        if not 0 < self.patch_scale <= LOGIT_LIMIT:
            raise ValueError(f"patch_scale must be in (0, {limit}], got {self.patch_scale!r}")
        if abs(self.canvas_init) > LOGIT_LIMIT:
            raise ValueError(f"canvas_init must lie within +-{limit}, got {self.canvas_init!r}")


def draw_actions_to_raw(actions: Tensor, patch_scale: float = 8.0) -> Tensor:
    """Map ``[-1, 1]`` actions ``(B, 5 + C N N)`` to raw DRAW parameters (clipping first; differentiable)."""
    a = actions.clamp(-1.0, 1.0)
    offset = a.new_tensor(RAW_OFFSET)
    scale = a.new_tensor(RAW_SCALE)
    return torch.cat([offset + scale * a[:, :5], patch_scale * a[:, 5:]], dim=1)


def write_update(raw: Tensor, shape: torch.Size, n: int, out: Tensor | None = None) -> Tensor:
    """The write of ``raw (B, 5 + C N N)`` onto canvases of ``shape (B, C, H, W)``, not yet added (into ``out``)."""
    b, c, h, w = shape
    window = window_from_raw(raw[:, :5], h, w, n)
    patch = raw[:, 5:].reshape(b, c, n, n)
    return write(patch, *filterbank(window, n, h, w), window.gamma, out=out)


def write_step(canvas_logits: Tensor, raw: Tensor, n: int) -> Tensor:
    """DRAW's canvas update: ``canvas_logits (B, C, H, W)`` + write of ``raw (B, 5 + C N N)``."""
    return canvas_logits + write_update(raw, canvas_logits.shape, n)


class DrawSim(CanvasEnv):
    """Batched simulator of ``paintrnn/Draw-v0`` (see the module docstring)."""

    config_class = DrawConfig
    config: DrawConfig

    def __init__(self, num_envs: int, render_mode: str | None = None, **options) -> None:
        super().__init__(num_envs, render_mode, **options)
        cfg = self.config
        size = 5 + cfg.channels * cfg.n * cfg.n
        bound = np.inf if cfg.raw_actions else 1.0
        self.single_action_space = spaces.Box(-bound, bound, (size,), np.float32)
        self.action_fields = WINDOW_FIELDS + tuple(
            f"patch[{c}, {i}, {j}]" for c in range(cfg.channels) for i in range(cfg.n) for j in range(cfg.n)
        )
        self.canvas_logits = torch.full_like(self.canvas, cfg.canvas_init)  # (N, C, H, W)
        self.canvas = torch.sigmoid(self.canvas_logits)
        self._window_raw = torch.full((num_envs, 5), float("nan"), device=self.device)  # last write's window

    @property
    def window_boxes(self) -> Tensor:
        """Last write's window ``(x0, y0, x1, y1)`` in pixels per sub-env ``(N, 4)`` (NaN before the first write)."""
        cfg = self.config
        return window_box(window_from_raw(self._window_raw, cfg.height, cfg.width, cfg.n), cfg.n)

    def _reset_canvas(self, mask: Tensor) -> None:
        self.canvas_logits[mask] = self.config.canvas_init
        self._window_raw[mask] = float("nan")
        torch.sigmoid(self.canvas_logits, out=self.canvas)

    def _paint(self, actions: Tensor) -> np.ndarray:
        cfg = self.config
        raw = actions if cfg.raw_actions else draw_actions_to_raw(actions, cfg.patch_scale)
        update = write_update(raw, self.canvas_logits.shape, cfg.n, out=self._scratch)
        if cfg.raw_actions:
            bad = ~torch.isfinite(update).flatten(1).all(1)
            if bool(bad.any()):
                raise ValueError(
                    f"raw actions of sub-envs {bad.nonzero().flatten().tolist()} give a non-finite canvas "
                    "(log sigma^2, log delta or log gamma too extreme); the canvas was left unchanged"
                )
        # in place, the same sum as ``canvas_logits + update``; clipped so that the logits stay finite
        self.canvas_logits.add_(update).clamp_(-LOGIT_LIMIT, LOGIT_LIMIT)
        torch.sigmoid(self.canvas_logits, out=self.canvas)
        self._window_raw = raw[:, :5].clone()  # raw may share memory with the caller's action array
        return np.ones(self.num_envs, np.int64)


class DrawEnv(SingleEnv):
    """``paintrnn/Draw-v0`` as a single ``gymnasium.Env``."""

    simulator = DrawSim


class DrawVectorEnv(NativeVectorEnv):
    """``paintrnn/Draw-v0`` as a native batched ``gymnasium.vector.VectorEnv``."""

    simulator = DrawSim
