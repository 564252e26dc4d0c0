"""``paintrnn/Glimpse-v0``: classify a digit from a few glimpses (the task of the recurrent attention model).

Each episode holds one MNIST digit: as it is (28 x 28), or placed at a random position on a larger black
canvas (``canvas=60``: translated MNIST), optionally among ``clutter`` random 8 x 8 fragments of other
digits (cluttered MNIST). ``task="cluttered60"`` / ``"cluttered100"`` are the papers' cluttered tasks (60 x 60
with 4 distractors, 100 x 100 with 8, cut from other digits and never covering the digit's centre; see
:mod:`paintrnn.scenes`), the scenes the glimpse trainer's tasks of the same names train on. The agent never
sees the whole image, only glimpses from the retina of :mod:`paintrnn.retina`: ``scales`` square patches
centred on the current location, each twice as wide as the previous, all resized to ``glimpse_size`` x
``glimpse_size``.

## Spaces

- Observation ``Dict``: ``"glimpse"`` ``Box(0, 1, (scales * g * g,), float32)`` (the ``(scales, g, g)``
  retina flattened row-major, so Stable-Baselines3 sees a vector) and ``"location"`` ``Box(-1, 1, (2,))``:
  ``(x, y)`` of the current glimpse, ``(-1, -1)`` the top-left corner and ``(0, 0)`` the centre.
- Action ``Box(-1, 1, (2 + n_classes,), float32)`` (a flat layout, accepted by the Gymnasium and SB3
  checkers; SB3 has no ``Dict`` actions): ``a[0:2]`` is the next location (clipped to ``[-1, 1]``),
  ``a[2:]`` are class scores. On the last step the class is ``argmax(a[2:])`` and the location is ignored;
  before it the scores are ignored.
- Reward: 1 for a correct final class, else 0. An episode is ``glimpses`` steps long: the reset
  observation is glimpse 1 (at the image centre, or a random place with ``start="random"``), steps
  ``1 .. glimpses - 1`` choose where glimpses ``2 .. glimpses`` are taken, and the last step classifies
  (``terminated``). The step info holds ``"prediction"`` (the class, -1 before the last step) and
  ``"label"``.

Render (``render_mode="rgb_array"``): the image, enlarged, with the current glimpse's boxes and the path of
glimpse centres so far (write a GIF of an episode with :func:`paintrnn.media.write_gif`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from paintrnn.data import load_mnist
from paintrnn.media import draw_boxes, upscale
from paintrnn.retina import glimpse, glimpse_boxes
from paintrnn.scenes import CLUTTERED, cluttered

from .batched import BatchedEnv, Info, NativeVectorEnv, SingleEnv, StepResult

ENV_ID = "paintrnn/Glimpse-v0"
FRAGMENT = 8


@dataclass(frozen=True)
class GlimpseConfig:
    """Options of ``paintrnn/Glimpse-v0`` (keyword arguments of ``gym.make``)."""

    glimpses: int = 7
    """Glimpses per episode (= episode length)."""
    glimpse_size: int = 8
    """Width g of the sharpest patch; all patches are resized to g x g."""
    scales: int = 1
    """Patches per glimpse, each twice as wide as the previous."""
    canvas: int | None = None
    """None: the 28 x 28 digit itself; else a canvas this wide with the digit at a random place."""
    clutter: int = 0
    """Random 8 x 8 fragments of other digits scattered on the canvas (needs canvas)."""
    task: Literal["cluttered60", "cluttered100"] | None = None
    """One of the papers' cluttered tasks (paintrnn.scenes.CLUTTERED), which sets canvas and clutter (leave them
    at their defaults or give the same values)."""
    start: Literal["centre", "random"] = "centre"
    """Where the first glimpse is taken."""
    split: Literal["train", "test"] = "train"
    """Which MNIST split the digits come from."""
    data_dir: str | None = None
    """Folder with the MNIST files (default: $PAINTRNN_DATA or the per-user cache)."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """Full MNIST, the bundled sample, or the full files when present (else the sample, with a warning)."""
    render_scale: int = 4
    """Enlargement of rendered frames."""

    def __post_init__(self) -> None:
        for name in ("glimpses", "glimpse_size", "scales", "render_scale"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.canvas is not None and (not isinstance(self.canvas, int) or self.canvas < 28):
            raise ValueError(f"canvas must be None or an int >= 28, got {self.canvas!r}")
        if not isinstance(self.clutter, int) or self.clutter < 0 or (self.clutter and self.canvas is None):
            raise ValueError(f"clutter must be an int >= 0 and needs a canvas, got clutter={self.clutter!r}")
        if self.task is not None:
            if self.task not in CLUTTERED:
                raise ValueError(f"task must be None or one of {sorted(CLUTTERED)}, got {self.task!r}")
            spec = CLUTTERED[self.task]
            if self.canvas not in (None, spec.canvas) or self.clutter not in (0, spec.clutter):
                raise ValueError(f"task={self.task!r} sets canvas={spec.canvas} and clutter={spec.clutter}, got "
                                 f"canvas={self.canvas!r} and clutter={self.clutter!r}")  # fmt: skip
        if self.start not in ("centre", "random"):
            raise ValueError(f"start must be 'centre' or 'random', got {self.start!r}")
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")


@functools.lru_cache(maxsize=4)
def _digits(split: str, root: str | None, source: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist(split, root, source=source)  # type: ignore[arg-type]
    images.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=4)
def _digit_tensor(split: str, root: str | None, source: str) -> Tensor:
    """The split's digits as one uint8 tensor ``(N, 1, 28, 28)`` (a copy, made once): the pieces of clutter."""
    return torch.from_numpy(_digits(split, root, source)[0].copy())[:, None]


