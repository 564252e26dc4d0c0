"""The shared core of the canvas environments: canvas, target, step count, rewards and observations.

:class:`CanvasEnv` is a :class:`~paintrnn.envs.batched.BatchedEnv` whose sub-environments each hold a
float canvas ``(C, H, W)`` in [0, 1] and, when a target source is set, a target image. Subclasses only
say how actions change the canvas (``_paint``) and what a fresh canvas is (``_reset_canvas``).

## Observation

``Dict`` with ``canvas`` (uint8 ``H x W x C``), ``target`` (uint8 ``H x W x C``, only with a target
source) and ``step``: the steps taken so far, ``Box(0, max_steps, (1,), int64)``. (A bounded integer ``Box``,
not ``Discrete``: frame stackers such as Stable-Baselines3's ``VecFrameStack`` stack only ``Box`` entries,
and TorchRL's specs take it as it is; the shape ``(1,)`` gives a stacking axis.)

## Rewards (``reward=``)

With ``d_t`` the mean squared distance between canvas and target (pixels in [0, 1]) after step ``t``:

* ``"l2_delta"``: ``(d_{t-1} - d_t) / max(d_0, 1e-6)``, the normalised per-step decrease (Learning to
  Paint); an episode's return telescopes to ``1 - d_T / d_0``;
* ``"final_l2"``: ``-d_T`` at the last step, 0 before (SPIRAL's conditional agent);
* ``"none"``: always 0, for a learner that supplies its own reward (e.g. a discriminator).

Episodes last ``max_steps`` steps and then end with ``terminated=True`` (the step budget is part of the
task and visible in the observation, so the end is a true terminal state); ``truncated`` is always False.
``info`` holds ``l2`` (``d_t``, with a target) and ``strokes`` (drawing operations so far).
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from .batched import BatchedEnv, Info, StepResult
from .targets import TargetSpec, make_target_source

REWARDS = ("l2_delta", "final_l2", "none")
_MIN_D0 = 1e-6


@dataclass(frozen=True, eq=False)
class CanvasConfig:
    """Options shared by every canvas environment (pass them to ``gym.make`` / ``gym.make_vec``)."""

    height: int = 64
    """Canvas height in pixels."""
    width: int = 64
    """Canvas width in pixels."""
    channels: int = 1
    """Colour channels: 1 (grey) or 3 (RGB)."""
    max_steps: int = 40
    """Steps per episode."""
    target: TargetSpec = "mnist"
    """Target source: 'mnist', 'mnist:test', 'texture:<name>', 'folder:<path>', an image array, or None."""
    reward: Literal["l2_delta", "final_l2", "none"] = "l2_delta"
    """Reward: 'l2_delta' (per-step L2 decrease / initial L2), 'final_l2' (-L2 at the end) or 'none' (0)."""
    data_dir: str | None = None
    """Where MNIST files are looked for (default: $PAINTRNN_DATA or the per-user cache)."""
    device: str = "cpu"
    """Torch device that holds the canvases ('cpu', 'cuda', 'cuda:1', ...)."""

    def __post_init__(self) -> None:
        for name in ("height", "width", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.reward != "none" and self.target is None:
            raise ValueError(f"reward={self.reward!r} needs a target source; use reward='none' without one")


def _levels(images: Tensor, out: Tensor | None = None) -> Tensor:
    """Floats in [0, 1] -> float grey levels whose truncation rounds to the nearest uint8 (halves up)."""
    return torch.mul(images, 255, out=out).add_(0.5).clamp_(0, 255)


def to_uint8(images: Tensor) -> Tensor:
    """Floats in [0, 1] -> uint8, rounding to the nearest level (halves up)."""
    return _levels(images).to(torch.uint8)


def observe_images(images: Tensor, scratch: Tensor | None = None) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] -> uint8 ``(N, H, W, C)`` NumPy array, rounded as :func:`to_uint8`.

    ``scratch``: a float buffer shaped like ``images`` to reuse. On the CPU the final cast is NumPy's
    (several times faster than torch's float -> uint8 conversion).
    """
    n, c, h, w = images.shape
    if images.device.type != "cpu":
        u8 = to_uint8(images)
        return (u8.reshape(n, h, w, 1) if c == 1 else u8.permute(0, 2, 3, 1)).cpu().numpy()
    levels = _levels(images, scratch)
    levels = levels.reshape(n, h, w, 1) if c == 1 else levels.permute(0, 2, 3, 1)
    return levels.numpy().astype(np.uint8, order="C")


