"""Multi-digit reading: the deep recurrent attention model (DRAM, Ba et al. 2014), its CNN baseline, their trainer.

The task (:func:`paintrnn.scenes.digit_rows`, the environment ``paintrnn/Read-v0``): a row of 2 to 5 MNIST digits,
labelled by its digit string. A reader emits one symbol per read, the digits left to right, then an end symbol.

**DRAM** (:class:`DRAM`) reads with glimpses, ``glimpses_per_read`` of them per symbol:

- context network: a small CNN on a coarse view of the whole scene (average-pooled by ``context``) gives the
  initial state of the top (location) LSTM, so the first choice of where to look is informed;
- glimpse network: as RAM's, ``g_t = ReLU(W_g ReLU(W_x x_t) + W_l ReLU(W_p l_t))`` for the retina's glimpse
  ``x_t`` at ``l_t`` (``--glimpse-net conv``: three convolutions before ``W_x``, the paper's SVHN model);
- recurrent core of two LSTMs: ``r1`` (recognition) reads ``g_t``; ``r2`` (location) reads ``r1``'s state;
- emission network: after every ``glimpses_per_read``-th glimpse a softmax over the symbols ``0 .. 9, end``
  from ``r1``; location network: the next location from ``tanh(W r2_t)``.

The emissions learn by the cross-entropy of every emission up to and including the end symbol (:func:`dram_loss`).
``r2`` reads a detached ``r1``; where to look (``r2``, the location head and the context network, at
``--policy-lr-scale`` times the learning rate) learns in one of two ways (``--locations``):

- ``pathwise`` (the default): the next location is ``tanh(W r2_t)`` itself, and the glimpse is read from it
  differentiably (:func:`paintrnn.retina.soft_glimpse`: the same patches, bilinear between pixel boundaries), so
  the emissions' cross-entropy trains where to look through what was seen. Ba et al.'s model as a deterministic,
  differentiable attention model (the idea of DRAW's read and of spatial transformers);
- ``reinforce`` (the paper): ``l_{t+1} ~ N(tanh(W r2_t), std^2)``, clipped to the image, trained by REINFORCE
  with the paper's reward, the log-probability of the correct symbol: the return of a location is the sum of
  that over the emissions it can still influence (those read after it), minus a learned baseline from ``r2``,
  scaled to unit RMS over the batch; plus a squared error fitting the baseline. On rows of MNIST digits it
  learns far slower (docs/agents/reading.md has the numbers).

Each parameter group (recognition, location, baseline) has its gradient norm clipped on its own
(:func:`clip_groups`).

**CNN baseline** (:class:`MultiDigitCNN`, Goodfellow et al. 2014): the whole scene through a small CNN, one
softmax for the length and one per digit position.

Both train here on freshly drawn scenes (infinite data) for ``--iters`` steps or a time budget
(``--time-limit-min``), resumable exactly; the test set is a fixed set of scenes (from a seed, on the MNIST test
digits). The error that counts is the **sequence error**: the share of test rows whose whole string (and its
end) is not read exactly right. A run folder holds ``config.json``, ``metrics.jsonl``, ``curves.png``,
``checkpoint.pt``, ``result.json`` and ``reading.gif``.

    python scripts/train_reading.py --model dram --time-limit-min 10
    python scripts/train_reading.py --model cnn --time-limit-min 10

:meth:`DRAM.predict` plays ``paintrnn/Read-v0`` (observations in, actions out, the recurrent state explicit)::

    model = load_reader("runs/reading/checkpoint.pt")
    env = gym.make("paintrnn/Read-v0", **model.env_options, split="test")
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.envs.read import coarse_view, reading_frame
from torch import Tensor, nn

from paintrnn.config import parse_config
from paintrnn.data import load_mnist
from paintrnn.media import write_gif
from paintrnn.retina import box_pyramid, glimpse, soft_glimpse
from paintrnn.run import RunConfig, lr_schedule, start_run
from paintrnn.scenes import END, N_SYMBOLS, Rows, RowSpec, digit_rows, symbol_string
from paintrnn.training import load_checkpoint, plot_metrics

KIND = "reading"
"""The checkpoint kind of multi-digit readers (DRAM and the CNN baseline)."""
State = tuple[Tensor, Tensor, Tensor, Tensor]  # (h1, c1, h2, c2), each (B, hidden)
TEST_SEED = 1234
"""Seed of the fixed test scenes."""


@dataclass(frozen=True)
class ReadRollout:
    """What :meth:`DRAM.forward` returns for B scenes, R reads and T = R x glimpses_per_read glimpses."""

    logits: Tensor
    """Symbol scores of each read, ``(B, R, 11)``."""
    locations: Tensor
    """Where each glimpse was taken, ``(B, T, 2)``."""
    log_probs: Tensor
    """Log-density of each sampled location ``l_1 .. l_{T-1}``, ``(B, T-1)``."""
    baselines: Tensor
    """Baseline at the steps that chose those locations, ``(B, T-1)``."""


class DRAM(nn.Module):
    """The deep recurrent attention model with a context network, for rows of digits (explicit state)."""

    def __init__(
        self,
        height: int,
        width: int,
        reads: int,
        glimpses_per_read: int = 2,
        glimpse_size: int = 12,
        scales: int = 3,
        context: int = 4,
        hidden: int = 256,
        std: float = 0.1,
        channels: int = 1,
        glimpse_net: Literal["linear", "conv"] = "linear",
        locations: Literal["reinforce", "pathwise"] = "reinforce",
    ) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std of the location policy must be > 0, got {std}")
        if height % context or width % context:
            raise ValueError(f"height and width must be multiples of context={context}, got {height} x {width}")
        self.height, self.width, self.reads, self.glimpses_per_read = height, width, reads, glimpses_per_read
        self.glimpse_size, self.scales, self.context, self.hidden, self.std = glimpse_size, scales, context, hidden, std
        self.env_options: dict[str, Any] = {}  # the paintrnn/Read-v0 options it was trained for (set by the trainer)
        if locations not in ("reinforce", "pathwise"):
            raise ValueError(f"unknown location training {locations!r}: expected reinforce or pathwise")
        self.glimpse_net, self.locations = glimpse_net, locations
        if glimpse_net == "conv":  # the paper's convolutional glimpse network (its SVHN model), the scales as channels
            if glimpse_size % 4:
                raise ValueError(f"the conv glimpse network halves the patch twice: glimpse_size must be a multiple "
                                 f"of 4, got {glimpse_size}")  # fmt: skip
            self.patch: nn.Module = nn.Sequential(
                nn.Unflatten(1, (scales * channels, glimpse_size, glimpse_size)),
                nn.Conv2d(scales * channels, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * (glimpse_size // 4) ** 2, 128),
            )  # fmt: skip
        elif glimpse_net == "linear":  # RAM's glimpse network
            self.patch = nn.Linear(scales * channels * glimpse_size**2, 128)
        else:
            raise ValueError(f"unknown glimpse network {glimpse_net!r}: expected linear or conv")
        self.where = nn.Linear(2, 128)
        self.merge_patch = nn.Linear(128, 256)
        self.merge_where = nn.Linear(128, 256)
        self.core = nn.LSTMCell(256, hidden)  # r1: recognition
        self.top = nn.LSTMCell(hidden, hidden)  # r2: where to look next
        ch, cw = height // context, width // context
        self.context_net = nn.Sequential(
            nn.Unflatten(1, (channels, ch, cw)),
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * (ch // 2) * (cw // 2), hidden), nn.Tanh(),
        )  # fmt: skip
        self.locator = nn.Linear(hidden, 2)
        self.baseline = nn.Linear(hidden, 1)
        self.emission = nn.Linear(hidden, N_SYMBOLS)

    def policy_parameters(self) -> list[nn.Parameter]:
        """The location path, trained by REINFORCE alone: the context network, ``r2`` and the location head."""
        return [*self.context_net.parameters(), *self.top.parameters(), *self.locator.parameters()]

    @property
    def steps(self) -> int:
        """Glimpses per episode at most: ``reads x glimpses_per_read``."""
        return self.reads * self.glimpses_per_read

    def initial_state(self, context: Tensor) -> State:
        """The state before the first glimpse: ``r1`` zero, ``r2`` from the coarse view ``context (B, ctx)``."""
        h2 = self.context_net(context)  # (B, hidden)
        zeros = torch.zeros_like(h2)
        return zeros, zeros.clone(), h2, zeros.clone()

    def step(self, patches: Tensor, loc: Tensor, state: State) -> tuple[State, Tensor, Tensor, Tensor]:
        """One glimpse: patches ``(B, k*C, g, g)`` seen at ``loc`` ``(B, 2)``. Returns the new state, the location
        policy's mean ``(B, 2)``, the baseline ``(B,)`` and the symbol logits ``(B, 11)``."""
        h1, c1, h2, c2 = state
        hp = F.relu(self.patch(patches.flatten(1)))  # (B, 128)
        hl = F.relu(self.where(loc))  # (B, 128)
        g = F.relu(self.merge_patch(hp) + self.merge_where(hl))  # (B, 256)
        h1, c1 = self.core(g, (h1, c1))
        h2, c2 = self.top(h1.detach(), (h2, c2))  # REINFORCE trains the location path only
        mean = torch.tanh(self.locator(h2))
        base = self.baseline(h2.detach()).squeeze(-1)
        return (h1, c1, h2, c2), mean, base, self.emission(h1)

    def sample_location(
        self, mean: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        """A location ``l ~ N(mean, std^2)`` clipped to ``[-1, 1]`` (no gradient) and its log-density ``(B,)``."""
        if deterministic:
            sample = mean.detach()
        else:
            gen_dev = generator.device if generator is not None else mean.device
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=gen_dev).to(mean.device)
            sample = mean.detach() + self.std * noise
        z = (sample - mean) / self.std
        log_prob = (-0.5 * z**2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B,)
        return sample.clamp(-1.0, 1.0), log_prob

    def forward(
        self,
        images: Tensor,
        start: Tensor | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> ReadRollout:
        """Read ``images`` ``(B, C, H, W)``: all ``reads x glimpses_per_read`` glimpses from ``start`` ``(B, 2)``
        (default: the centre), one emission after every ``glimpses_per_read``-th."""
        b = images.shape[0]
        loc = images.new_zeros(b, 2) if start is None else start
        state = self.initial_state(coarse_view(images, self.context))
        pathwise = self.locations == "pathwise"
        pyramid = box_pyramid(images, self.glimpse_size, self.scales) if pathwise else None
        locs, log_probs, bases, logits = [loc], [], [], []
        for t in range(self.steps):
            if pathwise:  # the glimpse is differentiable in loc: the emissions' loss trains where to look
                patches = soft_glimpse(images, loc, self.glimpse_size, self.scales, pyramid)
            else:
                patches = glimpse(images, loc, self.glimpse_size, self.scales, check_values=False)
            state, mean, base, symbol_logits = self.step(patches, loc, state)
            if (t + 1) % self.glimpses_per_read == 0:
                logits.append(symbol_logits)
            if t == self.steps - 1:
                break
            if pathwise:
                loc = mean  # (B, 2), in (-1, 1) by the tanh; no sampling, no REINFORCE
            else:
                loc, log_prob = self.sample_location(mean, generator, deterministic)
                log_probs.append(log_prob)
                bases.append(base)
            locs.append(loc)
        empty = images.new_zeros(b, 0)
        return ReadRollout(
            logits=torch.stack(logits, 1),
            locations=torch.stack(locs, 1).detach(),
            log_probs=torch.stack(log_probs, 1) if log_probs else empty,
            baselines=torch.stack(bases, 1) if bases else empty,
        )

    @torch.no_grad()
    def predict(
        self,
        observation: Mapping[str, Any],
        state: Sequence[Any] | None = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """One step of an agent playing ``paintrnn/Read-v0``: the env's observation (a dict, or a batch of them
        from a vector env) in, an action the env accepts and the new state ``(h1, c1, h2, c2)`` out.

        ``state`` None starts new episodes (``r2`` from the observation's coarse view); ``episode_start`` ``(N,)``
        marks rows that start one (Stable-Baselines3's semantics). The action is the next location (the policy's
        mean when ``deterministic``) and the symbol probabilities scaled to ``[-1, 1]``; the env takes the symbol
        on its reading steps and ignores it on the others. The env's glimpses are the retina's, at the nearest
        pixel boundary: a reader trained with ``pathwise`` locations saw them between boundaries too.
        """
        device = self.emission.weight.device
        patches, loc, context = (_as_float(observation[k], device) for k in ("glimpse", "location", "context"))
        single = loc.ndim == 1
        if single:
            patches, loc, context = patches[None], loc[None], context[None]
        size = self.scales * self.glimpse_size**2
        ctx = (self.height // self.context) * (self.width // self.context)
        if patches.shape[1:] != (size,) or context.shape[1:] != (ctx,):
            raise ValueError(
                f"this reader reads glimpses of {self.scales} scale(s) of {self.glimpse_size}x{self.glimpse_size} "
                f"pixels ({size} values) and a context of {ctx} values, got {tuple(patches.shape[1:])} and "
                f"{tuple(context.shape[1:])}: make the env with gym.make('paintrnn/Read-v0', **model.env_options)"
            )
        batch = loc.shape[0]
        fresh = self.initial_state(context)
        if state is None:
            current = fresh
        else:
            current = tuple(_as_float(x, device) for x in state)
            if len(current) != 4 or any(x.shape != (batch, self.hidden) for x in current):
                raise ValueError(f"state must be (h1, c1, h2, c2), each ({batch}, {self.hidden}), as predict() "
                                 "returned it")  # fmt: skip
            if episode_start is not None:
                start = _as_float(episode_start, device).reshape(-1) != 0
                if start.shape != (batch,):
                    raise ValueError(f"episode_start must hold {batch} flags, got {tuple(start.shape)}")
                current = tuple(torch.where(start[:, None], f, x) for f, x in zip(fresh, current))
        view = patches.reshape(batch, self.scales, self.glimpse_size, self.glimpse_size)
        new, mean, _, logits = self.step(view, loc, current)  # type: ignore[arg-type]
        nxt, _ = self.sample_location(mean, deterministic=deterministic)
        action = torch.cat([nxt, 2 * logits.softmax(-1) - 1], -1).cpu().numpy().astype(np.float32)
        out_state = tuple(x.cpu().numpy() for x in new)
        return (action[0] if single else action), out_state


def _as_float(values: Any, device: torch.device) -> Tensor:
    if isinstance(values, Tensor):
        return values.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(values), dtype=torch.float32, device=device)


class MultiDigitCNN(nn.Module):
    """Goodfellow et al.'s multi-digit baseline: a CNN on the whole scene, a length head and one head per digit."""

    def __init__(self, height: int, width: int, max_digits: int, hidden: int = 256, channels: int = 1) -> None:
        super().__init__()
        if height % 8 or width % 8:
            raise ValueError(f"the CNN halves the scene three times: height and width must be multiples of 8, "
                             f"got {height} x {width}")  # fmt: skip
        self.max_digits = max_digits
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (height // 8) * (width // 8), hidden), nn.ReLU(),
        )  # fmt: skip
        self.length = nn.Linear(hidden, max_digits + 1)  # 0 .. max_digits digits
        self.digits = nn.Linear(hidden, max_digits * 10)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Length logits ``(B, K + 1)`` and digit logits ``(B, K, 10)`` for ``images`` ``(B, C, H, W)``."""
        z = self.features(images)
        return self.length(z), self.digits(z).view(-1, self.max_digits, 10)

    @torch.no_grad()
    def read(self, images: Tensor) -> Tensor:
        """The symbols it reads ``(B, K + 1)``: the first L predicted digits (L the predicted length), END, -1."""
        length_logits, digit_logits = self(images)
        lengths = length_logits.argmax(-1)  # (B,)
        k = self.max_digits
        symbols = torch.full((images.shape[0], k + 1), -1, dtype=torch.int64, device=images.device)
        position = torch.arange(k + 1, device=images.device)
        symbols[:, :k] = torch.where(position[:k] < lengths[:, None], digit_logits.argmax(-1), symbols[:, :k])
        symbols[position[None] == lengths[:, None]] = END
        return symbols


def dram_loss(out: ReadRollout, targets: Tensor, glimpses_per_read: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Supervised emissions + REINFORCE locations (return: the log-likelihood of the symbols still ahead, minus the
    baseline, at unit RMS) + baseline MSE. ``targets`` ``(B, R)``: the digits, END, then -1 (ignored)."""
    b, reads, _ = out.logits.shape
    valid = targets >= 0  # (B, R)
    nll = F.cross_entropy(out.logits.reshape(b * reads, -1), targets.reshape(-1), ignore_index=-1)
    correct = ((out.logits.argmax(-1) == targets) & valid).float()  # (B, R)
    log_lik = -F.cross_entropy(out.logits.detach().transpose(1, 2), targets.clamp(min=0), reduction="none")
    reward = log_lik * valid  # (B, R) the log-probability of each correct symbol (Ba et al.'s bound)
    steps = out.log_probs.shape[1]  # T - 1 location choices, the one after step t at index t
    emitted_at = glimpses_per_read * torch.arange(1, reads + 1, device=targets.device) - 1  # (R,) emission steps
    t = torch.arange(steps, device=targets.device)
    ahead = (emitted_at[None] >= t[:, None] + 1).float()  # (T-1, R): read r comes after location choice t
    returns = reward @ ahead.T  # (B, T-1)
    last = glimpses_per_read * valid.sum(1)[:, None] - 1  # (B, 1) the step that emits END
    mask = (t[None] + 1 <= last).float()  # (B, T-1): choices that still matter
    advantage = (returns - out.baselines).detach()
    spread = ((advantage**2 * mask).sum() / mask.sum().clamp(min=1)).sqrt()
    advantage = advantage / (spread + 1e-6)  # unit scale: returns of up to R reads would otherwise swamp the policy
    reinforce = -(out.log_probs * advantage * mask).sum(1).mean()
    baseline = ((out.baselines - returns) ** 2 * mask).sum() / mask.sum().clamp(min=1)
    loss = nll + reinforce + baseline
    whole = (correct.sum(1) == valid.sum(1)).float()  # every symbol right: the whole string read
    return loss, {"nll": nll.detach(), "seq_acc": whole.mean(), "symbol_acc": correct.sum() / valid.sum()}


def cnn_loss(length_logits: Tensor, digit_logits: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross-entropy of the length plus that of each present digit (Goodfellow et al.)."""
    lengths = (targets == END).int().argmax(1)  # (B,) the END's position is the number of digits
    k = digit_logits.shape[1]
    digits = targets[:, :k].masked_fill(targets[:, :k] == END, -1)  # (B, K) digits, -1 past the row
    loss = F.cross_entropy(length_logits, lengths) + F.cross_entropy(
        digit_logits.reshape(-1, 10), digits.reshape(-1), ignore_index=-1, reduction="sum"
    ) / len(targets)
    with torch.no_grad():
        right_len = length_logits.argmax(-1) == lengths
        right_digits = ((digit_logits.argmax(-1) == digits) | (digits < 0)).all(1)
    return loss, {"nll": loss.detach(), "seq_acc": (right_len & right_digits).float().mean()}


def sequence_error(symbols: Tensor, targets: Tensor) -> Tensor:
    """Per-row mistakes ``(B,)`` bool: the reads ``symbols (B, R)`` up to and including the first END differ from
    ``targets`` (digits, END, -1), or no END came."""
    ended = symbols == END
    after = (ended.int().cumsum(1) - ended.int()) > 0  # reads after the first END: not part of the answer
    read = symbols.masked_fill(after, -1)
    return (read != targets).any(1)


@dataclass(frozen=True)
class ReaderConfig(RunConfig):
    """Train a multi-digit reader (DRAM, Ba et al. 2014) or the whole-image CNN baseline (Goodfellow et al. 2014)."""

    run_dir: str = "runs/reading"
    """Run folder: config.json, metrics.jsonl, curves.png, checkpoint.pt, result.json and reading.gif."""
    log_every: int = 100
    """Iterations between metric lines."""
    checkpoint_every: int = 500
    """Iterations between checkpoints (one is also written at the end)."""
    model: Literal["dram", "cnn"] = "dram"
    """DRAM (glimpses, a context network, emissions; REINFORCE locations) or the whole-image CNN."""
    min_digits: int = 2
    """Fewest digits in a row."""
    max_digits: int = 5
    """Most digits in a row."""
    height: int = 32
    """Scene height in pixels."""
    width: int = 128
    """Scene width in pixels."""
    clutter: int = 0
    """Pieces of other digits under the row."""
    glimpses_per_read: int = 2
    """DRAM: glimpses per emitted symbol."""
    glimpse_size: int = 12
    """DRAM: width g of the sharpest patch."""
    locations: Literal["reinforce", "pathwise"] = "pathwise"
    """DRAM: how the location path learns. 'reinforce': sampled locations and REINFORCE (the paper); 'pathwise':
    the policy's mean, read through a glimpse differentiable in its location (bilinear, :func:`soft_glimpse`),
    trained by the emissions' cross-entropy through it (no sampling, no baseline)."""
    glimpse_net: Literal["linear", "conv"] = "linear"
    """DRAM: the glimpse network's image path: RAM's linear layer, or three convolutions and a linear layer (the
    paper's SVHN model)."""
    scales: int = 3
    """DRAM: patches per glimpse, each twice as wide as the previous."""
    context: int = 4
    """DRAM: the context network sees the scene average-pooled by this factor."""
    std: float = 0.1
    """DRAM: standard deviation of the Gaussian location policy (locations live in [-1, 1]) with --locations
    reinforce; with pathwise, the noise of predict(deterministic=False) only."""
    policy_lr_scale: float = 1.0
    """DRAM: learning-rate factor of the location path (context network, location LSTM and head). With
    --locations reinforce use 0.3: the REINFORCE gradient is noisy, and at the full rate it drove the glimpses into
    a corner before the emissions had learned anything there was to look for."""
    hidden: int = 256
    """Units of DRAM's LSTMs, or of the CNN's fully connected layer."""
    iters: int = 20000
    """Optimiser steps (each on a fresh batch of scenes)."""
    batch_size: int = 64
    """Scenes per step."""
    lr: float = 1e-3
    """Adam learning rate at the start; it follows a cosine schedule down to lr_final."""
    lr_final: float = 1e-5
    """Learning rate at the end of the budget."""
    grad_clip: float = 5.0
    """Clip each parameter group's gradient norm to this value (DRAM: recognition, location, baseline apart)."""
    time_limit_min: float | None = None
    """A training budget in minutes: the schedule runs over whichever of iters and time ends first, and training
    stops at the first log line past it. None = iters only."""
    eval_every: int = 1000
    """Iterations between test evaluations (for the curves; no model selection)."""
    test_size: int = 2000
    """Fixed test scenes (from the MNIST test digits, seeded)."""
    data_dir: str | None = None
    """Folder with the MNIST files (default: $PAINTRNN_DATA or the per-user cache)."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """Full MNIST, the small bundled sample, or the full files when present."""
    gif: bool = True
    """Write reading.gif (test rows read glimpse by glimpse; DRAM only) at the end."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {
        "eval_every", "test_size", "gif", "data_dir"
    }  # fmt: skip
    """Also what is evaluated and written besides training, and where the MNIST files lie."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("iters", "batch_size", "eval_every", "test_size", "glimpses_per_read", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.std <= 0 or self.policy_lr_scale < 0:
            raise ValueError(f"--std must be > 0 and --policy-lr-scale >= 0, got {self.std}, {self.policy_lr_scale}")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise ValueError(f"--time-limit-min must be > 0 minutes, got {self.time_limit_min}")
        if self.height % 8 or self.width % 8:
            raise ValueError(f"--height and --width must be multiples of 8, got {self.height} x {self.width}")
        self.row_spec()  # checks the scene options

    def row_spec(self) -> RowSpec:
        """The scenes (as ``paintrnn/Read-v0`` makes them)."""
        return RowSpec(height=self.height, width=self.width, min_digits=self.min_digits, max_digits=self.max_digits,
                       clutter=self.clutter)  # fmt: skip


def build_reader(config: Mapping[str, Any]) -> nn.Module:
    """The untrained reader a :class:`ReaderConfig` (as a dict) describes: :class:`DRAM` (with its ``env_options``
    for ``paintrnn/Read-v0``) or :class:`MultiDigitCNN`."""
    if config["model"] == "cnn":
        return MultiDigitCNN(config["height"], config["width"], config["max_digits"], config["hidden"])
    if config["model"] != "dram":
        raise ValueError(f"unknown reader {config['model']!r}: expected dram or cnn")
    model = DRAM(config["height"], config["width"], config["max_digits"] + 1, config["glimpses_per_read"],
                 config["glimpse_size"], config["scales"], config["context"], config["hidden"],
                 config["std"], glimpse_net=config.get("glimpse_net", "linear"),
                 locations=config.get("locations", "reinforce"))  # fmt: skip
    model.env_options = {k: config[k] for k in ("min_digits", "max_digits", "height", "width", "clutter",
                                                "glimpses_per_read", "glimpse_size", "scales", "context")}  # fmt: skip
    return model


def load_reader(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The trained reader of a reading checkpoint (eval mode, on ``device``)."""
    ckpt = load_checkpoint(path, device, kind=KIND)
    model = build_reader(ckpt["config"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def make_optimizer(model: nn.Module, cfg: ReaderConfig) -> torch.optim.Adam:
    """Adam over parameter groups that :func:`clip_groups` clips one by one. For DRAM: the recognition path, the
    location path (its learning rate scaled by ``cfg.policy_lr_scale``) and the baseline head."""
    if isinstance(model, DRAM):
        policy, baseline = model.policy_parameters(), list(model.baseline.parameters())
        ids = {id(p) for p in policy + baseline}
        groups = [([p for p in model.parameters() if id(p) not in ids], 1.0), (policy, cfg.policy_lr_scale),
                  (baseline, 1.0)]  # fmt: skip
    else:
        groups = [(list(model.parameters()), 1.0)]
    return torch.optim.Adam([{"params": ps, "scale": scale, "lr": cfg.lr * scale} for ps, scale in groups], lr=cfg.lr)


def clip_groups(opt: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip each parameter group's gradient norm on its own. One global norm would let the baseline's regression
    and the REINFORCE gradient (at the start 60 and 30 times the recognition path's) shrink the recognition
    path's steps whenever they are large."""
    for group in opt.param_groups:
        nn.utils.clip_grad_norm_(group["params"], max_norm)


def load_pool(cfg: ReaderConfig, split: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """A split's digits ``(N, 1, 28, 28)`` float in [0, 1] and labels, on ``device``."""
    images, labels = load_mnist(split, cfg.data_dir, source=cfg.data_source)  # type: ignore[arg-type]
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None].to(device), torch.from_numpy(labels).to(device)


def test_rows(cfg: ReaderConfig, pool: Tensor, labels: Tensor, chunk: int = 500) -> Rows:
    """The fixed test scenes: ``cfg.test_size`` rows from a seeded CPU generator (the same on any device)."""
    gen = torch.Generator().manual_seed(TEST_SEED)
    parts = [digit_rows(pool, labels, min(chunk, cfg.test_size - i), cfg.row_spec(), gen)
             for i in range(0, cfg.test_size, chunk)]  # fmt: skip
    return Rows(*(torch.cat([getattr(p, f) for p in parts]) for f in ("images", "symbols", "lengths", "boxes")))


@torch.no_grad()
def read_symbols(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """What a reader emits for ``images``: symbols ``(B, R)`` (and DRAM's glimpse locations ``(B, T, 2)``)."""
    if isinstance(model, MultiDigitCNN):
        return model.read(images), None
    out = model(images, deterministic=True)
    return out.logits.argmax(-1), out.locations


@torch.no_grad()
def evaluate(model: nn.Module, rows: Rows, batch: int = 500) -> dict[str, float]:
    """Sequence error (%) on fixed scenes (DRAM: the policy's mean path), and the symbol error (%) of the reads
    up to the end symbol."""
    was_training = model.training
    model.eval()
    wrong, symbol_wrong, symbols = 0, 0, 0
    for i in range(0, len(rows.images), batch):
        targets = rows.symbols[i : i + batch]
        read, _ = read_symbols(model, rows.images[i : i + batch])
        wrong += int(sequence_error(read, targets).sum())
        valid = targets >= 0
        symbol_wrong += int(((read != targets) & valid).sum())
        symbols += int(valid.sum())
    model.train(was_training)
    return {"test_seq_err": 100.0 * wrong / len(rows.images), "test_symbol_err": 100.0 * symbol_wrong / symbols}


def train(cfg: ReaderConfig) -> tuple[nn.Module, dict]:
    """Train (or resume, see ``--resume``); returns the model (eval mode) and the result: what ``result.json``
    holds, plus ``summary_line``."""
    with start_run(cfg, kind=KIND) as run:
        if run.info.distributed:
            raise ValueError("the reading trainer runs in one process: launch it without torchrun")
        device = run.device
        noise = torch.Generator(device).manual_seed(cfg.seed + 1)  # scenes and policy noise, on the device
        pool, labels = load_pool(cfg, "train", device)
        test_pool, test_labels = load_pool(cfg, "test", device)
        tests = test_rows(cfg, test_pool.cpu(), test_labels.cpu())
        tests = Rows(*(getattr(tests, f).to(device) for f in ("images", "symbols", "lengths", "boxes")))
        model = build_reader(asdict(cfg)).to(device)
        opt = make_optimizer(model, cfg)
        ckpt = run.resume(model, opt)
        if ckpt is not None:
            noise.set_state(ckpt["extra"]["noise_rng"].cpu())
        cpu_start = time.process_time() - (ckpt["extra"].get("cpu_s", 0.0) if ckpt is not None else 0.0)
        spec, done_iters, stopped_early = cfg.row_spec(), run.start, False
        sums = {k: torch.zeros((), device=device) for k in ("loss", "nll", "seq_acc")}
        count = 0
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters, desc=f"reading/{cfg.model}"):
            frac = it / cfg.iters
            if cfg.time_limit_min is not None:
                frac = max(frac, run.elapsed / (60 * cfg.time_limit_min))
            for group in opt.param_groups:
                group["lr"] = lr_schedule(frac, cfg.lr, cfg.lr_final) * group["scale"]
            rows = digit_rows(pool, labels, cfg.batch_size, spec, noise)
            if isinstance(model, DRAM):
                loss, logs = dram_loss(model(rows.images, generator=noise), rows.symbols, cfg.glimpses_per_read)
            else:
                loss, logs = cnn_loss(*model(rows.images), rows.symbols)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_groups(opt, cfg.grad_clip)
            opt.step()
            sums["loss"] += loss.detach()
            sums["nll"] += logs["nll"]
            sums["seq_acc"] += logs["seq_acc"]
            count += 1
            done_iters = it + 1
            last = done_iters == cfg.iters
            if done_iters % cfg.log_every == 0 or last:
                run.check_finite(sums["loss"], done_iters)
                out_of_time = cfg.time_limit_min is not None and run.sync_clock() / 60 >= cfg.time_limit_min
                row = {k: v.item() / count for k, v in sums.items()}
                row["train_seq_err"] = 100.0 * (1 - row.pop("seq_acc"))
                row["lr"] = opt.param_groups[0]["lr"]  # (the location path's is policy_lr_scale times it)
                crossed = done_iters // cfg.eval_every > (done_iters - count) // cfg.eval_every  # since the last line
                if crossed or last or out_of_time:
                    with run.paused():
                        row.update(evaluate(model, tests))
                run.log(done_iters, **row)
                sums = {k: torch.zeros((), device=device) for k in sums}
                count = 0
                if done_iters % cfg.checkpoint_every == 0 or last or out_of_time:
                    run.save(done_iters, model, opt, extra={"noise_rng": noise.get_state(),
                                                            "cpu_s": time.process_time() - cpu_start},
                             config=asdict(cfg))  # fmt: skip
                if out_of_time and not last:
                    stopped_early = True
                    break
            elif done_iters % cfg.checkpoint_every == 0:
                run.save(done_iters, model, opt, extra={"noise_rng": noise.get_state(),
                                                        "cpu_s": time.process_time() - cpu_start},
                         config=asdict(cfg))  # fmt: skip
        minutes, cpu_minutes = run.sync_clock() / 60, (time.process_time() - cpu_start) / 60
        with run.paused():
            scores = evaluate(model, tests)
            result = {
                "test_seq_error_pct": scores["test_seq_err"],
                "test_symbol_error_pct": scores["test_symbol_err"],
                "iters_done": done_iters,
                "iters_planned": cfg.iters,
                "stopped_early": stopped_early,
                "train_minutes": minutes,
                "train_cpu_minutes": cpu_minutes,
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "n_test": len(tests.images),
                "parameters": sum(p.numel() for p in model.parameters()),
                "config": asdict(cfg),
            }
            if run.is_main:
                (run.dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
                plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png",
                             ["loss", "nll", "train_seq_err", "test_seq_err", "lr"])  # fmt: skip
                if cfg.gif and isinstance(model, DRAM):
                    write_reading_gif(model, tests, run.dir / "reading.gif")
        line = run.summary(test_seq_error_pct=result["test_seq_error_pct"], iters=f"{done_iters}/{cfg.iters}",
                           **({"stopped_early": True} if stopped_early else {}))  # fmt: skip
        return model.eval(), {**result, "summary_line": line}


def episode_frames(model: DRAM, rows: Rows, n: int = 4, scale: int = 3) -> np.ndarray:
    """GIF frames of ``n`` scenes read by ``model`` (its policy's mean path), stacked one above the other: per
    glimpse, the retina's boxes, the path so far and the digits read so far beside each scene (the true string
    underneath in grey); a scene's reading stops at its first end symbol."""
    images, targets = rows.images[:n], rows.symbols[:n]
    symbols, locations = read_symbols(model, images)
    assert locations is not None
    g = model.glimpses_per_read
    ends = [(row.index(END) + 1) * g if END in row else model.steps for row in symbols.tolist()]  # glimpses taken
    frames = []
    for t in range(max(ends) + 2):  # two extra frames: the finished reading stays a moment
        tiles = []
        for i in range(len(images)):
            shown = min(t, ends[i] - 1)
            reads = (shown + 1) // g  # symbols emitted after glimpse `shown`
            text = symbol_string(symbols[i, :reads].tolist())
            tiles.append(reading_frame(images[i, 0].cpu().numpy(), locations[i, : shown + 1].cpu().numpy(), text,
                                       model.glimpse_size, model.scales, scale, ended=END in symbols[i, :reads],
                                       label=symbol_string(targets[i].tolist())))  # fmt: skip
        sep = np.full((2, tiles[0].shape[1], 3), 128, np.uint8)
        frames.append(np.concatenate([x for tile in tiles for x in (tile, sep)][:-1], axis=0))
    return np.stack(frames)


def write_reading_gif(model: DRAM, rows: Rows, path: str | os.PathLike, n: int = 4) -> Path:
    """``episode_frames`` of the first ``n`` scenes of ``rows`` as a GIF."""
    return write_gif(path, episode_frames(model, rows, n), duration_ms=250, hold_last_ms=2000)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python scripts/train_reading.py --help``. Prints the run's summary line; returns 0."""
    cfg = parse_config(ReaderConfig, argv, prog="paintrnn train reading")
    _, result = train(cfg)
    print(result["summary_line"])
    return 0
