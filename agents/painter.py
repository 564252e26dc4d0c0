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

Colour painters for photos (``paintrnn.load("painter-colour")``): ``colour="fit"`` colours each stroke with
the least-squares colour of the target under it (:func:`fit_colours`; the network only places strokes),
``head="spatial"`` takes each stroke's centre from a heat map over the encoder's features, ``taper=False``
gives a stroke one radius and one opacity. :meth:`Painter.propose` is the ``StrokeProposer`` of
:mod:`paintrnn.painting` (``paint(method="agent")``): it paints each patch of a batch on top of the painting
so far.

Meeting the environment: :meth:`Painter.predict` takes ``paintrnn/Paint-v0`` (or ``PaintGrid-v0``)
observations as they come, one or a batch from the native vector env, and returns the env's action and the
next recurrent state (Stable-Baselines3's recurrent ``predict``); :meth:`Painter.check_env` says whether an
env's action layout fits the painter. :func:`make_vector_env` builds the training env of the RL modes.
:func:`load_model` rebuilds a painter from a checkpoint of any training mode.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401  (registers the environments)
import torch
import torch.nn.functional as F
from paintrnn.envs.paint import actions_to_strokes
from torch import Tensor, nn

from paintrnn.render import STROKE_FIELDS, render_strokes, stroke_coverage, stroke_size
from paintrnn.training import CheckpointError, export_weights, load_checkpoint, progress, save_checkpoint

if TYPE_CHECKING:  # the protocol's argument type only: the painter matches paintrnn.painting structurally
    from paintrnn.painting import PatchBatch

KIND = "painter"
"""The painter family's checkpoint kind (backprop mode, and the shipped checkpoint)."""
KINDS = {"backprop": KIND, "ppo": "painter-ppo", "ddpg": "painter-ddpg", "gan": "painter-gan"}
"""Checkpoint kind of each training mode: distinct, so that a run never resumes another mode's checkpoint;
:func:`load_model` reads them all."""

PROPOSE_DEFAULTS: dict[str, Any] = {"views": 8, "min_radius": 0.0, "samples": 0, "spread": 0.2, "picks": 0}
"""Settings of :meth:`Painter.propose` (attributes of the painter) when its checkpoint stores none
(``extra["propose"]``, written by :func:`export_painter`)."""
PROPOSE_CHUNK = 32
"""Patches that :meth:`Painter.propose` paints at once."""
PROPOSE_SEED = 20_240_601
"""Seed of the perturbations of :meth:`Painter.propose`, plus the index of the chunk's first patch, plus
``2**20`` times the initial seed of the batch's generator (``paint``'s ``seed``)."""

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
    opacity_range: tuple[float, float] = (0.0, 1.0)
    """Continuous action: stroke opacity range, as the env's option."""
    taper: bool = True
    """Continuous action: radius and opacity may differ between a stroke's ends (False: the start's values
    serve the whole stroke, as the round brush of paintrnn.painting)."""
    head: Literal["global", "spatial"] = "global"
    """Continuous action: where stroke positions come from. global: the LSTM state, like every other number;
    spatial (conditional painters): each stroke's centre is the soft-argmax of its own heat map over the
    encoder's ``S/4 x S/4`` feature map (conditioned on the LSTM state), and its three points are offsets from
    that centre (up to a quarter of the canvas), so a stroke goes where the features say the error is."""
    colour: Literal["action", "fit"] = "action"
    """Continuous action: a stroke's colour is its action's (``action``) or the least-squares colour of the
    target under the stroke, given the canvas and the stroke's alpha (``fit``, conditional painters only: the
    network places strokes, the closed form colours them, as primitive does)."""


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


def fit_colours(
    strokes: Tensor,
    canvas: Tensor,
    target: Tensor,
    *,
    mode: str = "hard",
    sharpness: float = 2.0,
    backend: str = "auto",
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Colour ``(B, k, 10 + C)`` strokes, in order, with the least-squares colour of ``target`` under each and
    composite them onto ``canvas`` (both ``(B, C, H, W)``); returns the coloured strokes and the new canvas.
    ``weight`` ``(B, 1, H, W)`` weighs the pixels' errors (0: a pixel that does not count, such as padding).

    With the stroke's alpha ``a`` and the canvas ``K`` before it, the new canvas ``K (1 - a) + c a`` is closest
    to the target ``T`` for ``c = sum(a (T - K (1 - a))) / sum(a^2)`` (per channel, clipped to [0, 1]). The
    alpha is the renderer's (``mode``, ``sharpness``, ``backend`` as in :func:`paintrnn.render.render_strokes`),
    so the canvas equals ``render_strokes`` of the returned strokes, and gradients reach the geometry through
    the colour too."""
    B, k = strokes.shape[:2]
    H, W = canvas.shape[-2:]
    alpha = stroke_coverage(strokes, H, W, mode=mode, sharpness=sharpness, backend=backend)  # (B, k, H, W)
    colours = []
    for j in range(k):
        a = alpha[:, j : j + 1]  # (B, 1, H, W)
        wa = a if weight is None else a * weight
        keep = canvas * (1 - a)
        c = ((wa * (target - keep)).sum((2, 3)) / ((wa * a).sum((2, 3)) + 1e-6)).clamp(0, 1)  # (B, C)
        canvas = keep + c[:, :, None, None] * a
        colours.append(c)
    return torch.cat([strokes[..., : len(STROKE_FIELDS)], torch.stack(colours, 1)], -1), canvas


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

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The feature map after the second convolution ``(B, 2 width, S/4, S/4)`` and the output ``(B, hidden)``."""
        fmap = self.conv[:4](x)
        return fmap, F.gelu(self.fc(self.conv[4:](fmap).flatten(1)))


class Painter(nn.Module):
    """Recurrent stroke policy with a value head (for PPO); see the module docstring."""

    def __init__(self, spec: PainterSpec) -> None:
        super().__init__()
        if spec.action == "grid" and not spec.nvec:
            raise ValueError("a grid painter needs nvec (the env's MultiDiscrete sizes)")
        if spec.colour not in ("action", "fit"):
            raise ValueError(f"colour must be 'action' or 'fit', got {spec.colour!r}")
        if spec.colour == "fit" and (spec.action != "continuous" or not spec.conditional):
            raise ValueError("colour='fit' needs a continuous, conditional painter (colours are fitted to the target)")
        if spec.head not in ("global", "spatial"):
            raise ValueError(f"head must be 'global' or 'spatial', got {spec.head!r}")
        if spec.head == "spatial" and spec.action != "continuous":
            raise ValueError("head='spatial' places continuous strokes; grid painters choose cells by their heads")
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
            if spec.head == "spatial":
                self.where = nn.Linear(spec.hidden, 2 * spec.width)  # the LSTM state's say in the heat maps
                self.heat = nn.Conv2d(2 * spec.width, spec.strokes_per_step, 1)  # one heat map per stroke
                nn.init.zeros_(self.heat.weight)  # uniform maps at first: every centre starts mid-canvas
                nn.init.zeros_(self.heat.bias)
        else:
            self.heads = nn.ModuleList(nn.Linear(spec.hidden, n) for n in spec.nvec)
            self.embeds = nn.ModuleList(nn.Embedding(n, spec.hidden) for n in spec.nvec)
        self.mode = ""
        """Training mode once trained or loaded ('backprop', 'ppo', 'ddpg' or 'gan'); '' when untrained."""
        self.train_config: dict[str, Any] = {}
        """The training config it came from (a checkpoint's ``config``), {} when untrained."""
        self.trained_iters = 0
        """Training iterations done (a checkpoint's ``step``)."""
        self.views = PROPOSE_DEFAULTS["views"]
        """:meth:`propose`: symmetric copies of each patch painted (1-8, :data:`SYMMETRIES` in order); the best
        is kept. 1 paints the patch as it is."""
        self.min_radius = PROPOSE_DEFAULTS["min_radius"]
        """:meth:`propose`: smallest stroke radius, a fraction of the view's side (smaller ones are raised to it
        as they are painted; 0: the spec's range alone)."""
        self.samples = PROPOSE_DEFAULTS["samples"]
        """:meth:`propose`: perturbed copies of each proposed stroke that are candidates too (0: none)."""
        self.spread = PROPOSE_DEFAULTS["spread"]
        """:meth:`propose`: std of the perturbations, on the pre-``tanh`` actions."""
        self.picks = PROPOSE_DEFAULTS["picks"]
        """:meth:`propose`: strokes chosen per step among the candidates (0: ``strokes_per_step``)."""

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
        if spec.head == "spatial":
            fmap, feat = self.encoder.features(x)  # (B, 2 width, S/4, S/4), (B, hidden)
        else:
            fmap, feat = None, self.encoder(x)
        h, c = self.lstm(feat, (h, c))  # (B, hidden)
        value = self.value_head(h).squeeze(-1)
        if spec.action == "continuous":
            mean = self.mean_head(h)
            if fmap is not None:
                mean = self._place(mean, fmap, h)
            return PolicyOutput(value, mean=mean, log_std=self.log_std), (h, c), None
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

    def _place(self, mean: Tensor, fmap: Tensor, h: Tensor) -> Tensor:
        """Spatial head: the action means ``(B, k * d)`` with the point entries set to ``centre + offset``,
        the centre a soft-argmax of each stroke's heat map, the offsets ``tanh`` of the head's numbers / 2."""
        k = self.spec.strokes_per_step
        logits = self.heat(F.gelu(fmap + self.where(h)[:, :, None, None])).flatten(2)  # (B, k, n*n)
        grid = coord_channels(1, fmap.shape[-1], fmap)[0].flatten(1)  # (2, n*n) cell centres in [-1, 1]
        centre = torch.softmax(logits, -1) @ grid.T  # (B, k, 2)
        u = mean.unflatten(-1, (k, -1))  # (B, k, d)
        points = centre.repeat(1, 1, 3) + 0.5 * torch.tanh(u[..., :6])  # (B, k, 6) in action units
        return torch.cat([torch.atanh(points.clamp(-0.999, 0.999)), u[..., 6:]], -1).flatten(1)

    def strokes(self, u: Tensor) -> Tensor:
        """Renderer strokes ``(B, k, 10 + C)`` of pre-``tanh`` actions ``u`` ``(B, k * d)`` (colour ``fit``: the
        colours are the actions' until :meth:`paint_step` fits them)."""
        spec = self.spec
        strokes = actions_to_strokes(torch.tanh(u), spec.channels, spec.radius_range, spec.opacity_range)
        if not spec.taper:  # one radius and one opacity per stroke
            strokes = torch.cat([strokes[..., :7], strokes[..., 6:7], strokes[..., 8:9], strokes[..., 8:9],
                                 strokes[..., 10:]], -1)  # fmt: skip
        return strokes

    def paint_step(
        self,
        u: Tensor,
        canvas: Tensor,
        target: Tensor | None = None,
        *,
        mode: str = "hard",
        sharpness: float = 2.0,
        backend: str = "auto",
        min_radius: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """Composite the strokes of actions ``u`` ``(B, k * d)`` onto ``canvas`` ``(B, C, H, W)``: returns the
        strokes ``(B, k, 10 + C)`` (colours fitted to ``target`` when the spec says ``fit``) and the new canvas.
        ``min_radius`` raises smaller radii to it (a fraction of the shorter side)."""
        strokes = self.strokes(u)
        if min_radius > 0:
            strokes = torch.cat([strokes[..., :6], strokes[..., 6:8].clamp(min=min_radius), strokes[..., 8:]], -1)
        if self.spec.colour == "fit":
            if target is None:
                raise ValueError("a colour-fitting painter needs the target to colour its strokes")
            return fit_colours(strokes, canvas, target, mode=mode, sharpness=sharpness, backend=backend)
        return strokes, render_strokes(strokes, canvas, mode=mode, sharpness=sharpness, backend=backend)

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
            act = torch.tanh(u).unflatten(-1, (-1, stroke_size(self.spec.channels)))  # (N, k, d)
            if not self.spec.taper:  # the env reads both ends: give them the start's values
                act = torch.cat([act[..., :7], act[..., 6:7], act[..., 8:9], act[..., 8:9], act[..., 10:]], -1)
            if self.spec.colour == "fit":  # the fitted colours, as actions
                strokes, _ = self.paint_step(u, canvas.float() / 255, target.float() / 255)
                act = torch.cat([act[..., : len(STROKE_FIELDS)], strokes[..., len(STROKE_FIELDS) :] * 2 - 1], -1)
            action = act.flatten(1).float().cpu().numpy()  # (N, k * d)
        else:
            action = grid.cpu().numpy()  # (N, len(nvec))
        return (action[0] if single else action), state

    @torch.no_grad()
    def propose(self, patches: PatchBatch, n: int) -> Tensor:
        """``n`` strokes for each crop of a batch of patches (the ``StrokeProposer`` protocol of
        :mod:`paintrnn.proposers`), ``(B, n, 10 + C)`` in the crops' normalised coordinates, in painting order.

        The painter looks at each patch's ``region`` (the pixel box around it, resized to ``image_size``; the
        painting so far and the photo, whose padding is replaced by the canvas so that it asks for nothing) and
        paints on top of it for ``ceil(n / picks)`` steps, in episodes of :attr:`episode_steps` steps (the state
        is reset between episodes), radii at least :attr:`min_radius` of the view. Each step is a small search
        among the policy's own strokes (:func:`choose_strokes`): the policy looks at :attr:`views` mirrored or
        turned copies of the view at once (:data:`SYMMETRIES`; it is not symmetric, so each copy proposes other
        strokes), each proposal also comes in :attr:`samples` perturbed copies (Gaussian noise of std
        :attr:`spread` on its pre-``tanh`` actions), and of all these candidates, undone onto the patch, the
        :attr:`picks` that lower the view's squared error most are chosen one after another, each in its
        least-squares colour (its own colour for ``colour="action"`` painters). Every copy then continues from
        the painting so chosen. The noise comes from a stream of its own, seeded by the chunk of patches and the
        initial seed of ``patches.generator`` (never drawn from), so a proposal depends on the patches and that
        seed alone (``paint(seed=...)`` changes it), and its first strokes do not depend on ``n``.

        The chosen strokes are mapped back to the crop: control points clamped into ``region``, radii to
        ``patches.radius`` (px), opacities to ``patches.opacity`` (when the batch has one); a colour-fitting
        painter's colours are then fitted again on the crop itself, at its resolution (hard coverage, padding
        excluded). Patches are painted :data:`PROPOSE_CHUNK` at a time (memory and speed)."""
        spec = self.spec
        if spec.action != "continuous" or not spec.conditional:
            raise ValueError("only a continuous, conditional painter proposes strokes for a picture")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of strokes must be a positive int, got {n!r}")
        canvas, target, valid = patches.canvas, patches.target, patches.valid
        if canvas.ndim != 4 or canvas.shape[1] != spec.channels or target.shape != canvas.shape:
            raise ValueError(f"patches must hold (B, {spec.channels}, h, w) canvas and target crops, got "
                             f"{tuple(canvas.shape)} and {tuple(target.shape)}")  # fmt: skip
        B, C, h, w = canvas.shape
        device = next(self.parameters()).device
        region = patches.region.detach().to("cpu", torch.float64)  # (B, 4) px
        box = torch.stack([region[:, 0].floor().clamp(0, w - 1), region[:, 1].floor().clamp(0, h - 1),
                           region[:, 2].ceil(), region[:, 3].ceil()], 1)  # fmt: skip
        box[:, 2] = torch.maximum(box[:, 2].clamp(max=w), box[:, 0] + 1)
        box[:, 3] = torch.maximum(box[:, 3].clamp(max=h), box[:, 1] + 1)
        goal = torch.where(valid > 0, target, canvas)  # padding asks for nothing
        size = spec.image_size
        view = _box_views(canvas.float().to(device), box, size)  # (B, C, S, S)
        view_goal = _box_views(goal.float().to(device), box, size)
        base = (patches.generator.initial_seed() << 20) if patches.generator is not None else 0  # paint's seed
        local = torch.cat([self._paint_views(view[i : i + PROPOSE_CHUNK], view_goal[i : i + PROPOSE_CHUNK], n,
                                             base + i) for i in range(0, B, PROPOSE_CHUNK)])  # fmt: skip
        local = local.to(canvas.device, torch.float64)  # (B, n, d) in the views' normalised coordinates
        reg, box = region.to(local.device)[:, None], box.to(local.device)[:, None]  # (B, 1, 4)
        side = torch.minimum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])  # (B, 1)
        xs = (box[..., 0:1] + local[..., 0:6:2] * (box[..., 2:3] - box[..., 0:1])).clamp(reg[..., 0:1], reg[..., 2:3])
        ys = (box[..., 1:2] + local[..., 1:6:2] * (box[..., 3:4] - box[..., 1:2])).clamp(reg[..., 1:2], reg[..., 3:4])
        r_lo, r_hi = patches.radius
        radius = (local[..., 6:8] * side[..., None]).clamp(r_lo, max(r_lo, r_hi))
        points = torch.stack([xs / w, ys / h], -1).flatten(-2)  # (B, n, 6): x0, y0, x1, y1, x2, y2
        a_lo, a_hi = getattr(patches, "opacity", (0.0, 1.0))  # the brush's opacities, where the batch says
        opacity = local[..., 8:10].clamp(a_lo, max(a_lo, a_hi))
        result = torch.cat([points, radius / min(h, w), opacity, local[..., 10:]], -1).float()
        if spec.colour == "fit":  # refit the colours at the crop's own resolution, on its pixels only
            crop = canvas.float()
            result, _ = fit_colours(result, crop, target.float(), backend="eager", weight=valid.float())
        return result.to(canvas.dtype if canvas.is_floating_point() else torch.float32)

    def _paint_views(self, view: Tensor, goal: Tensor, n: int, seed: int) -> Tensor:
        """:meth:`propose` on ``(B, C, S, S)`` views of the patches and of their goals: ``n`` chosen strokes
        ``(B, n, 10 + C)`` in the views' normalised coordinates (``seed`` seeds the perturbations)."""
        spec = self.spec
        B = view.shape[0]
        symmetries = SYMMETRIES[: max(1, min(self.views, len(SYMMETRIES)))]
        V, k = len(symmetries), spec.strokes_per_step
        picks = self.picks if self.picks > 0 else k
        generator = torch.Generator(device=view.device).manual_seed((PROPOSE_SEED + seed) % 2**63)
        turned_goal = torch.cat([_turn(goal, *sym) for sym in symmetries])  # (V B, C, S, S), symmetry-major
        chosen, state = [], self.initial_state(V * B, view.device)
        for t in range(-(-n // picks)):
            if t % self.episode_steps == 0:
                state = self.initial_state(V * B, view.device)
            turned = torch.cat([_turn(view, *sym) for sym in symmetries])
            out, state, _ = self.step(turned, state, turned_goal)
            actions = [out.mean] + [out.mean + self.spread * torch.randn(out.mean.shape, generator=generator,
                                    device=view.device) for _ in range(self.samples)]  # fmt: skip
            candidates = []
            for u in actions:
                strokes = self.strokes(u)  # (V B, k, d) in the turned views
                radii = strokes[..., 6:8].clamp(min=self.min_radius)
                strokes = torch.cat([strokes[..., :6], radii, strokes[..., 8:]], -1)
                strokes = strokes.unflatten(0, (V, B))
                strokes = torch.stack([_unturn_strokes(strokes[i], *sym) for i, sym in enumerate(symmetries)])
                candidates.append(strokes.transpose(0, 1).flatten(1, 2))  # (B, V k, d) on the patch itself
            chosen_t, view = choose_strokes(torch.cat(candidates, 1), view, goal, min(picks, n - t * picks),
                                            fit=spec.colour == "fit")  # fmt: skip
            chosen.append(chosen_t)
        return torch.cat(chosen, 1)

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
        for name, painters in (("radius_range", spec.radius_range), ("opacity_range", spec.opacity_range)):
            envs = tuple(getattr(options, name, painters))
            if spec.action == "continuous" and envs != tuple(painters):
                problems.append(f"the env's {name} is {envs}, the painter's {tuple(painters)}")
        if spec.conditional and "target" not in observations.spaces:
            problems.append("the painter is conditional but the env has no target")
        if problems:
            raise ValueError("the env does not fit this painter: " + "; ".join(problems))

    def forward(
        self,
        target: Tensor,
        steps: int,
        *,
        canvas: Tensor | None = None,
        sharpness: float = 2.0,
        mode: str = "soft",
        backend: str = "auto",
    ) -> list[Tensor]:
        """Paint ``target`` ``(B, C, H, W)`` in ``steps`` deterministic steps, on top of ``canvas`` (same shape;
        default black); returns the canvas after each step.

        Continuous policies only. Strokes are rendered at the target's resolution (``mode="soft"`` for
        backprop, ``"hard"`` for evaluation; ``backend`` as the renderer's); this is the unroll that backprop
        training differentiates.
        """
        if self.spec.action != "continuous":
            raise ValueError("forward() unrolls continuous painters; grid painters are trained by RL")
        target = prepare_images(target, self.spec.channels, None)
        B, C, H, W = target.shape
        canvas = target.new_zeros(B, C, H, W) if canvas is None else _start_canvas(canvas, target)
        state = self.initial_state(B, target.device)
        canvases = []
        for _ in range(steps):
            out, state, _ = self.step(canvas, state, target if self.spec.conditional else None)
            _, canvas = self.paint_step(out.mean, canvas, target, mode=mode, sharpness=sharpness, backend=backend)
            canvases.append(canvas)
        return canvases


SCORE_SCALE = 2
""":func:`choose_strokes` scores candidates on a grid this many times coarser than the canvas (when it divides)."""


def choose_strokes(
    candidates: Tensor, canvas: Tensor, target: Tensor, n: int, fit: bool = True
) -> tuple[Tensor, Tensor]:
    """Greedy choice of ``n`` of the ``(B, N, 10 + C)`` ``candidates`` for ``(B, C, S, S)`` canvases: one after
    another, the candidate whose stroke lowers the squared error to ``target`` most, each in its least-squares
    colour (``fit``) or its own; no candidate twice. Candidates are scored cheaply: on a grid :data:`SCORE_SCALE`
    times coarser (canvas and target averaged), with the approximate coverage of :func:`chord_coverage`. Returns
    the chosen strokes ``(B, n, 10 + C)`` with their colours and the canvas they paint (rendered exactly, hard).

    With the stroke's alpha ``a``, the canvas ``K`` and the target ``T`` (per channel), a colour ``c`` changes the
    error by ``sum(a^2 (c - K)^2 + 2 a (K - T)(c - K))``, which is minimised by ``c = sum(a^2 K - a (K - T)) /
    sum(a^2)``: both need only the sums of ``a`` and ``a^2`` against a few maps of ``K`` and ``T``, one batched
    matrix product per choice."""
    B, N = candidates.shape[:2]
    C, S = canvas.shape[1], canvas.shape[-1]
    d = len(STROKE_FIELDS)
    full, scale = canvas, SCORE_SCALE if S % SCORE_SCALE == 0 else 1
    if scale > 1:  # scored on a coarser grid
        S = S // scale
        canvas, target = F.avg_pool2d(canvas, scale), F.avg_pool2d(target, scale)
    alpha = chord_coverage(candidates, S)  # (B, N, S S)
    alpha2 = alpha * alpha
    sum_a2 = alpha2.sum(-1, keepdim=True).clamp(min=1e-6)  # (B, N, 1)
    rows = torch.arange(B, device=canvas.device)
    used = torch.zeros(B, N, dtype=torch.bool, device=canvas.device)
    K, T = canvas.flatten(2), target.flatten(2)  # (B, C, S S)
    chosen = []
    for _ in range(n):
        lin = torch.bmm(alpha, torch.cat([K, T, K * K, K * T], 1).transpose(1, 2))  # (B, N, 4 C)
        sq = torch.bmm(alpha2, torch.cat([K, K * K], 1).transpose(1, 2))  # (B, N, 2 C)
        a_k, a_t, a_kk, a_kt = lin.split(C, -1)
        a2_k, a2_kk = sq.split(C, -1)
        colour = ((a2_k - a_k + a_t) / sum_a2).clamp(0, 1) if fit else candidates[..., d:]  # (B, N, C)
        change = colour * colour * sum_a2 - 2 * colour * (a2_k - a_k + a_t) + a2_kk - 2 * a_kk + 2 * a_kt
        best = change.sum(-1).masked_fill(used, float("inf")).argmin(1)  # (B,)
        used[rows, best] = True
        a, c = alpha[rows, best][:, None], colour[rows, best]  # (B, 1, S S), (B, C)
        K = K + a * (c[..., None] - K)
        chosen.append(torch.cat([candidates[rows, best, :d], c], -1))
    chosen_t = torch.stack(chosen, 1)
    return chosen_t, render_strokes(chosen_t, full, mode="hard", backend="eager")


def chord_coverage(strokes: Tensor, size: int) -> Tensor:
    """Approximate hard alpha ``(B, N, size size)`` of ``(B, N, 10 + C)`` strokes on a ``size x size`` grid: each
    curve taken as the two chords ``P0 - B(1/2) - P2`` (off by at most ``|P0 - 2 P1 + P2| / 16``), the start's
    radius and opacity; dense and cheap, for scoring many small candidates."""
    p = strokes[..., :6] * size  # (B, N, 6) px
    x0, y0, x1, y1, x2, y2 = p.unbind(-1)
    xm, ym = 0.25 * (x0 + x2) + 0.5 * x1, 0.25 * (y0 + y2) + 0.5 * y1
    axis = torch.arange(size, device=strokes.device, dtype=strokes.dtype) + 0.5
    px, py = axis.repeat(size), axis.repeat_interleave(size)  # (P,) pixel centres, row-major
    dist2 = None
    for sx, sy, ex, ey in ((x0, y0, xm, ym), (xm, ym, x2, y2)):
        dx, dy = (ex - sx)[..., None], (ey - sy)[..., None]
        inv = 1.0 / (dx * dx + dy * dy).clamp(min=1e-9)
        ux, uy = px - sx[..., None], py - sy[..., None]  # (B, N, P)
        t = ((ux * dx + uy * dy) * inv).clamp(0, 1)
        qx, qy = ux - t * dx, uy - t * dy
        d2 = qx * qx + qy * qy
        dist2 = d2 if dist2 is None else torch.minimum(dist2, d2)
    d, r = dist2.sqrt(), strokes[..., 6:7] * size
    return ((r - d + 0.5).clamp(0, 1) - (0.5 - r - d).clamp(0, 1)) * strokes[..., 8:9]


def _box_views(images: Tensor, box: Tensor, size: int) -> Tensor:
    """The ``(B, C, size, size)`` views of ``(B, C, h, w)`` images inside their pixel boxes ``(B, 4)`` (x0, y0,
    x1, y1), resized as :func:`prepare_images` does; boxes of one shape are resized together."""
    boxes = box.long().tolist()
    out = images.new_empty(images.shape[0], images.shape[1], size, size)
    shapes: dict[tuple[int, int], list[int]] = {}
    for b, (x0, y0, x1, y1) in enumerate(boxes):
        shapes.setdefault((y1 - y0, x1 - x0), []).append(b)
    for idx in shapes.values():
        crops = torch.stack([images[b, :, boxes[b][1] : boxes[b][3], boxes[b][0] : boxes[b][2]] for b in idx])
        out[idx] = prepare_images(crops, images.shape[1], size)
    return out


SYMMETRIES: tuple[tuple[bool, bool, bool], ...] = (
    (False, False, False),
    (False, True, False),
    (False, False, True),
    (False, True, True),
    (True, False, False),
    (True, True, False),
    (True, False, True),
    (True, True, True),
)
"""The eight symmetries of a square as (transpose, mirror left-right, flip upside down), applied in that order:
identity, mirrored, flipped, turned half-way, then the same after swapping x and y."""


def _turn(images: Tensor, transpose: bool, mirror: bool, flip: bool) -> Tensor:
    """``(B, C, S, S)`` images under a symmetry of :data:`SYMMETRIES`."""
    if transpose:
        images = images.transpose(-1, -2)
    if mirror:
        images = images.flip(-1)
    if flip:
        images = images.flip(-2)
    return images


def _unturn_strokes(strokes: Tensor, transpose: bool, mirror: bool, flip: bool) -> Tensor:
    """``(..., 10 + C)`` strokes painted on turned images (:func:`_turn`) -> the same strokes on the originals."""
    x, y = strokes[..., 0:6:2], strokes[..., 1:6:2]
    if flip:
        y = 1 - y
    if mirror:
        x = 1 - x
    if transpose:
        x, y = y, x
    return torch.cat([torch.stack([x, y], -1).flatten(-2), strokes[..., 6:]], -1)


def _start_canvas(canvas: Tensor, target: Tensor) -> Tensor:
    """Check a starting canvas against its ``(B, C, H, W)`` target."""
    if not torch.is_tensor(canvas) or canvas.shape != target.shape:
        raise ValueError(f"the starting canvas must have the target's shape {tuple(target.shape)}, got "
                         f"{tuple(getattr(canvas, 'shape', ()))}")  # fmt: skip
    return canvas.to(target)


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
    for name, value in {**PROPOSE_DEFAULTS, **extra.get("propose", {})}.items():
        setattr(painter, name, type(PROPOSE_DEFAULTS[name])(value))
    painter.mode = extra.get("mode", "backprop")
    painter.train_config = dict(ckpt["config"])
    painter.trained_iters = int(ckpt.get("step", 0))
    return painter.eval()


def export_painter(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    views: int = PROPOSE_DEFAULTS["views"],
    min_radius: float = PROPOSE_DEFAULTS["min_radius"],
    samples: int = PROPOSE_DEFAULTS["samples"],
    spread: float = PROPOSE_DEFAULTS["spread"],
    picks: int = PROPOSE_DEFAULTS["picks"],
    half: bool | None = None,
) -> dict[str, Any]:
    """A small inference copy of a painter checkpoint (:func:`paintrnn.training.export_weights`: weights, config,
    spec; float16 above 4 MB unless ``half`` says) that also stores the :meth:`Painter.propose` settings
    (``extra["propose"]``), so that ``paintrnn.load`` gives a painter that proposes as it was measured."""
    if not 1 <= views <= len(SYMMETRIES) or not 0 <= min_radius <= 0.5:
        raise ValueError(f"views must be in 1..{len(SYMMETRIES)} and min_radius in [0, 0.5], got {views}, {min_radius}")
    if samples < 0 or picks < 0 or not spread >= 0:
        raise ValueError(f"samples and picks must be >= 0 and spread >= 0, got {samples}, {picks}, {spread}")
    ckpt = load_checkpoint(src)
    painter = load_model(src)
    extra = {k: v for k, v in ckpt.get("extra", {}).items() if not torch.is_tensor(v) and k != "rng"}
    extra["propose"] = {"views": int(views), "min_radius": float(min_radius), "samples": int(samples),
                        "spread": float(spread), "picks": int(picks)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "checkpoint.pt"
        save_checkpoint(full, kind=ckpt["kind"], config=ckpt["config"], model=painter, step=ckpt.get("step", 0),
                        extra=extra)  # fmt: skip
        return export_weights(full, dst, half=half)


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
    canvas: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Deterministic hard-rendered episodes of a continuous painter.

    Returns the canvases after every stroke ``(B, steps * k, C, H, W)`` (stroke by stroke, for GIFs) and
    the strokes ``(B, steps * k, 10 + C)``. ``target`` ``(B, C, H, W)`` may be ``None`` for unconditional
    painters (then ``batch`` canvases of ``height x width`` are painted). ``canvas``: the starting canvases
    (the target's shape; default black).
    """
    spec = painter.spec
    device = next(painter.parameters()).device
    if target is not None:
        target = prepare_images(target.to(device), spec.channels, None)
        B, C, H, W = target.shape
    else:
        B, C, H, W = batch, spec.channels, height, width
    start = torch.zeros(B, C, H, W, device=device)
    canvas = start if canvas is None else _start_canvas(canvas, start)
    state = painter.initial_state(B, device)
    frames, all_strokes = [], []
    for _ in range(steps):
        out, state, _ = painter.step(canvas, state, target)
        u = out.mean
        if generator is not None:
            noise = torch.randn(u.shape, generator=generator, dtype=u.dtype).to(u.device)
            u = u + out.log_std.exp() * noise
        strokes = painter.paint_step(u, canvas, target)[0] if spec.colour == "fit" else painter.strokes(u)
        for k in range(strokes.shape[1]):
            canvas = render_strokes(strokes[:, k : k + 1], canvas, mode="hard")
            frames.append(canvas)
        all_strokes.append(strokes)
    return torch.stack(frames, 1), torch.cat(all_strokes, 1)


@torch.no_grad()
def evaluate_mse(
    painter: Painter,
    targets: Tensor,
    strokes: int,
    size: int = 64,
    batch: int = 250,
    show: bool = False,
    canvases: Tensor | None = None,
) -> list[float]:
    """Mean squared error per pixel after each of the first ``strokes`` strokes (index n-1: after n strokes),
    hard renderer at ``size`` px; ``targets`` uint8 (or float in [0, 1]) ``(N, C, h, w)``; ``canvases``: float
    starting canvases ``(N, C, size, size)`` (default black). ``strokes`` rounds up to whole steps."""
    device = next(painter.parameters()).device
    steps = -(-strokes // painter.spec.strokes_per_step)
    total = torch.zeros(steps * painter.spec.strokes_per_step, dtype=torch.float64)
    for i in progress(range(0, len(targets), batch), enabled=show, desc="evaluate", leave=False):
        tgt = prepare_images(targets[i : i + batch].to(device), painter.spec.channels, size)
        start = None if canvases is None else canvases[i : i + batch].to(device)
        canvases_, _ = paint(painter, tgt, steps, canvas=start)  # (B, steps*k, C, H, W)
        total += ((canvases_ - tgt[:, None]) ** 2).mean((2, 3, 4)).sum(0).double().cpu()
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
        render_backend="eager",  # "auto" may switch to compiled kernels mid-run: results would repeat only to rounding
    )
    if env_id.endswith("Paint-v0"):
        options["strokes_per_step"] = strokes_per_step
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode="same_step", **options
    )
