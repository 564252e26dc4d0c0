"""The painter: a recurrent stroke policy (SPIRAL / Learning to Paint, with an exact renderer).

Each step the policy looks at the canvas (and the target and their difference, when conditional) through a
small convolutional encoder with two coordinate channels, updates an LSTM whose state carries the plan
across steps, and emits ``k`` strokes at once (the "action bundle" of Learning to Paint) in the
environment's action layout:

* ``action="continuous"`` (``paintrnn/Paint-v0``): ``k * d`` numbers in ``[-1, 1]`` (``d = 10 + C``), a
  diagonal Gaussian on the pre-``tanh`` values ``u``; the action is ``tanh(u)`` and the deterministic
  action ``tanh(mean)``. Paint-v0's public ``actions_to_strokes`` maps actions to renderer strokes
  differentiably, so backprop and RL share the environment's action semantics exactly.
* ``action="grid"`` (``paintrnn/PaintGrid-v0``): one categorical per entry of ``nvec``, sampled
  autoregressively (SPIRAL): each choice is embedded and added to the context of the next head.

The recurrent state is explicit: :meth:`Painter.initial_state` gives zeros, :meth:`Painter.step` takes the
observation and the state and returns a :class:`PolicyOutput` and the next state; ``reset`` (a ``(B,)``
bool mask) zeroes the state of episodes that begin at this step. :meth:`Painter.forward` unrolls ``step``.
Inputs of another size are resized to ``image_size``; a wrong channel count is a ``ValueError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from paintrnn.envs.paint import actions_to_strokes
from torch import Tensor, nn

from paintrnn.render import render_strokes, stroke_size
from paintrnn.training import load_checkpoint

KIND = "painter"
"""Checkpoint kind of every painter mode (the mode is in ``extra["mode"]``)."""

State = tuple[Tensor, Tensor]
"""LSTM ``(h, c)``, each ``(B, hidden)``."""


@dataclass(frozen=True)
class PainterSpec:
    """Architecture of a :class:`Painter` (saved in checkpoints to rebuild the model)."""

    channels: int = 1
    """Colour channels of canvas and target (1 = grey, 3 = RGB)."""
    image_size: int = 64
    """Side of the square images the encoder sees; other sizes are resized to it."""
    strokes_per_step: int = 5
    """k: strokes emitted per step (the action bundle)."""
    conditional: bool = True
    """Whether the encoder also sees a target image (reconstruction) or only the canvas (doodling)."""
    hidden: int = 256
    """LSTM state size."""
    width: int = 32
    """Channels of the first convolution (doubled twice in the deeper layers)."""
    action: Literal["continuous", "grid"] = "continuous"
    """Action layout: continuous Box for Paint-v0, autoregressive categoricals for PaintGrid-v0."""
    nvec: tuple[int, ...] = ()
    """Grid action: number of choices of each categorical (the env's MultiDiscrete nvec)."""
    radius_range: tuple[float, float] = (0.01, 0.1)
    """Continuous action: brush radius range (fraction of the shorter side), as the env's option."""


class PolicyOutput(NamedTuple):
    """What one policy step produces. Continuous: ``mean``/``log_std`` of ``u``; grid: ``logits``."""

    value: Tensor  # (B,)
    mean: Tensor | None = None  # (B, k*d)
    log_std: Tensor | None = None  # (k*d,)
    logits: list[Tensor] | None = None  # one (B, n_i) per categorical (teacher-forced when actions given)


def coord_channels(batch: int, size: int, like: Tensor) -> Tensor:
    """Two channels holding the x and y pixel-centre coordinates in [-1, 1]: ``(B, 2, size, size)``."""
    axis = (torch.arange(size, device=like.device, dtype=like.dtype) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx, yy]).expand(batch, 2, size, size)


