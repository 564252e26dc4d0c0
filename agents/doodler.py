"""The doodler: the recurrent stroke painter as a generator, noise in, strokes out.

A noise vector ``z`` sets the painter's initial LSTM state (``h_0 = tanh(A z)``, ``c_0 = B z``) and is added, through
a third linear map, to what the LSTM reads at every step; from there an unconditional
:class:`~paintrnn.agents.painter.Painter` (its encoder, LSTM and action head) looks at its own canvas and adds ``k``
strokes per step for ``steps`` steps, deterministically (the stroke parameters are its action means). The noise
enters every step because a recurrent generator that only starts from it learns to forget it: every noise then
draws the same doodle. All the randomness of a
doodle is in ``z``, so the whole map ``z -> strokes -> canvas`` is one differentiable function through the soft
renderer, and a discriminator's gradient reaches every stroke: :mod:`paintrnn.agents.doodle_train` trains it by
backpropagation, with no reinforcement learning (SPIRAL's RL doodler had no differentiable renderer).

``z`` comes from N(0, 1), or, with ``prior_components``, from a Gaussian mixture fitted after training to the noise
that the trainer's encoder gives real digits (:mod:`paintrnn.mixture`): the doodles then stay where the doodler
learnt to draw digits, and every kind of digit keeps its share.

Strokes re-render at any size: :meth:`Doodler.sample` draws doodles with the hard renderer at 64 px (what the
benchmark measures), :meth:`Doodler.unroll` renders with the soft renderer at the training size, and
:func:`doodle_frames` gives the stroke-by-stroke frames of a grid of doodles for GIFs. :func:`load_model` rebuilds
a doodler (its weight average, when the run kept one) from a checkpoint of kind ``doodler``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from paintrnn.agents.painter import Painter, PainterSpec, coord_channels, prepare_images
from torch import Tensor, nn

from paintrnn.media import grid_frames
from paintrnn.mixture import GaussianMixture
from paintrnn.render import render_strokes
from paintrnn.training import inference_weights, load_checkpoint

KIND = "doodler"
"""Checkpoint kind of the doodler (its trainer writes it, :func:`load_model` reads it)."""


@dataclass(frozen=True)
class DoodlerSpec:
    """Architecture of a :class:`Doodler` (saved in checkpoints to rebuild it)."""

    canvas_size: int = 32
    """Side of the canvas the painter's encoder sees (and the training canvas)."""
    strokes_per_step: int = 5
    """k: strokes added per step."""
    steps: int = 2
    """Steps per doodle: a doodle has ``steps * strokes_per_step`` strokes."""
    z_size: int = 64
    """Noise dimensions."""
    hidden: int = 256
    """LSTM state size."""
    width: int = 32
    """Channels of the encoder's first convolution."""
    radius_range: tuple[float, float] = (0.01, 0.1)
    """Brush radius range, a fraction of the canvas side."""
    opacity_range: tuple[float, float] = (0.0, 1.0)
    """Stroke opacity range."""
    taper: bool = True
    """Strokes may change radius and opacity along their length."""
    action_noise: bool = False
    """Also add Gaussian noise to every step's stroke actions (before ``tanh``), scaled by the painter's learned
    ``exp(log_std)``: the RL policy's sampling, reparametrised so that it stays differentiable. The noise vector
    then holds ``z_size + steps * k * 11`` numbers."""
    prior_components: int = 0
    """Components of the Gaussian-mixture prior over ``z`` (fitted after training to the encoded noise of real
    digits, :meth:`Doodler.set_prior`); 0: doodles are drawn from N(0, 1)."""

    def __post_init__(self) -> None:
        for name in ("canvas_size", "strokes_per_step", "steps", "z_size", "hidden", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"DoodlerSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.prior_components < 0:
            raise ValueError(f"DoodlerSpec.prior_components must be >= 0, got {self.prior_components}")

    @property
    def strokes(self) -> int:
        """Strokes per doodle."""
        return self.steps * self.strokes_per_step

    @property
    def noise_size(self) -> int:
        """Numbers in one doodle's noise vector: ``z_size``, plus every step's action noise (``action_noise``)."""
        return self.z_size + (self.strokes * 11 if self.action_noise else 0)

    def painter_spec(self) -> PainterSpec:
        """The unconditional painter inside."""
        return PainterSpec(channels=1, image_size=self.canvas_size, strokes_per_step=self.strokes_per_step,
                           conditional=False, hidden=self.hidden, width=self.width, radius_range=self.radius_range,
                           opacity_range=self.opacity_range, taper=self.taper)  # fmt: skip


class Doodler(nn.Module):
    """Noise -> initial LSTM state -> an unconditional painter's strokes (see the module docstring)."""

    def __init__(self, spec: DoodlerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.painter = Painter(spec.painter_spec())
        self.start = nn.Linear(spec.z_size, 2 * spec.hidden)
        self.inject = nn.Linear(spec.z_size, spec.hidden)  # the noise's share of the LSTM input at every step
        head = self.painter.mean_head  # the policy's near-constant start would make every doodle the same:
        nn.init.normal_(head.weight, std=2 / math.sqrt(spec.hidden))  # strokes follow the noise from the start
        nn.init.uniform_(head.bias, -0.5, 0.5)
        K, Z = spec.prior_components, spec.z_size
        if K:  # the mixture prior, N(0, 1) in every component until set_prior fits it
            self.register_buffer("prior_log_weights", torch.full((K,), -math.log(K)))
            self.register_buffer("prior_means", torch.zeros(K, Z))
            self.register_buffer("prior_chol", torch.eye(Z).expand(K, Z, Z).clone())
        self.train_config: dict = {}
        """The training config it came from (a checkpoint's ``config``), {} when untrained."""
        self.trained_iters = 0
        """Training iterations done (a checkpoint's ``step``)."""

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` noise vectors ``(n, noise_size)`` on the doodler's device (drawn on the CPU): ``z`` from the prior
        (N(0, 1), or the fitted mixture), then standard normal action noise."""
        device = self.start.weight.device
        eps = torch.randn(n, self.spec.noise_size, generator=generator)
        if not self.spec.prior_components:
            return eps.to(device)
        z = self.prior().sample(n, generator, eps=eps[:, : self.spec.z_size])
        return torch.cat([z, eps[:, self.spec.z_size :].to(device)], 1)

    def prior(self) -> GaussianMixture | None:
        """The mixture prior over ``z`` (``None``: N(0, 1))."""
        if not self.spec.prior_components:
            return None
        return GaussianMixture(self.prior_log_weights, self.prior_means, self.prior_chol)

    @torch.no_grad()
    def set_prior(self, mixture: GaussianMixture) -> None:
        """Draw ``z`` from ``mixture`` from now on (``prior_components`` components over ``z_size`` dimensions)."""
        expected = (self.spec.prior_components, self.spec.z_size)
        if not self.spec.prior_components or tuple(mixture.means.shape) != expected:
            raise ValueError(f"the prior needs {self.spec.prior_components} components in {self.spec.z_size} "
                             f"dimensions, got means of shape {tuple(mixture.means.shape)}")  # fmt: skip
        self.prior_log_weights.copy_(mixture.log_weights)
        self.prior_means.copy_(mixture.means)
        self.prior_chol.copy_(mixture.chol)

    def initial_state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The painter's initial ``(h, c)``, each ``(B, hidden)``, of noise ``z`` ``(B, z_size)``."""
        if z.ndim != 2 or z.shape[1] != self.spec.z_size:
            raise ValueError(f"noise must be (B, {self.spec.z_size}), got shape {tuple(z.shape)}")
        h, c = self.start(z).chunk(2, -1)
        return torch.tanh(h), c

    def unroll(
        self,
        z: Tensor,
        *,
        size: int | None = None,
        mode: str = "soft",
        sharpness: float = 2.0,
        backend: str = "auto",
    ) -> tuple[list[Tensor], Tensor]:
        """Doodle from noise ``z`` ``(B, noise_size)``: the canvas ``(B, 1, S, S)`` after each step (``S = size``,
        default the training size) and the strokes ``(B, steps * k, 11)``. ``mode="soft"`` is the differentiable
        render."""
        spec = self.spec
        if z.ndim != 2 or z.shape[1] != spec.noise_size:
            raise ValueError(f"noise must be (B, {spec.noise_size}), got shape {tuple(z.shape)}")
        z, actions = z[:, : spec.z_size], z[:, spec.z_size :].unflatten(1, (spec.steps, -1))  # (B, z), (B, T, k*11)
        size = size or spec.canvas_size
        state = self.initial_state(z)
        noise = self.inject(z)  # (B, hidden)
        canvas = z.new_zeros(len(z), 1, size, size)
        canvases, strokes = [], []
        for t in range(spec.steps):
            u, state = self.step(canvas, state, noise)
            if spec.action_noise:
                u = u + self.painter.log_std.exp() * actions[:, t]
            s, canvas = self.painter.paint_step(u, canvas, mode=mode, sharpness=sharpness, backend=backend)
            canvases.append(canvas)
            strokes.append(s)
        return canvases, torch.cat(strokes, 1)

    def step(self, canvas: Tensor, state: tuple[Tensor, Tensor], noise: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step of the painter with the noise added to its LSTM input: canvas ``(B, 1, H, W)``, state, the
        injected noise ``(B, hidden)`` -> action means ``(B, k * 11)`` and the next state. It is
        :meth:`Painter.step <paintrnn.agents.painter.Painter.step>` of an unconditional painter, plus the noise."""
        painter, size = self.painter, self.spec.canvas_size
        x = prepare_images(canvas, 1, size, "canvas")
        x = torch.cat([x, coord_channels(len(x), size, x)], 1)  # (B, 3, S, S)
        h, c = painter.lstm(painter.encoder(x) + noise, state)  # (B, hidden)
        return painter.mean_head(h), (h, c)

    def forward(self, z: Tensor, sharpness: float = 2.0, backend: str = "auto") -> Tensor:
        """The final soft-rendered canvases ``(B, 1, S, S)`` of noise ``z``: what the discriminator judges."""
        return self.unroll(z, sharpness=sharpness, backend=backend)[0][-1]

    @torch.no_grad()
    def sample(self, n: int, size: int = 64, generator: torch.Generator | None = None, batch_size: int = 500) -> Tensor:
        """``n`` doodles ``(n, 1, size, size)`` in [0, 1], hard renderer (noise from ``generator``)."""
        if n < 1 or size < 8:
            raise ValueError(f"need n >= 1 doodles of size >= 8, got n={n}, size={size}")
        z = self.noise(n, generator)  # all at once: the same doodles whatever the batch size
        return torch.cat([self.unroll(z[i : i + batch_size], size=size, mode="hard", backend="eager")[0][-1]
                          for i in range(0, n, batch_size)])  # fmt: skip


@torch.no_grad()
def doodle_frames(doodler: Doodler, n: int = 16, size: int = 64, seed: int = 0, scale: int = 2) -> np.ndarray:
    """Frames ``(1 + strokes, H', W')`` uint8 of a grid of ``n`` doodles drawn stroke by stroke (hard renderer,
    noise seeded by ``seed``): a blank canvas, then one more stroke per frame."""
    z = doodler.noise(n, torch.Generator().manual_seed(seed))
    _, strokes = doodler.unroll(z, size=size, mode="hard", backend="eager")  # (n, K, 11)
    canvas = z.new_zeros(n, 1, size, size)
    frames = [canvas]
    for k in range(strokes.shape[1]):
        canvas = render_strokes(strokes[:, k : k + 1], canvas, mode="hard", backend="eager")
        frames.append(canvas)
    clips = torch.stack(frames, 1)[:, :, 0].cpu().numpy()  # (n, 1 + K, H, W)
    grid = grid_frames(clips)
    return grid.repeat(scale, 1).repeat(scale, 2) if scale > 1 else grid


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Doodler:
    """Rebuild a doodler, in eval mode on ``device``, from a checkpoint of kind ``doodler`` (its weight average
    when the run kept one); a file of another kind is a :class:`~paintrnn.training.CheckpointError`."""
    ckpt = load_checkpoint(path, map_location="cpu", kind=KIND)
    spec_dict = ckpt["extra"]["spec"]
    spec = DoodlerSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_dict.items()})
    doodler = Doodler(spec)
    doodler.load_state_dict(inference_weights(ckpt))
    doodler.train_config = dict(ckpt["config"])
    doodler.trained_iters = int(ckpt.get("step", 0))
    return doodler.to(device).eval()


def spec_dict(doodler: Doodler) -> dict:
    """The spec as saved in a checkpoint's ``extra["spec"]``."""
    return dataclasses.asdict(doodler.spec)
