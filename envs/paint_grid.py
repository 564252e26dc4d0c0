"""``paintrnn/PaintGrid-v0``: SPIRAL's discrete painting interface (Ganin et al. 2018).

A pen sits somewhere on the canvas (at the centre after reset). Each step picks a control point and an
end point on a ``g x g`` grid, and either draws a quadratic Bézier stroke from the pen through the
control point to the end point, or moves there without painting (pen up). Either way the pen ends at
the end point, so the next stroke starts where this one ended.

## Action layout: ``MultiDiscrete([g*g, g*g, 2, P, S, B, ..., B])``

| index | field | values | meaning |
|---|---|---|---|
| 0 | ``control`` | ``0 .. g*g - 1`` | grid cell ``row * g + col`` of the control point |
| 1 | ``end`` | ``0 .. g*g - 1`` | grid cell ``row * g + col`` of the end point (the pen's next position) |
| 2 | ``flag`` | 0 move, 1 draw | move lifts the pen: nothing is painted |
| 3 | ``pressure`` | ``0 .. P - 1`` | opacity ``(p + 1) / P`` |
| 4 | ``size`` | ``0 .. S - 1`` | radius ``lo + (hi - lo) s / (S - 1)``, ``radius_range = (lo, hi)`` |
| 5.. | ``colour`` | ``0 .. B - 1`` each | ``C`` channel values ``b / (B - 1)`` |

Grid cell ``(row, col)`` is the point ``x = (col + 0.5) / g`` (across the width), ``y = (row + 0.5) / g``
(down the height): ``col`` always maps to x and ``row`` to y, for draws and moves alike (SPIRAL's
environment swaps them on moves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from .batched import NativeVectorEnv, SingleEnv
from .paint import StrokeConfig, StrokeEnv


@dataclass(frozen=True, eq=False)
class PaintGridConfig(StrokeConfig):
    """Options of ``paintrnn/PaintGrid-v0``."""

    max_steps: int = 20
    """Steps per episode (SPIRAL: 20)."""
    grid: int = 32
    """Grid side g for control and end points (SPIRAL: 32)."""
    pressure_bins: int = 10
    """Pressure levels P (opacity (p + 1) / P)."""
    size_bins: int = 10
    """Brush size levels S across radius_range."""
    colour_bins: int = 10
    """Levels B per colour channel, from 0 to 1."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, low in (("grid", 1), ("pressure_bins", 1), ("size_bins", 1), ("colour_bins", 2)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def grid_point(cell: Tensor, grid: int) -> Tensor:
    """Grid cells ``row * g + col`` ``(...,)`` -> points ``(..., 2)`` as ``(x, y)`` fractions of the canvas."""
    col, row = cell % grid, cell // grid
    return (torch.stack([col, row], dim=-1).to(torch.float32) + 0.5) / grid


def grid_actions_to_strokes(actions: Tensor, pen: Tensor, cfg: PaintGridConfig) -> tuple[Tensor, Tensor]:
    """``actions (N, 5 + C)`` int, pen ``(N, 2)`` -> strokes ``(N, 1, 10 + C)`` and the new pen ``(N, 2)``.

    Moves give strokes of zero opacity (they paint nothing but keep one stroke slot per step).
    """
    control, end = grid_point(actions[:, 0], cfg.grid), grid_point(actions[:, 1], cfg.grid)  # (N, 2)
    draw = actions[:, 2:3].to(torch.float32)  # (N, 1)
    opacity = draw * (actions[:, 3:4] + 1).to(torch.float32) / cfg.pressure_bins
    lo, hi = cfg.radius_range
    radius = lo + (hi - lo) * actions[:, 4:5].to(torch.float32) / max(cfg.size_bins - 1, 1)
    colour = actions[:, 5:].to(torch.float32) / (cfg.colour_bins - 1)
    strokes = torch.cat([pen, control, end, radius, radius, opacity, opacity, colour], dim=1)
    return strokes[:, None], end


class PaintGridSim(StrokeEnv):
    """Batched simulator of ``paintrnn/PaintGrid-v0`` (see the module docstring)."""

    config_class = PaintGridConfig
    config: PaintGridConfig

    def __init__(self, num_envs: int, render_mode: str | None = None, **options) -> None:
        super().__init__(num_envs, render_mode, **options)
        cfg = self.config
        cells = cfg.grid * cfg.grid
        nvec = [cells, cells, 2, cfg.pressure_bins, cfg.size_bins] + [cfg.colour_bins] * cfg.channels
        self.single_action_space = spaces.MultiDiscrete(nvec)
        colours = tuple(f"colour{c}" for c in range(cfg.channels))
        self.action_fields = ("control", "end", "flag", "pressure", "size", *colours)
        self.pen = torch.full((num_envs, 2), 0.5, device=self.device)  # (N, 2) pen position (x, y)

    def _reset_canvas(self, mask: Tensor) -> None:
        super()._reset_canvas(mask)
        self.pen[mask] = 0.5

    def _strokes(self, actions: Tensor) -> tuple[Tensor, np.ndarray]:
        strokes, self.pen = grid_actions_to_strokes(actions, self.pen, self.config)
        return strokes, actions[:, 2].cpu().numpy().astype(np.int64)


class PaintGridEnv(SingleEnv):
    """``paintrnn/PaintGrid-v0`` as a single ``gymnasium.Env``."""

    simulator = PaintGridSim


class PaintGridVectorEnv(NativeVectorEnv):
    """``paintrnn/PaintGrid-v0`` as a native batched ``gymnasium.vector.VectorEnv``."""

    simulator = PaintGridSim