def prepare_images(images: Tensor, channels: int, size: int | None, name: str = "target") -> Tensor:
    """Check ``(B, C, H, W)`` images in [0, 1] (uint8 is scaled) and resize them to ``size x size`` (if given)."""
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if images.shape[1] != channels:
        raise ValueError(f"{name} has {images.shape[1]} channels, the painter expects {channels} (shape (B, C, H, W))")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got dtype {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if size is not None and images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images.clamp(0, 1)


class Encoder(nn.Module):
    """Conv net: ``(B, in, S, S)`` -> ``(B, hidden)``; four stride-2 convolutions then a linear layer."""

    def __init__(self, in_channels: int, size: int, width: int, hidden: int) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 5 if i == 0 else 3, 2, 2 if i == 0 else 1), nn.GELU()]
        self.conv = nn.Sequential(*layers)
        side = size
        for _ in range(4):
            side = (side + 1) // 2
        self.fc = nn.Linear(chans[-1] * side * side, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.fc(self.conv(x).flatten(1)))


class Painter(nn.Module):
    """Recurrent stroke policy with a value head (for PPO); see the module docstring."""

    def __init__(self, spec: PainterSpec) -> None:
        super().__init__()
        if spec.action == "grid" and not spec.nvec:
            raise ValueError("a grid painter needs nvec (the env's MultiDiscrete sizes)")
        self.spec = spec
        c = spec.channels
        self.action_dim = spec.strokes_per_step * stroke_size(c)
        self.encoder = Encoder(c * (3 if spec.conditional else 1) + 2, spec.image_size, spec.width, spec.hidden)
        self.lstm = nn.LSTMCell(spec.hidden, spec.hidden)
        self.value_head = nn.Linear(spec.hidden, 1)
        if spec.action == "continuous":
            self.mean_head = nn.Linear(spec.hidden, self.action_dim)
            nn.init.normal_(self.mean_head.weight, std=0.01)
            nn.init.uniform_(self.mean_head.bias, -1.0, 1.0)  # strokes start spread out, not all alike
            self.log_std = nn.Parameter(torch.full((self.action_dim,), -1.0))
        else:
            self.heads = nn.ModuleList(nn.Linear(spec.hidden, n) for n in spec.nvec)
            self.embeds = nn.ModuleList(nn.Embedding(n, spec.hidden) for n in spec.nvec)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        z = torch.zeros(batch, self.spec.hidden, device=device)
        return z, z.clone()

    def step(
        self,
        canvas: Tensor,
        state: State,
        target: Tensor | None = None,
        reset: Tensor | None = None,
        grid_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[PolicyOutput, State, Tensor | None]:
        """One step: ``canvas`` (and ``target``) ``(B, C, H, W)`` -> (output, next state, grid action).

        ``reset`` ``(B,)`` zeroes the incoming state of episodes starting now. For grid policies,
        ``grid_actions`` ``(B, len(nvec))`` teacher-forces the autoregressive heads (to evaluate stored
        actions); otherwise they are sampled and returned as the third element (``None`` when continuous).
        """
        spec = self.spec
        x = prepare_images(canvas, spec.channels, spec.image_size, "canvas")
        if spec.conditional:
            if target is None:
                raise ValueError("a conditional painter needs a target image")
            goal = prepare_images(target, spec.channels, spec.image_size)
            x = torch.cat([x, goal, goal - x], 1)  # canvas, target and what is still missing
        x = torch.cat([x, coord_channels(x.shape[0], spec.image_size, x)], 1)  # (B, in, S, S)
        h, c = state
        if reset is not None:
            keep = (~reset.bool()).to(h.dtype)[:, None]  # (B, 1)
            h, c = h * keep, c * keep
        h, c = self.lstm(self.encoder(x), (h, c))  # (B, hidden)
        value = self.value_head(h).squeeze(-1)
        if spec.action == "continuous":
            return PolicyOutput(value, mean=self.mean_head(h), log_std=self.log_std), (h, c), None
        logits, chosen, z = [], [], h
        for i, (head, embed) in enumerate(zip(self.heads, self.embeds)):
            lg = head(F.gelu(z))  # (B, n_i)
            a = grid_actions[:, i] if grid_actions is not None else _sample(lg, generator)
            logits.append(lg)
            chosen.append(a)
            z = z + embed(a)
        return PolicyOutput(value, logits=logits), (h, c), torch.stack(chosen, 1)

    def strokes(self, u: Tensor) -> Tensor:
        """Renderer strokes ``(B, k, 10 + C)`` of pre-``tanh`` actions ``u`` ``(B, k * d)``."""
        return actions_to_strokes(torch.tanh(u), self.spec.channels, self.spec.radius_range)

    def forward(
        self, target: Tensor, steps: int, *, sharpness: float = 2.0, mode: str = "soft", backend: str = "auto"
    ) -> list[Tensor]:
        """Paint ``target`` ``(B, C, H, W)`` in ``steps`` deterministic steps; returns the canvas after each.

        Continuous policies only. Strokes are rendered at the target's resolution (``mode="soft"`` for
        backprop, ``"hard"`` for evaluation; ``backend`` as the renderer's); this is the unroll that backprop
        training differentiates.
        """
        if self.spec.action != "continuous":
            raise ValueError("forward() unrolls continuous painters; grid painters are trained by RL")
        target = prepare_images(target, self.spec.channels, None)
        B, C, H, W = target.shape
        canvas = target.new_zeros(B, C, H, W)
        state = self.initial_state(B, target.device)
        canvases = []
        for _ in range(steps):
            out, state, _ = self.step(canvas, state, target if self.spec.conditional else None)
            strokes = self.strokes(out.mean)  # (B, k, 10 + C)
            canvas = render_strokes(strokes, canvas, mode=mode, sharpness=sharpness, backend=backend)
            canvases.append(canvas)
        return canvases


def load_painter(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Painter, dict]:
    """Rebuild a painter from a checkpoint of any painter mode (``weights_only`` load; corrupt files raise
    :class:`paintrnn.training.CheckpointError`). Returns the painter in eval mode and the checkpoint dict."""
    ckpt = load_checkpoint(path, device, kind=KIND)
    spec = PainterSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["extra"]["spec"].items()})
    painter = Painter(spec).to(device)
    painter.load_state_dict(ckpt["model"])
    return painter.eval(), ckpt


