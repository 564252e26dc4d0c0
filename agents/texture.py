"""Spatial LSTM texture model (RIDE, Theis & Bethge 2015): likelihood, synthesis and inpainting.

The model factorises an image over a causal order, `p(x) = prod_p p(x_p | x_<p)`. At each pixel:

1. a causal neighbourhood of already-known pixels (up to `radius` rows above and `radius` columns
   either side, plus `radius` pixels to the left) is read,
2. a stack of spatial LSTMs (`paintrnn.slstm.SpatialLSTM`) turns it into a hidden state that also
   summarises everything above and to the left,
3. a small MLP maps hidden state and neighbourhood to a discretised mixture of logistics over the
   8-bit values (`paintrnn.distributions`), an exact likelihood for grey or RGB pixels.

## Causal order and the wavefront

Pixels are ordered by front `t = slope * i + j` (ties in any order). The LSTM states at `(i, j)` only
depend on pixels `(i', j') != (i, j)` with `i' <= i, j' <= j`, which lie on earlier fronts. The
neighbourhood keeps exactly the offsets `(di, dj)` with `slope * di + dj < 0`, i.e. the pixels on
earlier fronts, so the model is *exactly* causal for the front order, and one front of pixels can be
sampled at once. With `slope = radius + 1` (the default) this keeps RIDE's whole half-window
(the `radius` rows above in full plus the pixels to the left) and the model is also causal in raster
order; sampling then takes `slope * (H - 1) + W` batched steps, e.g. 1021 for 256 x 256.
Training knows every pixel in advance, so there the layers run on anti-diagonals (`H + W - 1` steps);
a layer's output does not depend on the slope of its wavefront.

Images are integer tensors `(B, H, W, C)` with values in `0 .. 255`. A trained model comes back from its
checkpoint with :func:`load_model`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paintrnn.config import config_from_dict
from paintrnn.distributions import DiscretizedLogisticMixture
from paintrnn.slstm import SpatialLSTM, front_rows, num_fronts
from paintrnn.training import load_checkpoint

KIND = "texture"
"""The checkpoint kind of texture models."""
OLDER_CHECKPOINTS = {"head_layers": 1, "up_right": False}
"""Architecture fields that checkpoints written before they existed lack, with the values those models had."""


@dataclass(frozen=True)
class TextureModelConfig:
    """Architecture of the spatial LSTM texture model."""

    channels: int = 1
    """Image channels: 1 (grey) or 3 (RGB)."""
    hidden: int = 32
    """Hidden units per spatial LSTM layer (RIDE: 64)."""
    layers: int = 1
    """Stacked spatial LSTM layers (RIDE: 2; at equal size one layer and a deeper output MLP trained better)."""
    radius: int = 3
    """Causal neighbourhood radius: a (2r+1) x (2r+1) window cut to the pixels on earlier fronts."""
    slope: int = 4
    """Front slope `t = slope * i + j`; `radius + 1` keeps RIDE's full causal half-window."""
    components: int = 8
    """Logistic mixture components per pixel."""
    head_hidden: int = 80
    """Hidden units of the per-pixel output MLP."""
    head_layers: int = 2
    """Hidden layers of the per-pixel output MLP."""
    up_right: bool = False
    """Spatial LSTM cells also read their upper-right neighbour (context to the right in the rows above)."""

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "slope", "components", "head_hidden", "head_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.radius < 1:
            raise ValueError(f"radius must be >= 1, got {self.radius}")
        if self.up_right and self.slope < 2:
            raise ValueError(f"up_right needs slope >= 2 (its neighbour is on front t - slope + 1), got {self.slope}")


def causal_offsets(radius: int, slope: int) -> list[tuple[int, int]]:
    """Neighbourhood offsets `(di, dj)` in the `radius` window whose pixels lie on earlier fronts."""
    return [
        (di, dj)
        for di in range(-radius, 1)
        for dj in range(-radius, radius + 1)
        if slope * di + dj < 0
    ]


def check_images(values: Tensor, channels: int, name: str = "images") -> None:
    """Raise `ValueError` unless `values` is an integer `(B, H, W, channels)` tensor in `0 .. 255`."""
    if values.ndim != 4 or values.shape[-1] != channels:
        raise ValueError(f"{name} must have shape (B, H, W, {channels}), got {tuple(values.shape)}")
    if values.dtype.is_floating_point or values.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of 8-bit values, got {values.dtype}")
    if values.numel() and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"{name} values must lie in 0..255, got {values.min()}..{values.max()}")


def scale(values: Tensor) -> Tensor:
    """8-bit integers -> floats in `[-1, 1]`."""
    return values.float() / 127.5 - 1.0


