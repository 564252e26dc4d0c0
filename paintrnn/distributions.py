"""Discretised mixture of logistics: an exact likelihood for 8-bit pixels (Salimans et al. 2017).

Each pixel value `v` in `0 .. levels-1` is mapped to the centre `x_v = 2 v / (levels - 1) - 1` of a
bin of width `2 / (levels - 1)` in `[-1, 1]`. A component puts the mass of a logistic distribution
on every bin, the two outermost bins taking the tails to `-inf` and `+inf`, so the probabilities of
the `levels` values sum to one exactly. A pixel's distribution is a mixture of such components.

For colour pixels the channels are modelled autoregressively inside each component (as in
PixelCNN++): the green mean is shifted by `a * red`, the blue mean by `b * red + c * green`, where
`red` and `green` are the *discretised* values, so sampling and likelihood agree exactly.

Parameters are a tensor `(..., num_params)` laid out as
`[logits (K), means (C K), log-scales (C K), coefficients (3 K if C == 3)]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_MIN_LOG_SCALE = -7.0


def _log_sigmoid_diff(a: Tensor, b: Tensor) -> Tensor:
    """`log(sigmoid(a) - sigmoid(b))` for `a > b`, finite and accurate even for tiny differences."""
    # sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(b - a))
    return F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))


class DiscretizedLogisticMixture:
    """Mixture of `components` discretised logistics over `channels` channels of `levels` values."""

    def __init__(self, channels: int, components: int, levels: int = 256) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        if components < 1 or levels < 2:
            raise ValueError(f"need components >= 1 and levels >= 2, got {components}, {levels}")
        self.channels, self.components, self.levels = channels, components, levels

    @property
    def num_params(self) -> int:
        """Length of the per-pixel parameter vector."""
        k, c = self.components, self.channels
        return k + 2 * c * k + (3 * k if c == 3 else 0)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """`(..., P)` -> logits `(..., K)`, means and log-scales `(..., C, K)`, coefficients."""
        if params.shape[-1] != self.num_params:
            raise ValueError(f"params last dim must be {self.num_params}, got {params.shape[-1]}")
        k, c = self.components, self.channels
        logits = params[..., :k]
        means = params[..., k : k + c * k].unflatten(-1, (c, k))
        log_scales = params[..., k + c * k : k + 2 * c * k].unflatten(-1, (c, k)).clamp(min=_MIN_LOG_SCALE)
        coeffs = torch.tanh(params[..., k + 2 * c * k :].unflatten(-1, (3, k))) if c == 3 else None
        return logits, means, log_scales, coeffs

    def _scale(self, values: Tensor, dtype: torch.dtype) -> Tensor:
        """Integer values `(..., C)` -> bin centres in `[-1, 1]`."""
        return values.to(dtype) * (2.0 / (self.levels - 1)) - 1.0

    def _couple(self, means: Tensor, coeffs: Tensor | None, xs: Tensor) -> Tensor:
        """Shift the green and blue means by the (scaled) earlier channels `xs` `(..., C)`."""
        if coeffs is None:
            return means
        r, g = xs[..., 0:1], xs[..., 1:2]  # (..., 1) broadcast over components
        return torch.stack(
            [means[..., 0, :], means[..., 1, :] + coeffs[..., 0, :] * r,
             means[..., 2, :] + coeffs[..., 1, :] * r + coeffs[..., 2, :] * g],
            dim=-2,
        )

    def log_prob(self, params: Tensor, values: Tensor) -> Tensor:
        """Log-probability (nats) of integer pixels `values` `(..., C)` under `params` `(..., P)`: `(...)`."""
        if values.shape[-1] != self.channels:
            raise ValueError(f"values must have {self.channels} channels, got shape {tuple(values.shape)}")
        logits, means, log_scales, coeffs = self._split(params)
        xs = self._scale(values, params.dtype)  # (..., C)
        means = self._couple(means, coeffs, xs)
        x = xs.unsqueeze(-1)  # (..., C, 1)
        inv_s = torch.exp(-log_scales)
        half_bin = 1.0 / (self.levels - 1)
        plus = inv_s * (x - means + half_bin)  # (..., C, K)
        minus = inv_s * (x - means - half_bin)
        v = values.unsqueeze(-1)
        log_p = torch.where(
            v == 0, F.logsigmoid(plus),
            torch.where(v == self.levels - 1, F.logsigmoid(-minus), _log_sigmoid_diff(plus, minus)),
        )
        return torch.logsumexp(torch.log_softmax(logits, dim=-1) + log_p.sum(dim=-2), dim=-1)

    def with_temperature(self, params: Tensor, temperature: float) -> Tensor:
        """Parameters of the tempered distribution: logits `/ T`, logistic scales `* T`."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if temperature == 1.0:
            return params
        k, c = self.components, self.channels
        logits = params[..., :k] / temperature
        log_scales = params[..., k + c * k : k + 2 * c * k] + math.log(temperature)
        return torch.cat([logits, params[..., k : k + c * k], log_scales, params[..., k + 2 * c * k :]], -1)

    @torch.no_grad()
    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw integer pixels `(..., C)` (int64 in `0 .. levels-1`) from `params` `(..., P)`."""
        logits, means, log_scales, coeffs = self._split(params)
        flat = logits.reshape(-1, self.components)
        comp = torch.multinomial(torch.softmax(flat, -1), 1, generator=generator).reshape(logits.shape[:-1])
        pick = comp[..., None, None].expand(*comp.shape, self.channels, 1)
        means = means.gather(-1, pick).squeeze(-1)  # (..., C)
        scales = log_scales.gather(-1, pick).squeeze(-1).exp()
        if coeffs is not None:
            coeffs = coeffs.gather(-1, comp[..., None, None].expand(*comp.shape, 3, 1)).squeeze(-1)
        u = torch.rand(means.shape, generator=generator, device=params.device, dtype=params.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        noise = torch.log(u) - torch.log1p(-u)  # standard logistic
        out = []
        for ch in range(self.channels):  # channels in order, each conditioned on the discrete earlier ones
            mean = means[..., ch]
            if ch == 1:
                mean = mean + coeffs[..., 0] * self._scale(out[0], mean.dtype)
            if ch == 2:
                r, g = (self._scale(o, mean.dtype) for o in out)
                mean = mean + coeffs[..., 1] * r + coeffs[..., 2] * g
            x = mean + scales[..., ch] * noise[..., ch]
            out.append(torch.round((x + 1.0) * (self.levels - 1) / 2.0).clamp(0, self.levels - 1).long())
        return torch.stack(out, dim=-1)
