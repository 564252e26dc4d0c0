"""``paintrnn/Read-v0``: read a row of digits glimpse by glimpse, left to right, and say when it ends.

Each episode holds one scene of :func:`paintrnn.scenes.digit_rows`: ``min_digits`` to ``max_digits`` MNIST
digits in a row on a ``height x width`` black canvas, each scaled by a random factor, separated by random gaps,
optionally among ``clutter`` pieces of other digits (the multi-digit task of Ba et al. 2014, DRAM, with MNIST
digits standing in for house numbers). The agent sees a coarse view of the whole scene (the ``context``, for the
first decision of where to look) and glimpses from the retina of :mod:`paintrnn.retina` at the places it
chooses. Every ``glimpses_per_read`` glimpses it emits one symbol: a digit, or the end symbol, which ends the
episode.

## Spaces

- Observation ``Dict``: ``"glimpse"`` ``Box(0, 1, (scales * g * g,), float32)`` (the ``(scales, g, g)`` retina
  flattened row-major), ``"location"`` ``Box(-1, 1, (2,))`` (``(x, y)`` of the current glimpse, ``(-1, -1)``
  the top-left corner) and ``"context"`` ``Box(0, 1, (height // context * width // context,))``: the scene
  average-pooled by ``context`` (the same every step of an episode).
- Action ``Box(-1, 1, (2 + 11,), float32)`` (flat, as the Gymnasium and SB3 checkers accept it): ``a[0:2]`` is
  the next glimpse location (clipped to ``[-1, 1]``), ``a[2:13]`` are scores of the symbols ``0 .. 9`` and
  end (index 10). On a reading step (every ``glimpses_per_read``-th step) the symbol ``argmax(a[2:])`` is
  emitted; on other steps the scores are ignored.
- Episode: the reset observation is glimpse 1 (at the centre, or a random place with ``start="random"``);
  every step moves the glimpse. It ends (``terminated``) when the end symbol is emitted or after
  ``max_digits + 1`` symbols (at most ``glimpses_per_read * (max_digits + 1)`` steps). Reward: 1 on the last
  step if the digits emitted before the end symbol are the row's digits, in order; else 0.
- Step info (numbers only, as vector clients such as TorchRL want them): ``"symbol"`` (the emitted symbol, 10
  for end, -1 on steps that emit none), ``"read"`` (the symbols emitted so far, ``(max_digits + 1,)`` int64,
  -1 after them) and ``"label"`` (the row's digits, then 10, then -1: what a perfect reader emits);
  :func:`paintrnn.scenes.symbol_string` turns either into the digit string.

Render (``render_mode="rgb_array"``): the scene, enlarged, with the current glimpse's boxes, the path of
glimpse centres so far, and the digits read so far in a panel beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

from paintrnn.data import load_mnist
from paintrnn.media import draw_boxes, upscale
from paintrnn.retina import glimpse, glimpse_boxes
from paintrnn.scenes import END, N_SYMBOLS, RowSpec, digit_rows, symbol_string

from .batched import BatchedEnv, Info, NativeVectorEnv, SingleEnv, StepResult

ENV_ID = "paintrnn/Read-v0"
BOX_COLOURS = [(255, 60, 60), (255, 170, 40), (80, 160, 255), (120, 220, 120)]


@dataclass(frozen=True)
class ReadConfig:
    """Options of ``paintrnn/Read-v0`` (keyword arguments of ``gym.make``)."""

    min_digits: int = 2
    """Fewest digits in a row."""
    max_digits: int = 5
    """Most digits in a row (an episode emits at most max_digits + 1 symbols)."""
    height: int = 32
    """Scene height in pixels."""
    width: int = 128
    """Scene width in pixels."""
    clutter: int = 0
    """Pieces of other digits scattered under the row."""
    glimpses_per_read: int = 2
    """Glimpses per emitted symbol."""
    glimpse_size: int = 12
    """Width g of the sharpest patch; all patches are resized to g x g."""
    scales: int = 3
    """Patches per glimpse, each twice as wide as the previous."""
    context: int = 4
    """The coarse view is the scene average-pooled by this factor (height and width must be multiples of it)."""
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
        for name in ("glimpses_per_read", "glimpse_size", "scales", "context", "render_scale"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.height % self.context or self.width % self.context:
            raise ValueError(f"height and width must be multiples of context={self.context}, got "
                             f"{self.height} x {self.width}")  # fmt: skip
        if self.start not in ("centre", "random"):
            raise ValueError(f"start must be 'centre' or 'random', got {self.start!r}")
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        self.row_spec()  # checks the scene options

    def row_spec(self) -> RowSpec:
        """The scenes' :class:`~paintrnn.scenes.RowSpec` (scale, gap and jitter at their defaults)."""
        return RowSpec(height=self.height, width=self.width, min_digits=self.min_digits, max_digits=self.max_digits,
                       clutter=self.clutter)  # fmt: skip