def make_scene(digit: np.ndarray, others: Sequence[np.ndarray], canvas: int, rng: np.random.Generator) -> np.ndarray:
    """A ``canvas x canvas`` uint8 image: fragments of ``others`` at random places, then ``digit`` on top (max)."""
    out = np.zeros((canvas, canvas), np.uint8)
    h, w = digit.shape
    for other in others:
        fy, fx = rng.integers(0, h - FRAGMENT + 1, 2)
        py, px = rng.integers(0, canvas - FRAGMENT + 1, 2)
        piece = other[fy : fy + FRAGMENT, fx : fx + FRAGMENT]
        out[py : py + FRAGMENT, px : px + FRAGMENT] = np.maximum(out[py : py + FRAGMENT, px : px + FRAGMENT], piece)
    oy, ox = rng.integers(0, canvas - h + 1), rng.integers(0, canvas - w + 1)
    out[oy : oy + h, ox : ox + w] = np.maximum(out[oy : oy + h, ox : ox + w], digit)
    return out


class GlimpseSim(BatchedEnv):
    """``num_envs`` glimpse-classification episodes; state as tensors on ``device``."""

    config_class = GlimpseConfig

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", render_mode: str | None = None, **options
    ) -> None:
        cfg = self.make_config(options)
        super().__init__(num_envs, device, render_mode)
        self.cfg = cfg
        self.digits, self.labels_all = _digits(cfg.split, cfg.data_dir, cfg.data_source)
        self.spec = CLUTTERED[cfg.task] if cfg.task is not None else None
        self.side = self.spec.canvas if self.spec is not None else cfg.canvas or self.digits.shape[1]
        self.n_classes = 10
        self.single_observation_space = spaces.Dict({
            "glimpse": spaces.Box(0.0, 1.0, (cfg.scales * cfg.glimpse_size**2,), np.float32),
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
        })  # fmt: skip
        self.single_action_space = spaces.Box(-1.0, 1.0, (2 + self.n_classes,), np.float32)
        self.action_fields = ("x", "y", *(f"score_{k}" for k in range(self.n_classes)))
        n, dev = num_envs, self.device
        self.images = torch.zeros(n, 1, self.side, self.side, device=dev)  # (N, 1, S, S) in [0, 1]
        self.labels = torch.zeros(n, dtype=torch.int64, device=dev)
        self.path = torch.zeros(n, cfg.glimpses, 2, device=dev)  # glimpse centres so far
        self.t = torch.zeros(n, dtype=torch.int64, device=dev)  # glimpses taken - 1

    def reset_envs(self, mask: np.ndarray, rngs: Sequence[np.random.Generator | None]) -> Info:
        cfg = self.cfg
        for i in np.flatnonzero(mask):
            rng = rngs[i]
            k = int(rng.integers(len(self.digits)))
            image = self.digits[k]
            if self.spec is not None:  # the papers' recipe, seeded from this sub-env's generator
                pool = _digit_tensor(cfg.split, cfg.data_dir, cfg.data_source)
                gen = torch.Generator().manual_seed(int(rng.integers(2**63)))
                scene, _ = cluttered(pool[k : k + 1], self.spec.canvas, self.spec.clutter, gen, pool,
                                     torch.tensor([k]), self.spec.fragment)  # fmt: skip
                image = scene[0, 0].numpy()
            elif cfg.canvas is not None:
                others = [self.digits[j] for j in rng.integers(len(self.digits), size=cfg.clutter)]
                image = make_scene(image, others, cfg.canvas, rng)
            self.images[i, 0] = torch.from_numpy(image.astype(np.float32) / 255.0)
            self.labels[i] = int(self.labels_all[k])
            start = rng.uniform(-1.0, 1.0, 2) if cfg.start == "random" else np.zeros(2)
            self.path[i] = 0.0
            self.path[i, 0] = torch.from_numpy(start.astype(np.float32))
            self.t[i] = 0
        return {}

    def step_envs(self, actions: Tensor) -> StepResult:
        last = self.t >= self.cfg.glimpses - 1  # (N,) this step classifies
        prediction = torch.where(last, actions[:, 2:].argmax(-1), torch.full_like(self.labels, -1))
        reward = (last & (prediction == self.labels)).double()
        move = ~last
        nxt = torch.clamp(self.t + 1, max=self.cfg.glimpses - 1)
        rows = torch.arange(self.num_envs, device=self.device)
        self.path[rows[move], nxt[move]] = actions[move, :2].clamp(-1.0, 1.0)
        self.t = torch.where(move, nxt, self.t)
        info = {"prediction": prediction.cpu().numpy(), "label": self.labels.cpu().numpy()}
        done = last.cpu().numpy()
        return reward.cpu().numpy(), done, np.zeros(self.num_envs, dtype=bool), info

    def location(self) -> Tensor:
        """Current glimpse location ``(N, 2)``."""
        return self.path[torch.arange(self.num_envs, device=self.device), self.t]

    def observe(self) -> dict[str, np.ndarray]:
        loc = self.location()
        g = glimpse(self.images, loc, self.cfg.glimpse_size, self.cfg.scales)  # (N, k, g, g)
        return {
            "glimpse": g.flatten(1).clamp(0.0, 1.0).cpu().numpy().astype(np.float32),
            "location": loc.cpu().numpy().astype(np.float32),
        }

    def render_frames(self) -> np.ndarray:
        cfg, s = self.cfg, self.cfg.render_scale
        images = (self.images[:, 0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
        boxes = glimpse_boxes(self.location().cpu(), self.side, self.side, cfg.glimpse_size, cfg.scales).numpy()
        frames = []
        for i in range(self.num_envs):
            frame = draw_boxes(
                upscale(images[i], s),
                boxes[i] * s + np.array([0, 0, s - 1, s - 1]),
                [(255, 60, 60), (255, 170, 40), (80, 160, 255), (120, 220, 120)],
                width=2,
            ).copy()
            centres = ((self.path[i, : int(self.t[i]) + 1].cpu().numpy() + 1) / 2 * self.side * s).astype(int)
            for x, y in centres:  # the path of glimpse centres so far, as yellow dots
                frame[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = (255, 255, 0)
            frames.append(frame)
        return np.stack(frames)  # (N, S*s, S*s, 3)


class GlimpseEnv(SingleEnv):
    """``paintrnn/Glimpse-v0`` as a ``gymnasium.Env`` (see the module docstring)."""

    simulator = GlimpseSim


class GlimpseVectorEnv(NativeVectorEnv):
    """``paintrnn/Glimpse-v0`` as a native ``gymnasium.vector.VectorEnv`` (``gym.make_vec``)."""

    simulator = GlimpseSim
