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

Meeting the environment: :meth:`Painter.predict` takes ``paintrnn/Paint-v0`` (or ``PaintGrid-v0``)
observations as they come, one or a batch from the native vector env, and returns the env's action and the
next recurrent state (Stable-Baselines3's recurrent ``predict``); :meth:`Painter.check_env` says whether an
env's action layout fits the painter. :func:`make_vector_env` builds the training env of the RL modes.
:func:`load_model` rebuilds a painter from a checkpoint of any training mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401  (registers the environments)
import torch
import torch.nn.functional as F
from paintrnn.envs.paint import actions_to_strokes
from torch import Tensor, nn

from paintrnn.render import render_strokes, stroke_size
from paintrnn.training import CheckpointError, load_checkpoint, progress

KIND = "painter"
"""The painter family's checkpoint kind (backprop mode, and the shipped checkpoint)."""
KINDS = {"backprop": KIND, "ppo": "painter-ppo", "ddpg": "painter-ddpg", "gan": "painter-gan"}
"""Checkpoint kind of each training mode: distinct, so that a run never resumes another mode's checkpoint;
:func:`load_model` reads them all."""

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
        self.mode = ""
        """Training mode once trained or loaded ('backprop', 'ppo', 'ddpg' or 'gan'); '' when untrained."""
        self.train_config: dict[str, Any] = {}
        """The training config it came from (a checkpoint's ``config``), {} when untrained."""
        self.trained_iters = 0
        """Training iterations done (a checkpoint's ``step``)."""

    @property
    def episode_steps(self) -> int:
        """Steps per episode it was trained for (``train_config["steps"]``; 2 when unknown)."""
        return int(self.train_config.get("steps", 2))

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
        greedy: bool = False,
    ) -> tuple[PolicyOutput, State, Tensor | None]:
        """One step: ``canvas`` (and ``target``) ``(B, C, H, W)`` -> (output, next state, grid action).

        ``reset`` ``(B,)`` zeroes the incoming state of episodes starting now. For grid policies,
        ``grid_actions`` ``(B, len(nvec))`` teacher-forces the autoregressive heads (to evaluate stored
        actions); otherwise they are sampled (``greedy``: the most likely choice of each head, in turn) and
        returned as the third element (``None`` when continuous).
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
            if grid_actions is not None:
                a = grid_actions[:, i]
            else:
                a = lg.argmax(-1) if greedy else _sample(lg, generator)
            logits.append(lg)
            chosen.append(a)
            z = z + embed(a)
        return PolicyOutput(value, logits=logits), (h, c), torch.stack(chosen, 1)

    def strokes(self, u: Tensor) -> Tensor:
        """Renderer strokes ``(B, k, 10 + C)`` of pre-``tanh`` actions ``u`` ``(B, k * d)``."""
        return actions_to_strokes(torch.tanh(u), self.spec.channels, self.spec.radius_range)

    @torch.no_grad()
    def predict(
        self,
        observation: Mapping[str, Any],
        state: State | None = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, State]:
        """The action for ``paintrnn/Paint-v0`` (or ``PaintGrid-v0``) observations, and the next recurrent state.

        ``observation``: the env's dict, uint8 ``canvas`` (and ``target``, for a conditional painter) of one
        env ``(H, W, C)`` or a batch from the native vector env ``(N, H, W, C)``; other keys are ignored, and
        canvases of another size are resized for the encoder. ``state``: what the previous call returned
        (``None``: every episode starts now). ``episode_start``: bool ``(N,)`` (or one bool), True where the
        episode starts at this observation; those rows' state is reset (Stable-Baselines3's recurrent
        ``predict``). Returns the action the env takes, float32 ``(k * (10 + C),)`` in [-1, 1] (``tanh`` of
        the mean, or of a Gaussian sample when not ``deterministic``) or int64 ``(len(nvec),)`` for a grid
        painter, with a leading ``N`` axis for a batch; and the state to pass to the next call.
        Call :meth:`check_env` once to check that the env's action layout is this painter's.
        """
        if not isinstance(observation, Mapping) or "canvas" not in observation:
            raise ValueError("observation must be the env's dict with a 'canvas' (a paintrnn canvas env's observation)")
        device = next(self.parameters()).device
        single = np.ndim(observation["canvas"]) == 3
        canvas = obs_images(observation, "canvas", device)  # (N, C, H, W) uint8
        target = None
        if self.spec.conditional:
            if "target" not in observation:
                raise ValueError("this painter is conditional: the observation needs a 'target' (an env with targets)")
            target = obs_images(observation, "target", device)
        n = canvas.shape[0]
        if state is None:
            state = self.initial_state(n, device)
        elif state[0].shape[0] != n:
            raise ValueError(f"state holds {state[0].shape[0]} episodes, the observation {n}")
        reset = None
        if episode_start is not None:
            reset = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(-1), device=device)
            if reset.shape != (n,):
                raise ValueError(f"episode_start must hold one bool per episode ({n}), got {np.shape(episode_start)}")
        out, state, grid = self.step(canvas, state, target, reset=reset, greedy=deterministic)
        if self.spec.action == "continuous":
            u = out.mean if deterministic else out.mean + out.log_std.exp() * torch.randn_like(out.mean)
            action = torch.tanh(u).float().cpu().numpy()  # (N, k * d)
        else:
            action = grid.cpu().numpy()  # (N, len(nvec))
        return (action[0] if single else action), state

    def check_env(self, env: gym.Env | gym.vector.VectorEnv) -> None:
        """Raise a ``ValueError`` naming every mismatch between ``env`` (single or vector) and this painter:
        action layout (strokes per step and colour channels, or the grid's choices), brush radius range,
        targets. The canvas size may differ: strokes are placed in fractions of the canvas, and the encoder
        resizes what it sees."""
        spec = self.spec
        actions = getattr(env, "single_action_space", env.action_space)
        observations = getattr(env, "single_observation_space", env.observation_space)
        problems = []
        channels = observations["canvas"].shape[-1]
        if channels != spec.channels:
            problems.append(f"canvas has {channels} channels, the painter paints {spec.channels}")
        if spec.action == "continuous":
            d = stroke_size(spec.channels)
            if not isinstance(actions, gym.spaces.Box) or actions.shape != (spec.strokes_per_step * d,):
                problems.append(
                    f"actions are {actions}, the painter emits {spec.strokes_per_step} strokes of {d} numbers "
                    f"per step (Box of shape ({spec.strokes_per_step * d},): make the env with "
                    f"strokes_per_step={spec.strokes_per_step}, channels={spec.channels})"
                )
        elif not isinstance(actions, gym.spaces.MultiDiscrete) or tuple(actions.nvec.tolist()) != spec.nvec:
            problems.append(f"actions are {actions}, the grid painter chooses among nvec={spec.nvec}")
        options = getattr(getattr(getattr(env, "unwrapped", env), "sim", None), "config", None)
        for name, painters in (("radius_range", spec.radius_range), ("opacity_range", (0.0, 1.0))):
            envs = tuple(getattr(options, name, painters))
            if spec.action == "continuous" and envs != tuple(painters):
                problems.append(f"the env's {name} is {envs}, the painter's {tuple(painters)}")
        if spec.conditional and "target" not in observations.spaces:
            problems.append("the painter is conditional but the env has no target")
        if problems:
            raise ValueError("the env does not fit this painter: " + "; ".join(problems))

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


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Painter:
    """Rebuild a painter, in eval mode, from a checkpoint of any training mode (``weights_only`` load; a
    corrupt file or another model's raises :class:`paintrnn.training.CheckpointError`). Its training mode,
    config and iterations are on the painter (:attr:`Painter.mode`, ``train_config``, ``trained_iters``)."""
    ckpt = load_checkpoint(path, device)
    if ckpt["kind"] not in KINDS.values():
        raise CheckpointError(f"{path} holds a {ckpt['kind']!r} model, not a painter ({sorted(set(KINDS.values()))})")
    extra = ckpt.get("extra", {})
    if "spec" not in extra:
        raise CheckpointError(f"{path} has no painter architecture (extra['spec']): it cannot be rebuilt")
    spec = PainterSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in extra["spec"].items()})
    painter = Painter(spec).to(device)
    painter.load_state_dict(ckpt["model"])
    painter.mode = extra.get("mode", "backprop")
    painter.train_config = dict(ckpt["config"])
    painter.trained_iters = int(ckpt.get("step", 0))
    return painter.eval()


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


@torch.no_grad()
def evaluate_mse(
    painter: Painter, targets: Tensor, strokes: int, size: int = 64, batch: int = 250, show: bool = False
) -> list[float]:
    """Mean squared error per pixel after each of the first ``strokes`` strokes (index n-1: after n strokes),
    hard renderer at ``size`` px; ``targets`` uint8 ``(N, C, h, w)``. ``strokes`` rounds up to whole steps."""
    device = next(painter.parameters()).device
    steps = -(-strokes // painter.spec.strokes_per_step)
    total = torch.zeros(steps * painter.spec.strokes_per_step, dtype=torch.float64)
    for i in progress(range(0, len(targets), batch), enabled=show, desc="evaluate", leave=False):
        tgt = prepare_images(targets[i : i + batch].to(device), painter.spec.channels, size)
        canvases, _ = paint(painter, tgt, steps)  # (B, steps*k, C, H, W)
        total += ((canvases - tgt[:, None]) ** 2).mean((2, 3, 4)).sum(0).double().cpu()
    return (total / len(targets)).tolist()[:strokes]


def obs_images(obs: Mapping[str, Any], key: str, device: torch.device | str) -> Tensor:
    """Images of a canvas env's observation, uint8 ``(N, H, W, C)`` (or one ``(H, W, C)``) -> uint8
    ``(N, C, H, W)`` tensor on ``device``."""
    images = torch.as_tensor(np.asarray(obs[key]), device=device)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"observation[{key!r}] must be (H, W, C) or (N, H, W, C), got shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).contiguous()


def make_vector_env(
    num_envs: int,
    *,
    env_id: str = "paintrnn/Paint-v0",
    canvas_size: int = 64,
    steps: int = 2,
    strokes_per_step: int = 5,
    target: str = "mnist",
    reward: str = "l2_delta",
    data_dir: str | None = None,
    device: torch.device | str = "cpu",
) -> gym.vector.VectorEnv:
    """The RL modes' training env: the native vector env of ``env_id`` (grey ``canvas_size`` px canvases,
    ``target`` 'none' for none), every episode exactly ``steps`` steps, SAME_STEP autoreset."""
    options: dict[str, Any] = dict(
        height=canvas_size,
        width=canvas_size,
        channels=1,
        max_steps=steps,
        target=None if target == "none" else target,
        reward=reward,
        data_dir=data_dir,
        device=str(device),
    )
    if env_id.endswith("Paint-v0"):
        options["strokes_per_step"] = strokes_per_step
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode="same_step", **options
    )