@functools.lru_cache(maxsize=4)
def _digits(split: str, root: str | None, source: str) -> tuple[Tensor, Tensor]:
    """The split's digits ``(N, 1, 28, 28)`` uint8 and labels ``(N,)``, as tensors (made once)."""
    images, labels = load_mnist(split, root, source=source)  # type: ignore[arg-type]
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.copy())


def coarse_view(images: Tensor, factor: int) -> Tensor:
    """The context: ``images (B, C, H, W)`` average-pooled by ``factor``, flattened to ``(B, C * H/f * W/f)``."""
    return F.avg_pool2d(images, factor).flatten(1)


class ReadSim(BatchedEnv):
    """``num_envs`` multi-digit reading episodes; state as tensors on ``device``."""

    config_class = ReadConfig

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", render_mode: str | None = None, **options
    ) -> None:
        cfg = self.make_config(options)
        super().__init__(num_envs, device, render_mode)
        self.cfg = cfg
        self.spec = cfg.row_spec()
        self.pool, self.pool_labels = _digits(cfg.split, cfg.data_dir, cfg.data_source)
        self.reads = cfg.max_digits + 1  # symbols per episode at most
        self.max_steps = cfg.glimpses_per_read * self.reads
        context = (cfg.height // cfg.context) * (cfg.width // cfg.context)
        self.single_observation_space = spaces.Dict({
            "glimpse": spaces.Box(0.0, 1.0, (cfg.scales * cfg.glimpse_size**2,), np.float32),
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "context": spaces.Box(0.0, 1.0, (context,), np.float32),
        })  # fmt: skip
        self.single_action_space = spaces.Box(-1.0, 1.0, (2 + N_SYMBOLS,), np.float32)
        self.action_fields = ("x", "y", *(f"score_{k}" for k in range(10)), "score_end")
        n, dev = num_envs, self.device
        self.images = torch.zeros(n, 1, cfg.height, cfg.width, device=dev)  # (N, 1, H, W) in [0, 1]
        self.targets = torch.full((n, self.reads), -1, dtype=torch.int64, device=dev)  # digits, END, -1...
        self.emitted = torch.full((n, self.reads), -1, dtype=torch.int64, device=dev)
        self.n_read = torch.zeros(n, dtype=torch.int64, device=dev)
        self.path = torch.zeros(n, self.max_steps, 2, device=dev)  # glimpse centres so far
        self.t = torch.zeros(n, dtype=torch.int64, device=dev)  # glimpses taken - 1

    def reset_envs(self, mask: np.ndarray, rngs: Sequence[np.random.Generator | None]) -> Info:
        cfg = self.cfg
        for i in np.flatnonzero(mask):
            rng = rngs[i]
            gen = torch.Generator().manual_seed(int(rng.integers(2**63)))
            rows = digit_rows(self.pool, self.pool_labels, 1, self.spec, gen)
            self.images[i, 0] = rows.images[0, 0].to(self.device, torch.float32) / 255.0
            self.targets[i] = rows.symbols[0].to(self.device)
            self.emitted[i] = -1
            self.n_read[i] = 0
            start = rng.uniform(-1.0, 1.0, 2) if cfg.start == "random" else np.zeros(2)
            self.path[i] = 0.0
            self.path[i, 0] = torch.from_numpy(start.astype(np.float32))
            self.t[i] = 0
        return {}

    def step_envs(self, actions: Tensor) -> StepResult:
        rows = torch.arange(self.num_envs, device=self.device)
        reading = (self.t + 1) % self.cfg.glimpses_per_read == 0  # (N,) this step emits a symbol
        symbol = torch.where(reading, actions[:, 2:].argmax(-1), torch.full_like(self.t, -1))
        slot = self.n_read.clamp(max=self.reads - 1)
        self.emitted[rows[reading], slot[reading]] = symbol[reading]
        self.n_read = self.n_read + reading.long()
        done = reading & ((symbol == END) | (self.n_read >= self.reads))
        correct = (self.emitted == self.targets).all(1)  # digits, END, then -1 in both
        reward = (done & correct).double()
        move = ~done
        nxt = torch.clamp(self.t + 1, max=self.max_steps - 1)
        self.path[rows[move], nxt[move]] = actions[move, :2].clamp(-1.0, 1.0)
        self.t = torch.where(move, nxt, self.t)
        info = {  # copies: a caller may keep them
            "symbol": symbol.cpu().numpy(),
            "read": self.emitted.cpu().numpy().copy(),
            "label": self.targets.cpu().numpy().copy(),
        }
        return reward.cpu().numpy(), done.cpu().numpy(), np.zeros(self.num_envs, dtype=bool), info

    def labels(self) -> list[str]:
        """The rows' digit strings."""
        return [symbol_string(r) for r in self.targets.tolist()]

    def location(self) -> Tensor:
        """Current glimpse location ``(N, 2)``."""
        return self.path[torch.arange(self.num_envs, device=self.device), self.t]

    def observe(self) -> dict[str, np.ndarray]:
        cfg, loc = self.cfg, self.location()
        g = glimpse(self.images, loc, cfg.glimpse_size, cfg.scales)  # (N, k, g, g)
        return {
            "glimpse": g.flatten(1).clamp(0.0, 1.0).cpu().numpy().astype(np.float32),
            "location": loc.cpu().numpy().astype(np.float32),
            "context": coarse_view(self.images, cfg.context).clamp(0.0, 1.0).cpu().numpy().astype(np.float32),
        }

    def render_frames(self) -> np.ndarray:
        cfg = self.cfg
        locations = self.path.cpu()
        frames = []
        for i in range(self.num_envs):
            t = int(self.t[i])
            read = symbol_string(self.emitted[i].tolist())
            ended = bool((self.emitted[i] == END).any())
            image = self.images[i, 0].cpu().numpy()
            frames.append(
                reading_frame(image, locations[i, : t + 1].numpy(), read, cfg.glimpse_size, cfg.scales,
                              cfg.render_scale, ended=ended)
            )  # fmt: skip
        return np.stack(frames)  # (N, H*s, W*s + panel, 3)


def reading_frame(
    image: np.ndarray,
    path: np.ndarray,
    read: str,
    glimpse_size: int,
    scales: int,
    scale: int = 4,
    ended: bool = False,
    label: str | None = None,
) -> np.ndarray:
    """One picture of a reading episode: ``image (H, W)`` in [0, 1] enlarged ``scale`` times, the retina's boxes at
    the last location of ``path`` ``(t, 2)``, all glimpse centres so far as dots, and beside it a panel with the
    digits ``read`` so far (a full stop once the end symbol came; ``label``, if given, underneath in grey)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = image.shape
    frame = upscale((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), scale)
    boxes = glimpse_boxes(torch.as_tensor(path[-1:]), h, w, glimpse_size, scales)[0].numpy()
    frame = draw_boxes(frame, boxes * scale + np.array([0, 0, scale - 1, scale - 1]), BOX_COLOURS, width=2).copy()
    centres = ((path + 1) / 2 * np.array([w, h]) * scale).astype(int)
    for x, y in centres:
        frame[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = (255, 255, 0)
    font_size = max(10, h * scale // 3)
    panel = Image.new("RGB", (font_size * 4, h * scale), (20, 20, 40))
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=font_size)
    draw.text((4, 2), read + ("." if ended else ""), fill=(255, 255, 255), font=font)
    if label is not None:
        draw.text((4, 2 + font_size + 2), label, fill=(140, 140, 140), font=font)
    sep = np.full((h * scale, 2, 3), 128, np.uint8)
    return np.concatenate([frame, sep, np.asarray(panel)], axis=1)


class ReadEnv(SingleEnv):
    """``paintrnn/Read-v0`` as a ``gymnasium.Env`` (see the module docstring)."""

    simulator = ReadSim


class ReadVectorEnv(NativeVectorEnv):
    """``paintrnn/Read-v0`` as a native ``gymnasium.vector.VectorEnv`` (``gym.make_vec``)."""

    simulator = ReadSim
