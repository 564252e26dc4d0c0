"""A plain variational autoencoder: the non-recurrent baseline for DRAW with the same latent budget.

One diagonal Gaussian latent of ``steps x z_size`` dimensions (DRAW's total), an MLP encoder and decoder
with two hidden layers, and a Bernoulli image model. Its interface matches :class:`paintrnn.agents.draw.DRAW`
where the trainer needs it: ``forward`` returns a :class:`~paintrnn.agents.draw.DrawOutput` (negative ELBO
in nats per image), and ``log_weights`` / ``iwae_nll`` / ``sample`` exist. :func:`load_model` rebuilds a
trained one from its checkpoint (``kind`` "vae", written by ``scripts/train_draw.py --vae``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from paintrnn.agents.draw import DrawConfig, DrawOutput, check_images, gaussian_kl
from torch import Tensor, nn

from paintrnn.config import config_from_dict
from paintrnn.training import inference_weights, load_checkpoint


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of the baseline VAE."""

    height: int = 28
    """Image height."""
    width: int = 28
    """Image width."""
    hidden: int = 500
    """Units in each of the two hidden layers of encoder and decoder."""
    z_size: int = 320
    """Latent dimensions (DRAW's steps x z_size for the same budget)."""

    @classmethod
    def matching(cls, draw: DrawConfig, hidden: int = 500) -> VAEConfig:
        """The VAE with the latent budget of a DRAW configuration."""
        return cls(height=draw.height, width=draw.width, hidden=hidden, z_size=draw.steps * draw.z_size)


class VAE(nn.Module):
    """MLP VAE: ``x -> (mu, log sigma) -> z -> logits``."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = c = config
        pixels = c.height * c.width
        self.encoder = nn.Sequential(
            nn.Linear(pixels, c.hidden), nn.Softplus(), nn.Linear(c.hidden, c.hidden), nn.Softplus(),
            nn.Linear(c.hidden, 2 * c.z_size),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(c.z_size, c.hidden), nn.Softplus(), nn.Linear(c.hidden, c.hidden), nn.Softplus(),
            nn.Linear(c.hidden, pixels),
        )  # fmt: skip

    def forward(self, x: Tensor, noise: Tensor | None = None) -> DrawOutput:
        """Negative ELBO of images ``x`` in [0, 1]; ``noise (B, Z)`` fixes the posterior sample."""
        return self._run(x, noise)[0]

    def _run(self, x: Tensor, noise: Tensor | None) -> tuple[DrawOutput, Tensor, Tensor, Tensor]:
        x = check_images(x, self.config.height, self.config.width)
        mu, logsigma = self.encoder(x.flatten(1)).chunk(2, dim=-1)  # (B, Z)
        z = mu + torch.exp(logsigma) * (torch.randn_like(mu) if noise is None else noise)
        logits = self.decoder(z).view_as(x)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)
        kl = gaussian_kl(mu, logsigma)
        return DrawOutput((recon + kl).mean(), recon, kl, logits, []), z, mu, logsigma

    @torch.no_grad()
    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """``log p(x, z) - log q(z | x)`` for ``k`` posterior samples per image: ``(B, k)``."""
        x = check_images(x, self.config.height, self.config.width)
        out, z, mu, logsigma = self._run(x.repeat_interleave(k, dim=0), None)
        eps = (z - mu) * torch.exp(-logsigma)
        log_ratio = (-0.5 * z.square() + 0.5 * eps.square() + logsigma).sum(-1)
        return (log_ratio - out.recon).view(x.shape[0], k)

    @torch.no_grad()
    def iwae_nll(self, x: Tensor, k: int) -> Tensor:
        """Importance-weighted bound on ``-log p(x)`` with ``k`` samples: ``(B,)`` nats."""
        return -(torch.logsumexp(self.log_weights(x, k), dim=1) - math.log(k))

    @torch.no_grad()
    def sample(
        self, n: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, None]:
        """``n`` images from the prior as logits ``(1, n, 1, H, W)`` (one 'step'), and no windows."""
        w = self.decoder[0].weight
        z = torch.randn(n, self.config.z_size, generator=generator, dtype=w.dtype).to(device or w.device)
        return self.decoder(z).view(1, n, 1, self.config.height, self.config.width), None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """The baseline VAE of a checkpoint written by ``scripts/train_draw.py --vae`` (``kind`` "vae"), in eval mode
    on ``device``, with its averaged weights when the run kept an average. The checkpoint holds the DRAW model
    whose latent budget it matches (``config["model"]``) and the hidden size (``config["train"]["vae_hidden"]``)."""
    ckpt = load_checkpoint(path, map_location=device, kind="vae")
    draw = config_from_dict(DrawConfig, ckpt["config"]["model"])
    model = VAE(VAEConfig.matching(draw, ckpt["config"]["train"].get("vae_hidden", 500)))
    model.load_state_dict(inference_weights(ckpt))
    return model.to(device).eval()