class CanvasEnv(BatchedEnv):
    """Canvases, targets, step counters, rewards and observations for ``num_envs`` sub-envs."""

    config_class: ClassVar[type[CanvasConfig]] = CanvasConfig

    def __init__(self, num_envs: int, render_mode: str | None = None, **options: Any) -> None:
        cfg = self.make_config(options)
        super().__init__(num_envs, cfg.device, render_mode)
        self.config = cfg
        n, c, h, w = num_envs, cfg.channels, cfg.height, cfg.width
        self.targets = make_target_source(cfg.target, h, w, c, cfg.data_dir)
        image = spaces.Box(0, 255, (h, w, c), np.uint8)
        obs = {"canvas": image, "step": spaces.Box(0, cfg.max_steps, (1,), np.int64)}
        if self.targets is not None:
            obs["target"] = spaces.Box(0, 255, (h, w, c), np.uint8)
        self.single_observation_space = spaces.Dict(obs)
        self.canvas = torch.zeros(n, c, h, w, device=self.device)  # (N, C, H, W) in [0, 1]
        self.target = torch.zeros(n, c, h, w, device=self.device)  # (N, C, H, W) in [0, 1]
        self._scratch = torch.empty(n, c, h, w, device=self.device)  # reused: no page faults per step
        self.target_u8 = np.zeros((n, h, w, c), np.uint8)  # (N, H, W, C), as observed
        self.steps = np.zeros(n, np.int64)
        self.strokes = np.zeros(n, np.int64)
        self.d0 = torch.zeros(n, device=self.device)  # L2 distance after reset
        self.dist = torch.zeros(n, device=self.device)  # current L2 distance

    @abstractmethod
    def _reset_canvas(self, mask: Tensor) -> None:
        """Give the sub-envs in ``mask`` ``(N,)`` a fresh canvas (and reset any other per-episode state)."""

    @abstractmethod
    def _paint(self, actions: Tensor) -> np.ndarray:
        """Apply validated ``actions`` to every canvas; return the number of drawing operations ``(N,)``."""

    def distance(self) -> Tensor:
        """Mean squared distance ``(N,)`` between each canvas and its target."""
        return torch.sub(self.canvas, self.target, out=self._scratch).square_().mean(dim=(1, 2, 3))

    def reset_envs(self, mask: np.ndarray, rngs: Sequence[np.random.Generator | None]) -> Info:
        mask = np.asarray(mask, dtype=bool)
        m = torch.from_numpy(mask).to(self.device)
        if self.targets is not None:
            for i in np.flatnonzero(mask):
                self.target_u8[i] = self.targets.sample(rngs[i])  # type: ignore[arg-type]
            fresh = torch.from_numpy(self.target_u8[mask]).to(self.device).permute(0, 3, 1, 2) / 255.0
            self.target[m] = fresh.to(self.target.dtype)
        self._reset_canvas(m)
        self.steps[mask] = 0
        self.strokes[mask] = 0
        if self.targets is not None:
            d = self.distance()
            self.d0 = torch.where(m, d, self.d0)
            self.dist = torch.where(m, d, self.dist)
        return self._info()

    def step_envs(self, actions: Tensor) -> StepResult:
        self.strokes += self._paint(actions)
        self.steps += 1
        terminated = self.steps >= self.config.max_steps
        reward = np.zeros(self.num_envs)
        if self.targets is not None:
            d = self.distance()
            if self.config.reward == "l2_delta":
                reward = l2_delta_reward(self.dist, d, self.d0).double().cpu().numpy()
            elif self.config.reward == "final_l2":
                reward = np.where(terminated, -d.double().cpu().numpy(), 0.0)
            self.dist = d
        return reward, terminated, np.zeros(self.num_envs, dtype=bool), self._info()

    def _info(self) -> Info:
        info = {"strokes": self.strokes.copy()}
        if self.targets is not None:
            info["l2"] = self.dist.double().cpu().numpy()
        return info

    def observe(self) -> dict[str, np.ndarray]:
        obs = {"canvas": observe_images(self.canvas, self._scratch), "step": self.steps[:, None].copy()}  # (N, 1)
        if self.targets is not None:
            obs["target"] = self.target_u8.copy()
        return obs

    def render_frames(self) -> np.ndarray:
        frames = observe_images(self.canvas)  # (N, H, W, C)
        return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def l2_delta_reward(d_before: Tensor, d_after: Tensor, d0: Tensor) -> Tensor:
    """The ``l2_delta`` reward ``(N,)`` from the mean squared distances before and after a step and at the start
    (one formula for the environments and for learners that model them)."""
    return (d_before - d_after) / d0.clamp_min(_MIN_D0)


def env_option_docs(config_class: type) -> str:
    """A markdown table of a config's options (name, default, docstring), for docs and ``--help``."""
    from paintrnn.config import field_docs

    docs = field_docs(config_class)
    rows = [f"| `{f.name}` | `{f.default!r}` | {docs.get(f.name, '')} |" for f in dataclasses.fields(config_class)]
    return "\n".join(["| option | default | meaning |", "|---|---|---|", *rows])