class TextureModel(nn.Module):
    """Spatial LSTM stack with a discretised logistic mixture per pixel."""

    def __init__(self, config: TextureModelConfig) -> None:
        super().__init__()
        self.config = config
        self.offsets = causal_offsets(config.radius, config.slope)
        n_in = len(self.offsets) * config.channels
        self.layers = nn.ModuleList(
            SpatialLSTM(n_in if i == 0 else config.hidden, config.hidden, config.up_right)
            for i in range(config.layers)
        )
        self.dist = DiscretizedLogisticMixture(config.channels, config.components)
        widths = [config.hidden + n_in] + [config.head_hidden] * config.head_layers
        hidden_layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.GELU())]
        self.head = nn.Sequential(*hidden_layers, nn.Linear(config.head_hidden, self.dist.num_params))

    def neighbourhood(self, xs: Tensor) -> Tensor:
        """Causal neighbourhoods of all pixels: `(B, H, W, C)` scaled -> `(B, H, W, K * C)`."""
        r = self.config.radius
        _, height, width, _ = xs.shape
        padded = F.pad(xs, (0, 0, r, r, r, 0))  # zeros above, left and right of the image
        shifted = [padded[:, r + di : r + di + height, r + dj : r + dj + width] for di, dj in self.offsets]
        return torch.cat(shifted, dim=-1)

    def head_params(self, h: Tensor, feat: Tensor) -> Tensor:
        """Mixture parameters from top hidden states and neighbourhoods: `(..., P)`."""
        return self.head(torch.cat([h, feat], dim=-1))

    def forward(self, values: Tensor) -> Tensor:
        """Distribution parameters of every pixel given its past: `(B, H, W, C)` -> `(B, H, W, P)`."""
        check_images(values, self.config.channels)
        feat = self.neighbourhood(scale(values))
        h = feat
        for layer in self.layers:  # all inputs are known: the fewest fronts (the layer's minimal slope) are fastest
            h = layer(h)
        return self.head_params(h, feat)

    def log_prob(self, values: Tensor) -> Tensor:
        """Per-pixel log-likelihood in nats: `(B, H, W)`."""
        return self.dist.log_prob(self(values), values.long())

    def bits_per_dim(self, values: Tensor) -> Tensor:
        """Mean negative log-likelihood in bits per pixel and channel (a scalar)."""
        return -self.log_prob(values).mean() / (math.log(2) * self.config.channels)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TextureModel:
    """A trained :class:`TextureModel` (in eval mode, on ``device``) from a checkpoint written by the texture
    trainer; older checkpoints that lack later architecture fields get those models' values."""
    ckpt = load_checkpoint(path, device, kind=KIND)
    fields = {f.name for f in dataclasses.fields(TextureModelConfig)}
    values = {**OLDER_CHECKPOINTS, **{k: v for k, v in ckpt["config"].items() if k in fields}}
    model = TextureModel(config_from_dict(TextureModelConfig, values)).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def _fronts(
    model: TextureModel,
    canvas: Tensor,
    known: Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Fill `canvas` `(B, H, W, C)` in place one front at a time, sampling the pixels not `known`.

    Carries the LSTM states of the last `slope` fronts. Yields the rows, columns and mixture
    parameters `(B, n, P)` of each front after writing it.
    """
    cfg = model.config
    batch, height, width, _ = canvas.shape
    r, device = cfg.radius, canvas.device
    padded = torch.zeros(batch, height + r, width + 2 * r, cfg.channels, device=device)  # scaled pixels
    di = torch.tensor([o[0] for o in model.offsets], device=device)
    dj = torch.tensor([o[1] for o in model.offsets], device=device)
    states = [layer.initial_state(batch, height, cfg.slope, device) for layer in model.layers]
    for t in range(num_fronts(height, width, cfg.slope)):
        lo, hi = front_rows(t, height, width, cfg.slope)
        rows = torch.arange(lo, hi, device=device)
        cols = t - cfg.slope * rows
        feat = padded[:, rows[:, None] + r + di, cols[:, None] + r + dj].flatten(2)  # (B, n, K*C)
        h = feat
        for i, layer in enumerate(model.layers):
            h, states[i] = layer.step(layer.input(h), states[i], (lo, hi))
        params = model.head_params(h, feat)  # (B, n, P)
        values = model.dist.sample(model.dist.with_temperature(params, temperature), generator)
        if known is not None:
            values = torch.where(known[:, rows, cols, None], canvas[:, rows, cols], values)
        canvas[:, rows, cols] = values.to(canvas.dtype)
        padded[:, rows + r, cols + r] = scale(values)
        yield rows, cols, params


@torch.no_grad()
def sample(
    model: TextureModel,
    num: int,
    height: int,
    width: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    on_front: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Synthesise `num` textures of any size: uint8 `(num, height, width, C)`.

    One batched step per front; `on_front(canvas)` is called after each (for animations). Runs on
    `device` (default: the model's); a `generator` must live there too.
    """
    if num < 1 or height < 1 or width < 1:
        raise ValueError(f"num, height and width must be >= 1, got {num}, {height}, {width}")
    device = device if device is not None else next(model.parameters()).device
    canvas = torch.zeros(num, height, width, model.config.channels, dtype=torch.long, device=device)
    for _ in _fronts(model, canvas, None, temperature, generator):
        if on_front is not None:
            on_front(canvas)
    return canvas.to(torch.uint8)


def _mh_score(model: TextureModel, x: Tensor, resampled: Tensor, temperature: float) -> Tensor:
    """`log p(x) - log q(x_S)` per image, where `q` is the tempered proposal on the pixels `S`."""
    params = model(x)
    log_p = model.dist.log_prob(params, x)  # (B, H, W)
    log_q = model.dist.log_prob(model.dist.with_temperature(params, temperature), x)
    return log_p.sum((1, 2)) - (log_q * resampled).sum((1, 2))


@torch.no_grad()
def inpaint(
    model: TextureModel,
    image: Tensor,
    missing: Tensor,
    *,
    refine_steps: int = 0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    on_update: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Fill the `missing` pixels `(B, H, W)` (bool) of `image` uint8 `(B, H, W, C)`; known pixels are kept.

    First ancestral sampling in the causal order, which conditions each pixel on the known pixels
    before it. Then `refine_steps` Metropolis-Hastings steps that also take the known pixels *after*
    the hole into account: each resamples the missing pixels from a random front on, ancestrally, and
    accepts with the ratio of the model's joint likelihoods corrected by the proposal probabilities.
    They leave the model's exact conditional `p(hole | known)` invariant. `on_update(canvas)` is called
    after each front of the first pass and after each refinement step.
    """
    check_images(image, model.config.channels, "image")
    if missing.shape != image.shape[:3] or missing.dtype != torch.bool:
        raise ValueError(f"missing must be a bool tensor of shape {tuple(image.shape[:3])}, got "
                         f"{missing.dtype} {tuple(missing.shape)}")
    canvas = image.long().masked_fill(missing[..., None], 0)  # the hole's values are never read
    for _ in _fronts(model, canvas, ~missing, temperature, generator):
        if on_update is not None:
            on_update(canvas)
    if refine_steps <= 0 or not missing.any():
        return canvas.to(torch.uint8)
    slope = model.config.slope
    height, width = image.shape[1:3]
    front = slope * torch.arange(height, device=image.device)[:, None] + torch.arange(width, device=image.device)
    hole_fronts = front.expand_as(missing)[missing]
    first, last = int(hole_fronts.min()), int(hole_fronts.max())
    for _ in range(refine_steps):
        cut = int(torch.randint(first, last + 1, (), generator=generator, device=image.device))
        resampled = missing & (front >= cut)  # (B, H, W)
        proposal = canvas.clone()
        for _ in _fronts(model, proposal, ~resampled, temperature, generator):
            pass
        log_alpha = _mh_score(model, proposal, resampled, temperature) - _mh_score(
            model, canvas, resampled, temperature
        )
        u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device)
        accept = torch.log(u) < log_alpha  # (B,)
        canvas = torch.where(accept[:, None, None, None], proposal, canvas)
        if on_update is not None:
            on_update(canvas)
    return canvas.to(torch.uint8)


def _to_frame(canvas: Tensor) -> np.ndarray:
    """`(B, H, W, C)` -> one uint8 frame `(H, B * W)` (grey) or `(H, B * W, 3)`, samples side by side."""
    img = torch.cat(list(canvas), dim=1).to(torch.uint8).cpu().numpy()
    return img[..., 0] if img.shape[-1] == 1 else img


def sampling_frames(
    model: TextureModel,
    height: int = 64,
    width: int = 64,
    *,
    num: int = 1,
    frames: int = 60,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Frames of textures appearing front by front: uint8 `(T, H, num * W)` (or `(..., 3)`)."""
    total = num_fronts(height, width, model.config.slope)
    keep = set(np.linspace(0, total - 1, max(frames, 1)).round().astype(int).tolist())
    out, counter = [], iter(range(total))

    def grab(canvas: Tensor) -> None:
        if next(counter) in keep:
            out.append(_to_frame(canvas))

    sample(model, num, height, width, temperature=temperature, generator=generator, on_front=grab)
    return np.stack(out)


def inpainting_frames(
    model: TextureModel,
    image: Tensor,
    missing: Tensor,
    *,
    frames: int = 40,
    refine_steps: int = 10,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Frames of a hole being filled, then refined: uint8 `(T, H, B * W)` (or `(..., 3)`).

    The hole starts black; the fronts crossing it fill it in, then one frame per refinement step.
    """
    start = image.long().masked_fill(missing[..., None], 0)
    slope = model.config.slope
    height, width = image.shape[1:3]
    front = slope * torch.arange(height)[:, None] + torch.arange(width)
    hole = front.expand_as(missing)[missing.cpu()]
    lo, hi = (int(hole.min()), int(hole.max())) if len(hole) else (0, 0)
    keep = set(np.linspace(lo, hi, max(frames - refine_steps - 1, 1)).round().astype(int).tolist())
    out, counter = [_to_frame(start)], iter(range(num_fronts(height, width, slope) + refine_steps))

    def grab(canvas: Tensor) -> None:
        t = next(counter)
        if t in keep or t >= num_fronts(height, width, slope):
            out.append(_to_frame(canvas))

    inpaint(model, image, missing, refine_steps=refine_steps, temperature=temperature,
            generator=generator, on_update=grab)
    return np.stack(out)
