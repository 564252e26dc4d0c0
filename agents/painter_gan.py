"""GAN mode: the painter learns to doodle digits from nothing, rewarded by a discriminator (SPIRAL++).

A spectral-normalised convolutional discriminator ``D`` is trained alongside the PPO painter with the hinge
loss, real images against the painter's final canvases. The painter's reward for each step is the change
of the discriminator's score, ``r_t = D(canvas_t) - D(canvas_{t-1})`` (the temporal credit assignment of
Mellor et al. 2019): an episode's return telescopes to ``D(final) - D(blank)``, but every stroke is
credited with what it changed.

``complement=True`` is the conditional variant: the painter sees a target, and the discriminator sees one
half of an image (a random half-plane mask) from the *target* and the other half from either the target
(real) or the canvas (fake), so it can only judge whether the halves belong together, never win by
comparing the same pixels.

The PPO loop is :func:`paintrnn.agents.painter_ppo.train_ppo`'s; :class:`DiscriminatorReward` extends its
:class:`~paintrnn.agents.painter_ppo.LearnedReward`, and the checkpoints are of kind ``painter-gan``.

    paintrnn train painter gan --iters 2000 --run-dir runs/painter-gan
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import Painter
from paintrnn.agents.painter_ppo import LearnedReward, PPOConfig, train_ppo
from paintrnn.agents.painter_targets import to_canvas
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from paintrnn.data import load_mnist


@dataclass(frozen=True)
class GANConfig(PPOConfig):
    """PPO painter rewarded by a spectral-normalised discriminator (all PPO options apply)."""

    run_dir: str = "runs/painter-gan"
    target: str = "none"
    """'none': unconditional doodling; 'mnist' with complement=True: conditional, complement discriminator."""
    reward: Literal["l2_delta", "final_l2", "none"] = "none"
    """Environment reward: 'none', the discriminator gives it."""
    complement: bool = False
    """Conditional RL with the complement discriminator (half-image masks); needs target='mnist'."""
    steps: int = 4
    """Steps per episode."""
    disc_lr: float = 2e-4
    """Discriminator Adam learning rate."""
    disc_width: int = 32
    """Channels of the discriminator's first convolution."""
    disc_updates: int = 1
    """Discriminator updates per PPO iteration."""
    gradient_penalty: float = 0.0
    """Optional R1 penalty weight on real images (0 = spectral norm only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.complement and not self.target.startswith("mnist"):
            raise ValueError("complement=True needs target='mnist' (a conditional painter)")
        if not self.complement and self.target != "none":
            raise ValueError("unconditional doodling needs target='none' (or set complement=True)")


class Discriminator(nn.Module):
    """Spectral-normalised conv net: ``(B, in, S, S)`` images -> ``(B,)`` scores."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1)), nn.LeakyReLU(0.2)]
        self.conv = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Linear(chans[-1], 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.conv(x).mean((2, 3))).squeeze(-1)


def half_masks(batch: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Random half-image masks ``(B, 1, S, S)``: left, right, top or bottom half is 1."""
    kind = torch.randint(4, (batch,), generator=generator)
    axis = torch.arange(size, device=device)
    left = (axis < size // 2).float()[None, :].expand(size, size)  # (S, S), 1 on the left half
    top = left.t()
    masks = torch.stack([left, 1 - left, top, 1 - top])  # (4, S, S)
    return masks[kind.to(device)][:, None]


class DiscriminatorReward(LearnedReward):
    """The discriminator, its optimiser, real data and the per-step reward."""

    mode = "gan"

    def __init__(self, cfg: GANConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.disc = Discriminator(2 if cfg.complement else 1, cfg.disc_width).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        images, _ = load_mnist("train", cfg.data_dir)
        self.real = torch.from_numpy(np.ascontiguousarray(images))[:, None]  # (N, 1, 28, 28) uint8
        self.gen = torch.Generator().manual_seed(cfg.seed + 17)
        self.finals: list[Tensor] = []
        self.targets: list[Tensor] = []

    def _real_batch(self, n: int) -> Tensor:
        idx = torch.randint(len(self.real), (n,), generator=self.gen)
        return to_canvas(self.real[idx].to(self.device), self.cfg.canvas_size)

    def _inputs(self, images: Tensor, targets: Tensor | None, masks: Tensor | None) -> Tensor:
        if not self.cfg.complement:
            return images * 2 - 1
        assert targets is not None and masks is not None
        return torch.cat([targets * masks, images * (1 - masks)], 1) * 2 - 1  # target half | other half

    @torch.no_grad()
    def score(self, canvas: Tensor, target: Tensor | None = None) -> Tensor:
        masks = None
        if self.cfg.complement:
            masks = half_masks(len(canvas), canvas.shape[-1], torch.Generator().manual_seed(0), self.device)
        self.disc.eval()  # no power iteration here: every score of one rollout uses the same weights
        return self.disc(self._inputs(canvas, target, masks))

    def reward(self, before: Tensor, after: Tensor, step: int, target: Tensor | None = None) -> Tensor:
        if step == self.cfg.steps - 1:
            self.finals.append(after)
            if target is not None:
                self.targets.append(target)
        return self.score(after, target) - self.score(before, target)

    def after_rollout(self, it: int) -> dict[str, float]:
        fake = torch.cat(self.finals)
        targets = torch.cat(self.targets) if self.targets else None
        self.finals, self.targets = [], []
        stats = []
        self.disc.train()
        for _ in range(self.cfg.disc_updates):
            real = targets if targets is not None else self._real_batch(len(fake))
            masks = half_masks(len(fake), fake.shape[-1], self.gen, self.device) if self.cfg.complement else None
            real_in = self._inputs(real, targets, masks).requires_grad_(self.cfg.gradient_penalty > 0)
            d_real, d_fake = self.disc(real_in), self.disc(self._inputs(fake, targets, masks))
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            if self.cfg.gradient_penalty > 0:
                (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
                loss = loss + self.cfg.gradient_penalty / 2 * grad.pow(2).flatten(1).sum(1).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            stats.append((loss.item(), d_real.mean().item(), d_fake.mean().item()))
        loss, dr, df = np.mean(stats, axis=0)
        return {"disc_loss": float(loss), "d_real": float(dr), "d_fake": float(df)}

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.disc}

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.disc.load_state_dict(state["disc"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])


def train_gan(cfg: GANConfig) -> Painter:
    """Train (or resume) a doodling painter with the discriminator reward; returns it."""
    return train_ppo(cfg, DiscriminatorReward)
