"""Painting any picture with strokes: ``paint(image, strokes=4000)`` -> a :class:`Painting`.

The pipeline, coarse to fine:

1. **Input** (:func:`load_target`, :mod:`paintrnn.picture`): any file Pillow opens (or a NumPy array, PIL image,
   tensor) as RGB floats in [0, 1], resized to the painting size: longer side ``size``, aspect kept.
2. **Patch pyramid** (:func:`plan_levels`, :mod:`paintrnn.pyramid`): level 0 is the whole picture, level ``l`` a
   ``2^l x 2^l`` grid of patches, the stroke budget split across levels and, within a level, evenly over its
   patches (the remainder to the patches with the largest error), so the total is exactly ``strokes``. The method
   ``agent`` (the learned proposer alone) uses a finer pyramid (:data:`AGENT_PATCH_STROKES`) and splits a level's
   strokes by the patches' errors (:data:`AGENT_ERROR_POWER`, :data:`AGENT_MOST`).
3. **One level** is painted as a few *batches of patches*, one per parity class (:func:`level_batches`), ``B``
   crops painted at once, each crop rendered on top of the current canvas, which already holds the earlier
   classes' strokes: each patch is optimised against exactly the pixels its strokes will be composited onto (a
   class sees the previous classes' strokes at its borders, instead of blending or blurring seams afterwards).
4. **Strokes of a batch** come from a :class:`StrokeProposer` (:mod:`paintrnn.proposers`: the built-in
   :class:`ErrorMapProposer` places them one by one where the error is largest, along the local edges, each
   the best of a few candidates in its error-minimising colour; the shipped learned painter is another). With
   ``method="optimize"`` or ``"agent+optimize"`` (the default) they are then refined by Adam through the soft
   renderer against the photo (``iters`` steps, cosine learning rate). The parameters are optimised through
   sigmoids that keep every stroke inside its patch's reach and its brush's ranges (:class:`Brush`).
5. The batch's strokes are mapped from crop to global normalised coordinates (:func:`crop_to_global`) and
   composited onto the canvas in hard mode (:mod:`paintrnn.tiles`), in order: level by level, class by class,
   patch by patch. The final canvas is what ``Painting.render()`` gives.

The result is a :class:`Painting` (:mod:`paintrnn.painted`): resolution-free strokes that render at any size and
write PNG, GIF, SVG and ``strokes.json``.

The core never imports :mod:`paintrnn.agents`: the methods ``agent`` and ``agent+optimize`` use the shipped
colour painter :data:`AGENT_MODEL` through :func:`paintrnn.load` (any model with a ``propose`` method), or a
proposer given to :func:`paint` or registered with :func:`register_proposer`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from paintrnn.brushes import BRUSHES, Brush
from paintrnn.image_metrics import psnr, ssim
from paintrnn.painted import _STROKE, CHANNELS, JSON_FORMAT, JSON_VERSION, Painting, get_brush  # noqa: F401
from paintrnn.picture import (  # noqa: F401
    ImageLike,
    ImageNotFoundError,
    PaintError,
    fit_size,
    load_image,
    load_target,
    resize,
)
from paintrnn.proposers import ErrorMapProposer, StrokeProposer
from paintrnn.pyramid import (
    _BLOCK,
    Batch,
    Level,
    PatchBatch,
    crop_to_global,
    extract_crops,
    level_batches,
    plan_levels,
    split_evenly,
)
from paintrnn.render import STROKE_FIELDS, render_strokes
from paintrnn.run import lr_schedule
from paintrnn.stroke_kernels import Bristles
from paintrnn.tiles import clamp_strokes, composite_region, to_pixels
from paintrnn.training import resolve_device

METHODS: tuple[str, ...] = ("optimize", "agent", "agent+optimize")
"""Painting methods: ``optimize`` (error-map strokes refined by Adam), ``agent`` (the learned colour painter's
strokes alone), ``agent+optimize`` (its strokes refined by Adam)."""


class MethodUnavailableError(PaintError):
    """The method needs a stroke proposer that is not available (not registered)."""


# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PaintConfig:
    """Settings of :func:`paint` (and of ``paintrnn paint``)."""

    strokes: int = 4000
    """Number of strokes, honoured exactly."""
    size: int = 512
    """Longer side of the painting in pixels (the aspect is kept); the strokes re-render at any size."""
    method: str = "agent+optimize"
    """agent+optimize (the learned stroke proposer's strokes refined by Adam through the soft renderer: the best
    and, from 250 strokes up, the fastest of the refining methods), agent (the proposer alone: fast) or optimize
    (strokes placed where the error is largest, refined by Adam; needs no learned model)."""
    brush: str = "round"
    """round, marker, tapered, watercolor or bristle (an oil brush: streaks along the stroke; see
    paintrnn.brushes)."""
    device: str = "auto"
    """cpu, cuda or auto (CUDA when available)."""
    seed: int = 0
    """Random seed (stroke placement)."""
    iters: int = 40
    """Adam steps for each batch of patches (each level has up to four batches); 0 keeps the proposals."""
    lr: float = 0.2
    """Adam learning rate on the strokes' unconstrained (logit) parameters; cosine decay to 10%."""
    sharpness: float = 4.0
    """Edge sharpness of the soft renderer during optimisation (per pixel; the result is rendered hard)."""
    patch_strokes: int | None = None
    """A finer level of patches is added while every patch still gets at least this many strokes (default: 8, and
    2 for the method agent, whose strokes are chosen best in small patches)."""
    min_patch: int = 16
    """Smallest patch side in pixels."""
    overlap: float = 0.125
    """How far stroke points may reach past their patch's border, a fraction of the patch side (<= 0.125)."""
    max_side: int = 4096
    """A picture longer than this (px) is downscaled when loaded."""
    backend: str = "auto"
    """Renderer backend during optimisation: auto (torch.compile for large calls), eager or compiled."""

    def __post_init__(self) -> None:
        ints = {"strokes": (1, 10**7), "size": (1, 16384), "iters": (0, 10**6), "patch_strokes": (1, 10**6)}
        ints |= {"min_patch": (8, 10**6), "max_side": (1, 10**6)}
        for name, (lo, hi) in ints.items():
            value = getattr(self, name)
            if name == "patch_strokes" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise PaintError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if self.method not in METHODS:
            raise PaintError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        get_brush(self.brush)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise PaintError(f"device must be cpu, cuda or auto, got {self.device!r}")
        for name in ("lr", "sharpness"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise PaintError(f"{name} must be a number > 0, got {value!r}")
        if not (isinstance(self.overlap, int | float) and 0 <= self.overlap <= 0.125):
            raise PaintError(f"overlap must be in [0, 0.125], got {self.overlap!r}")
        if self.backend not in ("auto", "eager", "compiled"):
            raise PaintError(f"backend must be auto, eager or compiled, got {self.backend!r}")

    @property
    def optimise(self) -> bool:
        return self.method in ("optimize", "agent+optimize") and self.iters > 0


# ----------------------------------------------------------------------------------------------- proposers


_PROPOSERS: dict[str, Callable[[torch.device], StrokeProposer]] = {}


AGENT_MODEL = "painter-colour"
"""The shipped model (``paintrnn.load`` name) behind the methods ``agent`` and ``agent+optimize``: any model
with a ``propose(patches, n)`` method (a :class:`StrokeProposer`)."""
AGENT_PATCH_STROKES = 2
"""``patch_strokes`` of the method ``agent`` (when not given): a finer pyramid, whose small patches each get a few
strokes that the proposer chooses among many of its own (measured on photos outside the benchmark)."""
AGENT_ERROR_POWER = 0.5
"""The method ``agent`` splits a level's strokes over its patches in proportion to their summed squared error to
this power (0 would split them evenly, as the other methods do)."""
AGENT_MOST = 2.0
"""The method ``agent`` gives no patch more than about this many times the even share of its level's strokes."""


def register_proposer(name: str, factory: Callable[[torch.device], StrokeProposer]) -> None:
    """Make ``factory(device) -> StrokeProposer`` serve the methods ``agent`` and ``agent+optimize`` (``name``
    ``"agent"``) instead of the shipped :data:`AGENT_MODEL`."""
    _PROPOSERS[name] = factory


def _agent_installed() -> bool:
    """Whether the shipped colour painter's checkpoint is there."""
    from paintrnn import hub

    return AGENT_MODEL in hub.SHIPPED and hub.checkpoint_path(AGENT_MODEL).is_file()


def _shipped_agent(device: torch.device) -> StrokeProposer | None:
    """The shipped colour painter through :func:`paintrnn.hub.load` (no import of the agents here), or None
    when it is not installed."""
    from paintrnn import hub

    if not _agent_installed():
        return None
    model = hub.load(AGENT_MODEL, device=device)
    return model if callable(getattr(model, "propose", None)) else None


def available_methods() -> tuple[str, ...]:
    """The methods usable now (``agent*`` once a proposer is registered or the shipped colour painter exists)."""
    agent = "agent" in _PROPOSERS or _agent_installed()
    return tuple(m for m in METHODS if m == "optimize" or agent)


# ----------------------------------------------------------------------------------------------- optimisation


class StrokeParams:
    """Strokes of a batch as unconstrained parameters ``theta`` (B, K, 13) mapped through sigmoids into their
    patch's region, the level's radii and the brush's opacities (:meth:`strokes`); ``active`` (B, K) zeroes the
    opacity of padding strokes (patches of a batch may have different counts)."""

    def __init__(self, batch: Batch, brush: Brush, active: Tensor, device: torch.device) -> None:
        ch, cw = batch.crop
        self.brush, self.active = brush, active.to(device)
        self.lo = torch.zeros(len(batch.region), 1, _STROKE, device=device)  # (B, 1, 13)
        self.span = torch.ones(len(batch.region), 1, _STROKE, device=device)
        reg = batch.region.to(device)
        scale = torch.tensor([cw, ch], device=device)
        for k in range(3):
            self.lo[:, 0, 2 * k : 2 * k + 2] = reg[:, 0:2] / scale
            self.span[:, 0, 2 * k : 2 * k + 2] = (reg[:, 2:4] - reg[:, 0:2]) / scale
        s = min(ch, cw)
        self.lo[..., 6:8], self.span[..., 6:8] = batch.radius[0] / s, (batch.radius[1] - batch.radius[0]) / s
        self.lo[..., 8:10], self.span[..., 8:10] = brush.opacity[0], brush.opacity[1] - brush.opacity[0]

    def strokes(self, theta: Tensor) -> Tensor:
        """``(B, K, 13)`` strokes in crop coordinates."""
        u = torch.sigmoid(theta)
        if not self.brush.taper:
            u = torch.cat([u[..., :6], u[..., 6:7], u[..., 6:7], u[..., 8:9], u[..., 8:9], u[..., 10:]], -1)
        s = self.lo + self.span * u
        return torch.cat([s[..., :8], s[..., 8:10] * self.active[..., None], s[..., 10:]], -1)

    def theta(self, strokes: Tensor) -> Tensor:
        """Parameters whose strokes are the given ones projected into the allowed ranges."""
        s = strokes.detach().to(self.lo)
        if not self.brush.taper:
            s = s.clone()
            s[..., 6:8] = s[..., 6:8].mean(-1, keepdim=True)
            s[..., 8:10] = s[..., 8:10].mean(-1, keepdim=True)
        u = torch.where(self.span > 0, (s - self.lo) / self.span.clamp(min=1e-12), 0.5)
        return torch.logit(u.clamp(0.01, 0.99))  # not deeper into the sigmoid's flat tails


def optimise_strokes(
    params: StrokeParams,
    theta: Tensor,
    canvas: Tensor,
    target: Tensor,
    valid: Tensor,
    *,
    iters: int,
    lr: float,
    sharpness: float,
    backend: str = "auto",
    deadline: float | None = None,
    on_step: Callable[[], None] | None = None,
) -> Tensor:
    """Adam on ``theta`` (B, K, 13) minimising the mean squared error of the soft render of
    ``params.strokes(theta)`` over ``canvas`` against ``target`` (both (B, C, h, w)) on the ``valid`` pixels;
    ``iters`` steps with a cosine learning rate from ``lr`` to ``lr / 10`` (by steps, or by time when a
    ``deadline``, a ``time.perf_counter()`` value, is given: it stops there). Returns the final ``theta``."""
    theta = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    norm = valid.sum().clamp(min=1) * canvas.shape[1]
    start = time.perf_counter()
    for it in range(iters):
        frac = it / iters
        if deadline is not None:
            now = time.perf_counter()
            if now >= deadline:
                break
            frac = max(frac, (now - start) / max(deadline - start, 1e-9))
        opt.param_groups[0]["lr"] = lr_schedule(frac, lr, lr / 10)
        out = render_strokes(
            params.strokes(theta), canvas, mode="soft", sharpness=sharpness, backend=backend,
            texture=params.brush.texture,
        )  # fmt: skip
        loss = (((out - target) ** 2) * valid).sum() / norm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step()
    return theta.detach()


# ----------------------------------------------------------------------------------------------- painting


def _canvas_blocks(height: int, width: int, background: Tensor) -> Tensor:
    """A block-padded canvas ``(C, 8 ceil(H/8), 8 ceil(W/8))`` filled with ``background``."""
    hp, wp = -(-height // _BLOCK) * _BLOCK, -(-width // _BLOCK) * _BLOCK
    return background[:, None, None].expand(len(background), hp, wp).contiguous()


def composite(canvas: Tensor, strokes: Tensor, height: int, width: int, texture: Bristles | None = None) -> None:
    """Composite ``(K, 13)`` normalised strokes in place onto a block-padded canvas of a ``height x width``
    picture (hard mode, exactly as ``render_strokes``, with the brush ``texture``)."""
    s = clamp_strokes(strokes)
    prm, colour = to_pixels(s, height, width), s[:, len(STROKE_FIELDS) :]
    composite_region(canvas, prm, colour, (0, 0), -(-width // _BLOCK), texture=texture)


def _paint_batch(
    canvas: Tensor,
    target: Tensor,
    batch: Batch,
    counts: list[int],
    level: int,
    proposer: StrokeProposer,
    cfg: PaintConfig,
    generator: torch.Generator,
    on_step: Callable[[], None],
) -> Tensor:
    """Paint one batch of patches; composites its strokes onto ``canvas`` and returns them ``(sum(counts), 13)``
    in global coordinates, patch by patch."""
    H, W = target.shape[1:]
    K = max(counts)
    active = torch.arange(K)[None, :] < torch.tensor(counts)[:, None]  # (B, K)
    brush = get_brush(cfg.brush)
    params = StrokeParams(batch, brush, active, target.device)
    crops, valid = extract_crops(canvas[:, :H, :W], batch.origin, batch.crop)
    goal, _ = extract_crops(target, batch.origin, batch.crop)
    ch, cw = batch.crop
    region_px = batch.region.to(target.device)
    radius = batch.radius
    patches = PatchBatch(crops, goal, valid, region_px, radius, batch.patch_side, brush.opacity, level, generator)
    proposed = proposer.propose(patches, K)
    if tuple(proposed.shape) != (len(counts), K, _STROKE):
        want = (len(counts), K, _STROKE)
        raise PaintError(f"the stroke proposer returned shape {tuple(proposed.shape)}, expected {want}")
    theta = params.theta(proposed.to(target.device, torch.float32))
    if cfg.optimise:
        theta = optimise_strokes(
            params, theta, crops, goal, valid, iters=cfg.iters, lr=cfg.lr, sharpness=cfg.sharpness,
            backend=cfg.backend, on_step=on_step,
        )  # fmt: skip
    with torch.no_grad():
        local = params.strokes(theta)  # (B, K, 13)
        strokes = crop_to_global(local, batch.origin, (ch, cw), H, W)[active]  # (sum(counts), 13), patch-major
        composite(canvas, strokes, H, W, brush.texture)
    return strokes


def _allocate(
    level: Level, batches: list[Batch], canvas: Tensor, target: Tensor, power: float = 0.0, most: float = 1.0
) -> list[list[int]]:
    """Strokes per patch of each batch: the level's budget evenly, the remainder to the largest errors; or, with
    ``power > 0``, in proportion to each patch's summed squared error to that power, no patch more than about
    ``most`` times the even share (:func:`split_evenly`)."""
    H, W = target.shape[1:]
    err2 = ((canvas[:, :H, :W] - target) ** 2).sum(0)  # (H, W)
    errors, where = [], []
    for bi, batch in enumerate(batches):
        for pi, (x0, y0, x1, y1) in enumerate(batch.owned.tolist()):
            errors.append(float(err2[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0)
            where.append((bi, pi))
    if power > 0:
        areas = [(x1 - x0) * (y1 - y0) for b in batches for x0, y0, x1, y1 in b.owned.tolist()]
        weight = np.asarray([(e * a) ** power for e, a in zip(errors, areas)]) + 1e-12
        weight = np.minimum(weight / weight.sum(), most / len(weight))
        flat, counts = split_evenly(level.strokes, list(weight)), []
        for b in batches:
            counts.append(flat[: len(b.owned)])
            flat = flat[len(b.owned) :]
        return counts
    n = len(errors)
    base, extra = divmod(level.strokes, n)
    counts = [[base] * len(b.owned) for b in batches]
    for k in sorted(range(n), key=lambda k: (-errors[k], k))[:extra]:
        bi, pi = where[k]
        counts[bi][pi] += 1
    return counts


def _proposer_for(method: str, proposer: StrokeProposer | None, device: torch.device) -> StrokeProposer:
    if method == "optimize":
        return proposer or ErrorMapProposer()
    if proposer is not None:
        return proposer
    found = _PROPOSERS["agent"](device) if "agent" in _PROPOSERS else _shipped_agent(device)
    if found is None:
        raise MethodUnavailableError(
            f"method {method!r} needs the colour painter ({AGENT_MODEL!r}, a learned stroke proposer), which is not "
            "installed; use --method optimize"
        )
    return found


def paint(
    image: ImageLike,
    strokes: int = 4000,
    *,
    size: int = 512,
    method: str = "agent+optimize",
    brush: str = "round",
    device: str = "auto",
    seed: int = 0,
    proposer: StrokeProposer | None = None,
    progress: bool = False,
    config: PaintConfig | None = None,
    **options: Any,
) -> Painting:
    """Paint ``image`` (a path, PIL image, array or tensor; see :func:`load_image`) with exactly ``strokes``
    strokes, coarse to fine (see the module docstring). ``options`` are further :class:`PaintConfig` fields
    (``iters``, ``lr`` ...); ``config`` replaces all of them. ``proposer`` overrides the method's stroke
    proposer. Returns a :class:`Painting`; bad input raises :class:`PaintError` (a ``ValueError``)."""
    start = time.perf_counter()
    cfg = config or PaintConfig(
        strokes=strokes, size=size, method=method, brush=brush, device=device, seed=seed, **options
    )
    try:
        dev = resolve_device(cfg.device)
    except ValueError as err:  # cuda asked for without a GPU: the painting's one-line error
        raise PaintError(str(err)) from None
    target = load_target(image, cfg.size, cfg.max_side).to(dev)  # (3, H, W); a bad picture is reported first
    proposer = _proposer_for(cfg.method, proposer, dev)
    H, W = target.shape[1:]
    background = target.mean((1, 2))  # (3,) the photo's mean colour
    canvas = _canvas_blocks(H, W, background)
    generator = torch.Generator(device=dev).manual_seed(cfg.seed)
    alone = cfg.method == "agent"  # the learned proposer alone: its own pyramid and allocation
    patch_strokes = cfg.patch_strokes or (AGENT_PATCH_STROKES if alone else 8)
    levels = plan_levels(cfg.strokes, H, W, patch_strokes, cfg.min_patch)
    brush_ = get_brush(cfg.brush)
    plan = [level_batches(lv, H, W, brush_, cfg.overlap, cfg.sharpness) for lv in levels]
    steps = sum(len(b) for b in plan) * (cfg.iters if cfg.optimise else 1)
    bar = tqdm(
        total=steps, disable=not progress, desc=f"painting {cfg.strokes} strokes", unit="step", dynamic_ncols=True
    )
    painted = []
    for li, (level, batches) in enumerate(zip(levels, plan)):
        bar.set_postfix_str(f"level {li + 1}/{len(levels)}: {level.grid}x{level.grid} patches, {level.strokes} strokes")
        counts = _allocate(level, batches, canvas, target, *((AGENT_ERROR_POWER, AGENT_MOST) if alone else ()))
        for batch, c in zip(batches, counts):
            if max(c) == 0:
                continue
            painted.append(_paint_batch(canvas, target, batch, c, li, proposer, cfg, generator, lambda: bar.update()))
            if not cfg.optimise:
                bar.update()
    bar.close()
    strokes_t = torch.cat(painted).cpu() if painted else torch.zeros(0, _STROKE)
    final = canvas[:, :H, :W]
    info = {
        "method": cfg.method,
        "seed": cfg.seed,
        "iters": cfg.iters if cfg.optimise else 0,
        "seconds": round(time.perf_counter() - start, 3),
        "psnr": round(psnr(final, target), 4),
        "ssim": round(ssim(final, target), 5),
        "source": str(image) if isinstance(image, (str, os.PathLike)) else None,
    }
    return Painting(
        strokes=strokes_t,
        width=int(W),
        height=int(H),
        background=tuple(float(v) for v in background.cpu()),
        brush=cfg.brush,
        levels=tuple(lv.strokes for lv in levels),
        info=info,
    )


# The names that moved to paintrnn.picture, .pyramid and .painted stay importable from here (noqa: F401 above).
__all__ = [
    "BRUSHES",
    "METHODS",
    "Brush",
    "ErrorMapProposer",
    "ImageNotFoundError",
    "MethodUnavailableError",
    "PaintConfig",
    "PaintError",
    "Painting",
    "PatchBatch",
    "StrokeProposer",
    "available_methods",
    "load_image",
    "paint",
    "register_proposer",
]
