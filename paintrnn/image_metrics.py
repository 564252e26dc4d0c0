"""Image quality: PSNR and SSIM of pictures in [0, 1].

Pictures are ``(C, H, W)`` torch tensors or ``(H, W[, C])`` NumPy arrays (uint8 is divided by 255).

SSIM follows Wang et al. 2004 as scikit-image computes it with ``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1``: local statistics under an 11x11 Gaussian window (sigma 1.5,
radius 5), constants ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = 1``, the SSIM map averaged over the
pixels whose whole window lies inside the picture, computed **per colour channel and averaged** (not on
luminance). Pictures smaller than the window use the largest odd window that fits (a 1-px picture: 1x1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_K1, _K2, _SIGMA, _RADIUS = 0.01, 0.03, 1.5, 5


def as_chw(image: Tensor | np.ndarray) -> Tensor:
    """A picture as a float64 ``(C, H, W)`` tensor in [0, 1]: torch ``(C, H, W)`` or ``(H, W)`` as they are,
    NumPy ``(H, W[, C])`` transposed; uint8 divided by 255."""
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
        t = torch.from_numpy(arr)
        return t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    if not isinstance(image, Tensor):
        raise ValueError(f"expected a torch tensor or NumPy array, got {type(image).__name__}")
    t = image.detach().to("cpu")
    t = t.double() / 255.0 if t.dtype == torch.uint8 else t.double()
    return t[None] if t.ndim == 2 else t


def _pair(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    x, y = as_chw(a), as_chw(b)
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(f"pictures must have the same (C, H, W) shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def psnr(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data range 1: ``10 log10(1 / MSE)`` over all pixels and channels
    (``inf`` for identical pictures)."""
    x, y = _pair(a, b)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _window(radius: int) -> Tensor:
    g = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2) / (2 * _SIGMA**2))
    return g / g.sum()  # (2 radius + 1,)


def ssim(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Structural similarity (see the module docstring): 1 for identical pictures, lower when they differ."""
    x, y = _pair(a, b)
    C, H, W = x.shape
    radius = min(_RADIUS, (min(H, W) - 1) // 2)
    g = _window(radius)
    stack = torch.cat([x, y, x * x, y * y, x * y])[:, None]  # (5C, 1, H, W)
    blur = F.conv2d(stack, g.view(1, 1, 1, -1))  # 'valid': only windows inside the picture
    blur = F.conv2d(blur, g.view(1, 1, -1, 1)).view(5, C, H - 2 * radius, W - 2 * radius)
    mx, my, xx, yy, xy = blur
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = _K1**2, _K2**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