def _sample(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    probs = torch.softmax(logits.float(), -1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def paint(
    painter: Painter,
    target: Tensor | None,
    steps: int,
    height: int = 64,
    width: int = 64,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Deterministic hard-rendered episodes of a continuous painter.

    Returns the canvases after every stroke ``(B, steps * k, C, H, W)`` (stroke by stroke, for GIFs) and
    the strokes ``(B, steps * k, 10 + C)``. ``target`` ``(B, C, H, W)`` may be ``None`` for unconditional
    painters (then ``batch`` canvases of ``height x width`` are painted).
    """
    spec = painter.spec
    device = next(painter.parameters()).device
    if target is not None:
        target = prepare_images(target.to(device), spec.channels, None)
        B, C, H, W = target.shape
    else:
        B, C, H, W = batch, spec.channels, height, width
    canvas = torch.zeros(B, C, H, W, device=device)
    state = painter.initial_state(B, device)
    frames, all_strokes = [], []
    for _ in range(steps):
        out, state, _ = painter.step(canvas, state, target)
        u = out.mean
        if generator is not None:
            noise = torch.randn(u.shape, generator=generator, dtype=u.dtype).to(u.device)
            u = u + out.log_std.exp() * noise
        strokes = painter.strokes(u)
        for k in range(strokes.shape[1]):
            canvas = render_strokes(strokes[:, k : k + 1], canvas, mode="hard")
            frames.append(canvas)
        all_strokes.append(strokes)
    return torch.stack(frames, 1), torch.cat(all_strokes, 1)
