"""The recurrent attention model (RAM, Mnih et al. 2014): classify an image from a few glimpses.

One step of the model, given the glimpse ``x_t`` taken at location ``l_{t-1}``:

- glimpse network: ``g_t = ReLU(W_g ReLU(W_x x_t) + W_l ReLU(W_p l_{t-1}))`` (patch and location pathways,
  128 + 128 units, merged into 256);
- core: an LSTM cell, ``h_t = LSTM(g_t, h_{t-1})`` (256 units);
- location policy: a Gaussian with mean ``mu_t = tanh(W_mu h_t)`` and a fixed standard deviation; the next
  location is a sample ``l_t ~ N(mu_t, std^2)`` clipped to ``[-1, 1]^2``;
- baseline: ``b_t = W_b h_t``, a learned estimate of the expected reward, for variance reduction;
- classifier: ``p(y | h_t) = softmax(W_y h_t)``, used at the last step.

Training (:func:`ram_loss`) is the hybrid loss of the paper: cross-entropy of the final class, REINFORCE
for the locations with reward 1 for a correct final class (advantage ``R - b_t``), and a squared error
fitting the baseline to the reward. The policy and the baseline read a detached ``h_t``, so the REINFORCE
gradient trains the location head only, and the core learns from the classification loss (a common,
stabilising choice; the glimpses still follow the policy). With ``locations="pathwise"`` the next location is
the policy's mean itself, read through :func:`~paintrnn.retina.soft_glimpse` (differentiable in the location), and
the cross-entropy alone trains the whole model, where it looks included.

:meth:`RAM.predict` plays ``paintrnn/Glimpse-v0`` directly (observations in, actions out, the recurrent state
explicit, as in Stable-Baselines3); :func:`load_model` rebuilds a trained classifier (RAM, the whole-image
baseline :class:`WholeImageNet`, or DRAW's read classifier :class:`~paintrnn.agents.draw_read.DrawReader`) from
its checkpoint; :func:`episode_frames` draws the glimpse path (boxes moving over the image) with the predicted
class.

    model = load_model("paintrnn/assets/checkpoints/glimpse.pt")  # a trained RAM
    env = gym.make("paintrnn/Glimpse-v0", **model.env_options, split="test")  # the task it was trained on
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)                       # state=None: a new episode
    obs, reward, terminated, truncated, info = env.step(action)
    action, state = model.predict(obs, state)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.draw_read import DrawReader
from torch import Tensor, nn

from paintrnn.media import draw_boxes, side_by_side, to_uint8, upscale
from paintrnn.retina import box_pyramid, glimpse, glimpse_boxes, soft_glimpse
from paintrnn.scenes import CLUTTERED
from paintrnn.training import load_checkpoint

KIND = "glimpse"
"""The checkpoint kind of glimpse classifiers (RAM and the whole-image baselines)."""
State = tuple[Tensor, Tensor]  # LSTM (h, c), each (B, hidden)


@dataclass(frozen=True)
class Rollout:
    """What :meth:`RAM.forward` returns for a batch of B images and T glimpses."""

    logits: Tensor
    """Class scores after the last glimpse, ``(B, n_classes)``."""
    locations: Tensor
    """Where each glimpse was taken, ``(B, T, 2)`` in ``[-1, 1]``."""
    log_probs: Tensor
    """Log-density of each sampled location ``l_1 .. l_{T-1}`` under the policy, ``(B, T-1)``."""
    baselines: Tensor
    """Baseline ``b_t`` at the steps that chose a location, ``(B, T-1)``."""


class RAM(nn.Module):
    """The recurrent attention model with explicit state (``initial_state``, ``step``, ``forward``)."""

    def __init__(
        self,
        glimpse_size: int = 8,
        scales: int = 1,
        channels: int = 1,
        n_classes: int = 10,
        patch_hidden: int = 128,
        loc_hidden: int = 128,
        glimpse_hidden: int = 256,
        hidden: int = 256,
        std: float = 0.11,
        locations: Literal["reinforce", "pathwise"] = "reinforce",
    ) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std of the location policy must be > 0, got {std}")
        if locations not in ("reinforce", "pathwise"):
            raise ValueError(f"unknown location training {locations!r}: expected reinforce or pathwise")
        self.glimpse_size, self.scales, self.channels, self.std = glimpse_size, scales, channels, std
        self.locations = locations
        self.n_classes, self.hidden = n_classes, hidden
        # The paintrnn/Glimpse-v0 options this model was made for (load_model adds the task's: glimpses, canvas,
        # clutter, start), and whether it was trained as the random-glimpse ablation (predict then looks at
        # uniformly random places, as in training).
        self.env_options: dict[str, Any] = {"glimpse_size": glimpse_size, "scales": scales}
        self.random_locations = False
        self.patch = nn.Linear(scales * channels * glimpse_size**2, patch_hidden)
        self.where = nn.Linear(2, loc_hidden)
        self.merge_patch = nn.Linear(patch_hidden, glimpse_hidden)
        self.merge_where = nn.Linear(loc_hidden, glimpse_hidden)
        self.core = nn.LSTMCell(glimpse_hidden, hidden)
        self.locator = nn.Linear(hidden, 2)
        self.baseline = nn.Linear(hidden, 1)
        self.classifier = nn.Linear(hidden, n_classes)

    def initial_state(self, batch: int, device: torch.device | str) -> State:
        """Zero LSTM state for ``batch`` episodes."""
        zeros = torch.zeros(batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def sense(self, images: Tensor, loc: Tensor, pyramid: list[Tensor] | None = None) -> Tensor:
        """The retina's glimpses ``(B, k*C, g, g)`` of ``images`` at ``loc``; with ``pathwise`` locations, read
        differentiably from ``pyramid`` (:func:`~paintrnn.retina.box_pyramid` of ``images``)."""
        if self.locations == "pathwise":
            return soft_glimpse(images, loc, self.glimpse_size, self.scales, pyramid)
        return glimpse(images, loc, self.glimpse_size, self.scales, check_values=False)  # loc is clipped

    def step(self, patches: Tensor, loc: Tensor, state: State) -> tuple[State, Tensor, Tensor, Tensor]:
        """One glimpse: patches ``(B, k*C, g, g)`` seen at ``loc`` ``(B, 2)``.

        Returns the new state, the policy mean ``(B, 2)``, the baseline ``(B,)`` and class logits ``(B, n)``.
        """
        hp = F.relu(self.patch(patches.flatten(1)))  # (B, 128)
        hl = F.relu(self.where(loc))  # (B, 128)
        g = F.relu(self.merge_patch(hp) + self.merge_where(hl))  # (B, 256)
        h, c = self.core(g, state)  # (B, hidden) each
        mean = torch.tanh(self.locator(h if self.locations == "pathwise" else h.detach()))  # (B, 2)
        base = self.baseline(h.detach()).squeeze(-1)  # (B,)
        return (h, c), mean, base, self.classifier(h)

    def sample_location(
        self, mean: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        """A location ``l ~ N(mean, std^2)`` clipped to ``[-1, 1]`` (no gradient) and its log-density ``(B,)``."""
        if deterministic:
            sample = mean.detach()
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=_device_of(generator, mean))
            sample = mean.detach() + self.std * noise.to(mean.device)
        z = (sample - mean) / self.std  # Gaussian log-density written out: no argument checks, no GPU syncs
        log_prob = (-0.5 * z**2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B,)
        return sample.clamp(-1.0, 1.0), log_prob

    def forward(
        self,
        images: Tensor,
        n_glimpses: int,
        start: Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        random_locations: bool = False,
    ) -> Rollout:
        """Unroll :meth:`step` over ``n_glimpses`` glimpses of ``images`` ``(B, C, H, W)`` from ``start`` ``(B, 2)``.

        ``random_locations`` ignores the policy and looks at uniformly random places (the ablation).
        """
        if n_glimpses < 1:
            raise ValueError(f"n_glimpses must be >= 1, got {n_glimpses}")
        state = self.initial_state(images.shape[0], images.device)
        pathwise = self.locations == "pathwise" and not random_locations
        pyramid = box_pyramid(images, self.glimpse_size, self.scales) if pathwise else None
        loc, locs, log_probs, bases = start, [start], [], []
        for t in range(n_glimpses):
            state, mean, base, logits = self.step(self.sense(images, loc, pyramid), loc, state)
            if t == n_glimpses - 1:
                break
            if pathwise:  # the policy's mean, differentiable through the next glimpse: no sampling, no REINFORCE
                locs.append(mean)
                loc = mean
                continue
            if random_locations:
                loc = torch.rand(mean.shape, generator=generator, device=_device_of(generator, mean)) * 2 - 1
                loc = loc.to(mean.device)
                log_prob = torch.zeros_like(base)
            else:
                loc, log_prob = self.sample_location(mean, generator, deterministic)
            locs.append(loc)
            log_probs.append(log_prob)
            bases.append(base)
        empty = images.new_zeros(images.shape[0], 0)
        return Rollout(
            logits=logits,
            locations=torch.stack(locs, 1).detach(),
            log_probs=torch.stack(log_probs, 1) if log_probs else empty,
            baselines=torch.stack(bases, 1) if bases else empty,
        )

    @torch.no_grad()
    def predict(
        self,
        observation: Mapping[str, Any],
        state: tuple[Any, Any] | None = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """One step of an agent playing ``paintrnn/Glimpse-v0``: an observation in, an action the env accepts out.

        ``observation`` is the env's dict, ``"glimpse"`` ``(k*g*g,)`` and ``"location"`` ``(2,)``, or with a leading
        ``(N,)`` axis from a vector env (NumPy arrays or tensors). ``state`` is the recurrent state this method
        returned last, ``(h, c)`` each ``(N, hidden)``; None starts new episodes. ``episode_start`` ``(N,)`` (bool)
        marks observations that begin an episode: those rows start from a zero state (Stable-Baselines3's
        semantics). Returns the action, ``(12,)`` float32 or ``(N, 12)``: ``a[:2]`` the next glimpse location
        (the policy's mean when ``deterministic``, else a sample), ``a[2:]`` the class probabilities scaled to
        ``[-1, 1]`` (``2 p - 1``; the env classifies by their argmax on the episode's last step), and the new state.
        An observation of another retina (glimpse size, scales) is a ``ValueError``; the other task settings
        (glimpses, canvas, clutter, start) do not show in the observation: make the env with ``**env_options``.
        """
        device = self.classifier.weight.device
        patches, loc = _as_float(observation["glimpse"], device), _as_float(observation["location"], device)
        single = loc.ndim == 1
        if single:
            patches, loc = patches[None], loc[None]
        size = self.scales * self.channels * self.glimpse_size**2
        if loc.ndim != 2 or loc.shape[1] != 2 or patches.shape != (loc.shape[0], size):
            raise ValueError(
                f"this RAM reads glimpses of {self.scales} scale(s) of {self.glimpse_size}x{self.glimpse_size} pixels "
                f"({size} values) and a location (2,), got glimpse {tuple(patches.shape)} and location "
                f"{tuple(loc.shape)}: make the env with the model's settings, "
                f"gym.make('paintrnn/Glimpse-v0', **model.env_options)"
            )
        batch = loc.shape[0]
        if state is None:
            h, c = self.initial_state(batch, device)
        else:
            h, c = (_as_float(x, device) for x in state)
            if h.shape != (batch, self.hidden) or c.shape != (batch, self.hidden):
                raise ValueError(f"state must be (h, c), each ({batch}, {self.hidden}), as predict() returned it; "
                                 f"got {tuple(h.shape)} and {tuple(c.shape)}")
        if episode_start is not None:
            start = _as_float(episode_start, device).reshape(-1) != 0  # (N,) bool
            if start.shape != (batch,):
                raise ValueError(f"episode_start must hold {batch} flags, got {tuple(start.shape)}")
            keep = (~start).float()[:, None]
            h, c = h * keep, c * keep
        view = patches.reshape(batch, self.scales * self.channels, self.glimpse_size, self.glimpse_size)
        (h, c), mean, _, logits = self.step(view, loc, (h, c))
        if self.random_locations:
            nxt = torch.rand(mean.shape, device=device) * 2 - 1
        else:
            nxt, _ = self.sample_location(mean, deterministic=deterministic)
        action = torch.cat([nxt, 2 * logits.softmax(-1) - 1], -1).cpu().numpy().astype(np.float32)  # (N, 2 + n)
        return (action[0] if single else action), (h.cpu().numpy(), c.cpu().numpy())


def _as_float(values: Any, device: torch.device) -> Tensor:
    """A float32 tensor on ``device`` from an array, a tensor or a list."""
    if isinstance(values, Tensor):
        return values.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(values), dtype=torch.float32, device=device)


def _device_of(generator: torch.Generator | None, like: Tensor) -> torch.device:
    """Random numbers are drawn where the generator lives (a CUDA generator avoids host-device syncs)."""
    return generator.device if generator is not None else like.device


class WholeImageNet(nn.Module):
    """Baselines that see the whole image: a 2-hidden-layer MLP or a small CNN."""

    def __init__(self, kind: Literal["mlp", "cnn"], side: int, hidden: int = 256, n_classes: int = 10) -> None:
        super().__init__()
        if kind == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            feat = hidden
        else:
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * (side // 4) ** 2, hidden), nn.ReLU(),
            )  # fmt: skip
            feat = hidden
        self.head = nn.Linear(feat, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.net(images))  # (B, n_classes)


def scene_side(task: str, canvas: int) -> int:
    """Width of the images of a task: 28 for MNIST, the papers' canvas for the cluttered tasks of
    :data:`paintrnn.scenes.CLUTTERED` (``cluttered60``, ``cluttered100``), else ``canvas``."""
    if task in CLUTTERED:
        return CLUTTERED[task].canvas
    return 28 if task == "mnist" else canvas


def build_classifier(config: Mapping[str, Any]) -> nn.Module:
    """The untrained network a glimpse trainer's config (as a dict: ``model``, ``task``, ``canvas``,
    ``glimpse_size``, ``scales``, ``hidden``, ``std``, ``read_size``) describes: :class:`RAM`,
    :class:`WholeImageNet` or :class:`~paintrnn.agents.draw_read.DrawReader`."""
    side = scene_side(config["task"], config["canvas"])
    if config["model"] in ("mlp", "cnn"):
        return WholeImageNet(config["model"], side, config["hidden"])
    if config["model"] == "draw-read":
        return DrawReader(side, side, config.get("read_size", 12), hidden=config["hidden"])
    if config["model"] not in ("ram", "random"):
        raise ValueError(f"unknown glimpse model {config['model']!r}: expected ram, random, draw-read, mlp or cnn")
    model = RAM(config["glimpse_size"], config["scales"], hidden=config["hidden"], std=config["std"],
                locations=config.get("locations", "reinforce"))
    model.random_locations = config["model"] == "random"
    task = config["task"]
    model.env_options = {
        "glimpses": config["glimpses"],
        "glimpse_size": config["glimpse_size"],
        "scales": config["scales"],
        "canvas": None if task == "mnist" else side,
        "clutter": CLUTTERED[task].clutter if task in CLUTTERED else config["clutter"] if task == "cluttered" else 0,
        "start": config["start"],
        **({"task": task} if task in CLUTTERED else {}),  # the papers' recipe of cluttered scenes
    }
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The trained classifier of a glimpse checkpoint (eval mode, on ``device``): a :class:`RAM` (whose
    ``env_options`` are the ``paintrnn/Glimpse-v0`` settings it was trained for), a :class:`WholeImageNet` or a
    :class:`~paintrnn.agents.draw_read.DrawReader`."""
    ckpt = load_checkpoint(path, device, kind=KIND)
    model = build_classifier(ckpt["config"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def ram_loss(out: Rollout, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Hybrid loss: cross-entropy + REINFORCE (reward 1 if correct, minus the baseline) + baseline MSE. A rollout
    without sampled locations (one glimpse, or ``pathwise`` locations) has the cross-entropy alone."""
    nll = F.cross_entropy(out.logits, labels)
    reward = (out.logits.argmax(-1) == labels).float()  # (B,)
    if out.log_probs.shape[1] == 0:
        return nll, {"nll": nll.detach(), "reward": reward.mean(), "baseline_mse": torch.zeros_like(nll)}
    advantage = reward[:, None] - out.baselines.detach()  # (B, T-1)
    reinforce = -(out.log_probs * advantage).sum(1).mean()
    baseline = F.mse_loss(out.baselines, reward[:, None].expand_as(out.baselines))
    loss = nll + reinforce + baseline
    return loss, {"nll": nll.detach(), "reward": reward.mean(), "baseline_mse": baseline.detach()}


def episode_frames(
    images: Tensor, locations: Tensor, predictions: Tensor, glimpse_size: int, scales: int, scale: int = 4
) -> np.ndarray:
    """GIF frames ``(T + 1, H', W', 3)``: per image, the glimpse boxes moving over it, then the predicted class.

    ``images`` ``(N, 1, H, W)`` in [0, 1], ``locations`` ``(N, T, 2)``, ``predictions`` ``(N,)``; the images are
    laid out in a row, each enlarged ``scale`` times, with the path so far drawn as dots.
    """
    n, _, h, w = images.shape
    t_total = locations.shape[1]
    colours = [(255, 60, 60), (255, 170, 40), (80, 160, 255), (120, 220, 120)]
    frames = []
    for t in range(t_total + 1):
        tiles = []
        for i in range(n):
            tile = upscale(to_uint8(images[i, 0].cpu().numpy()), scale)
            shown = min(t, t_total - 1)
            boxes = glimpse_boxes(locations[i, shown : shown + 1].cpu(), h, w, glimpse_size, scales)[0].numpy()
            boxes = (boxes * scale + np.array([0, 0, scale - 1, scale - 1])).astype(float)
            tile = draw_boxes(tile, boxes, colours, width=2).copy()
            centres = ((locations[i, : shown + 1].cpu().numpy() + 1) / 2 * np.array([w, h]) * scale).astype(int)
            for x, y in centres:
                tile[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = (255, 255, 0)
            if t == t_total:  # last frame: the predicted class in the top-left corner
                tile = _stamp_digit(tile, int(predictions[i]))
            tiles.append(tile)
        frames.append(side_by_side(*tiles))
    return np.stack(frames)


def _stamp_digit(tile: np.ndarray, label: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    pil = Image.fromarray(tile)
    draw = ImageDraw.Draw(pil)
    draw.rectangle([0, 0, 14, 16], fill=(0, 90, 0))
    draw.text((4, 2), str(label), fill=(255, 255, 255))
    return np.array(pil)
