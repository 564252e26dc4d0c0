"""Gaussian mixtures with full covariances, fitted by expectation-maximisation: a density over a latent space.

A generative model whose latent codes are learnt by an encoder (an autoencoder, or a VAE whose KL term is weak)
draws poor samples from the N(0, 1) prior it was nominally trained with: the codes of real data fill only part
of that ball. Fitting a Gaussian mixture to the codes of real data after training and sampling from it instead
("ex-post density estimation", Ghosh et al. 2020, *From variational to deterministic autoencoders*) keeps the
samples where the decoder learnt to draw. The doodler (:mod:`paintrnn.agents.doodler`) uses it as its prior.

:func:`fit_gaussian_mixture` runs EM from a k-means++ start (randomness only from the given generator, so a fit
is repeatable), with ``reg`` added to every covariance's diagonal; a :class:`GaussianMixture` holds the
result as log-weights, means and Cholesky factors, and draws from it or scores points with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GaussianMixture:
    """``K`` weighted Gaussians in ``D`` dimensions."""

    log_weights: Tensor
    """(K,) log mixing weights (they sum to 1)."""
    means: Tensor
    """(K, D) component means."""
    chol: Tensor
    """(K, D, D) lower Cholesky factors of the component covariances."""

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density ``(N,)`` of points ``x`` ``(N, D)``."""
        return torch.logsumexp(self.log_weights + _component_log_probs(x, self.means, self.chol), -1)

    def sample(self, n: int, generator: torch.Generator | None = None, eps: Tensor | None = None) -> Tensor:
        """``n`` draws ``(n, D)`` (on the mixture's device; randomness drawn on the CPU from ``generator``).
        ``eps`` ``(n, D)``: the standard normal draws to transform (default: fresh ones)."""
        K, D = self.means.shape
        if eps is None:
            eps = torch.randn(n, D, generator=generator)
        comp = torch.multinomial(self.log_weights.detach().cpu().exp(), n, replacement=True, generator=generator)
        comp, eps = comp.to(self.means.device), eps.to(self.means.device)
        return self.means[comp] + (self.chol[comp] @ eps.unsqueeze(-1)).squeeze(-1)


def _component_log_probs(x: Tensor, means: Tensor, chol: Tensor) -> Tensor:
    """``log N(x_n | mean_k, L_k L_k^T)`` for every point and component: ``(N, K)``."""
    D = x.shape[1]
    diff = (x.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)  # (K, D, N)
    white = torch.linalg.solve_triangular(chol, diff, upper=False)  # (K, D, N)
    log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,) half the log determinant
    return (-0.5 * white.pow(2).sum(1) - log_det[:, None] - 0.5 * D * math.log(2 * math.pi)).T


def _kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` starting means ``(k, D)`` spread over the points by k-means++ seeding."""
    picks = [int(torch.randint(len(x), (1,), generator=generator))]
    nearest = (x - x[picks[0]]).pow(2).sum(1)
    for _ in range(1, k):
        weights = nearest.cpu().double() + 1e-12
        picks.append(int(torch.multinomial(weights / weights.sum(), 1, generator=generator)))
        nearest = torch.minimum(nearest, (x - x[picks[-1]]).pow(2).sum(1))
    return x[picks].clone()


def fit_gaussian_mixture(
    x: Tensor,
    k: int,
    *,
    iters: int = 100,
    tol: float = 1e-5,
    reg: float = 1e-4,
    generator: torch.Generator | None = None,
) -> GaussianMixture:
    """Fit ``k`` full-covariance Gaussians to points ``x`` ``(N, D)`` by EM (at most ``iters`` rounds, stopping
    when the mean log-likelihood gains less than ``tol``); ``reg`` is added to every covariance's diagonal.
    Runs in float32 on ``x``'s device (differences from the means keep it accurate)."""
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need points (N >= 2, D), got shape {tuple(x.shape)}")
    if not 1 <= k <= len(x):
        raise ValueError(f"need 1 <= k <= {len(x)} points, got k={k}")
    if not torch.isfinite(x).all():
        raise ValueError("the points hold NaN or infinite values")
    generator = generator or torch.Generator().manual_seed(0)
    x = x.detach().float()
    N, D = x.shape
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    means = _kmeans_plus_plus(x, k, generator)
    spread = torch.cov(x.T).reshape(D, D) + reg * eye
    chol = torch.linalg.cholesky(spread).expand(k, D, D).clone()
    log_weights = torch.full((k,), -math.log(k), dtype=x.dtype, device=x.device)
    previous = -math.inf
    for _ in range(iters):
        joint = log_weights + _component_log_probs(x, means, chol)  # (N, K)
        total = torch.logsumexp(joint, -1)  # (N,)
        resp = (joint - total[:, None]).exp()  # (N, K) responsibilities
        mass = resp.sum(0) + 1e-10  # (K,)
        log_weights = torch.log(mass / N)
        means = (resp.T @ x) / mass[:, None]
        diff = x.unsqueeze(0) - means.unsqueeze(1)  # (K, N, D)
        cov = (diff * resp.T.unsqueeze(-1)).transpose(1, 2) @ diff / mass[:, None, None] + reg * eye  # (K, D, D)
        chol = torch.linalg.cholesky(cov)
        gain, previous = float(total.mean()) - previous, float(total.mean())
        if gain < tol:
            break
    return GaussianMixture(log_weights, means, chol)
