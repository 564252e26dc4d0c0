"""Gaussian filterbank attention (DRAW, Gregor et al. 2015, eqs. 19-29), batched.

An N x N grid of Gaussian filters is placed over an H x W image. Five unconstrained numbers per image
(``g~x, g~y, log sigma^2, log delta~, log gamma``) set the grid centre, the stride between filters, the
filters' variance and an intensity. Reading extracts an ``(N, N)`` glimpse, ``Fy x Fx^T``; writing paints an
``(N, N)`` patch back, ``Fy^T w Fx``: write is the transpose (adjoint) of read.

Two details fix the pitfalls of public ports: pixel coordinates are 0-based, so the grid centre for
``g~ = 0`` lands on the image centre ``(W - 1) / 2`` (the paper's 1-based ``(A + 1) / 2`` shifted by one);
and each filter is normalised with a softmax over the pixel axis, which never divides by a sum that
underflowed to zero (narrow filters far from pixel centres otherwise give NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Window:
    """Attention window in pixel units, one value per image: each field is ``(B,)``."""

    gx: Tensor
    """Grid centre, x (0-based pixels)."""
    gy: Tensor
    """Grid centre, y (0-based pixels)."""
    delta: Tensor
    """Stride between neighbouring filters (pixels)."""
    sigma2: Tensor
    """Variance of each Gaussian filter (pixels^2)."""
    gamma: Tensor
    """Intensity: read multiplies by it, write divides by it."""


def window_from_raw(raw: Tensor, height: int, width: int, n: int) -> Window:
    """Map ``raw`` ``(B, 5)`` = ``(g~x, g~y, log sigma^2, log delta~, log gamma)`` to a :class:`Window` (eqs. 21-24)."""
    if raw.ndim != 2 or raw.shape[-1] != 5:
        raise ValueError(f"attention parameters must have shape (B, 5), got {tuple(raw.shape)}")
    gx_, gy_, log_sigma2, log_delta_, log_gamma = raw.unbind(-1)
    gx = (width + 1) / 2 * (gx_ + 1) - 1
    gy = (height + 1) / 2 * (gy_ + 1) - 1
    delta = (max(height, width) - 1) / max(n - 1, 1) * torch.exp(log_delta_)
    return Window(gx=gx, gy=gy, delta=delta, sigma2=torch.exp(log_sigma2), gamma=torch.exp(log_gamma))


def filterbank(window: Window, n: int, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Filter matrices ``Fx (B, N, W)`` and ``Fy (B, N, H)``, each row a normalised Gaussian (eqs. 19-20, 25-26)."""
    dtype, device = window.gx.dtype, window.gx.device
    offsets = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2  # (N,)
    spread = offsets * window.delta[:, None]  # (B, N)
    scale = (-0.5 / window.sigma2)[:, None, None]  # (B, 1, 1)

    def gaussians(size: int, mu: Tensor) -> Tensor:  # centres mu (B, M) -> (B, M, size), rows summing to 1
        pixels = torch.arange(size, dtype=dtype, device=device)
        return torch.softmax(torch.square(pixels - mu[..., None]) * scale, dim=-1)

    mu_x, mu_y = window.gx[:, None] + spread, window.gy[:, None] + spread  # (B, N) each
    if height == width:  # both axes in one pass, split into views
        filters = gaussians(width, torch.cat([mu_x, mu_y], dim=1))  # (B, 2N, W)
        return filters[:, :n], filters[:, n:]
    return gaussians(width, mu_x), gaussians(height, mu_y)  # (B, N, W), (B, N, H)


def read(image: Tensor, fx: Tensor, fy: Tensor, gamma: Tensor) -> Tensor:
    """Glimpse ``gamma * Fy x Fx^T``: ``image (B, C, H, W)`` -> ``(B, C, N, N)``."""
    glimpse = fy[:, None] @ image @ fx[:, None].transpose(-1, -2)
    return glimpse * gamma[:, None, None, None]


def write(patch: Tensor, fx: Tensor, fy: Tensor, gamma: Tensor, out: Tensor | None = None) -> Tensor:
    """Canvas update ``(1 / gamma) * Fy^T w Fx``: ``patch (B, C, N, N)`` -> ``(B, C, H, W)`` (into ``out`` if given).

    The patch is scaled by ``1 / gamma`` before the products: ``N^2`` divisions instead of ``H W``.
    """
    rows = (patch / gamma[:, None, None, None]) @ fx[:, None]  # (B, C, N, W): the cheap product first
    return torch.matmul(fy[:, None].transpose(-1, -2), rows, out=out)


def window_box(window: Window, n: int) -> Tensor:
    """The window's extent ``(B, 4)`` as ``(x0, y0, x1, y1)`` in pixels (filter centres +- one sigma), for drawing."""
    half = (n - 1) / 2 * window.delta + window.sigma2.sqrt()
    return torch.stack([window.gx - half, window.gy - half, window.gx + half, window.gy + half], dim=-1)
