"""Backprop mode: train the painter by differentiating through the soft renderer (the quality reference).

Each batch of targets is painted in ``steps`` steps of ``k`` strokes; the loss is the reconstruction error
of the canvas after every step (``per_step_loss``, so early strokes matter) or after the last one only:
pixel L2, plus optionally L1 and an L2 on blurred (4x average-pooled) images, which reaches strokes that do
not yet overlap the target. Runs in one process or under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU);
only rank 0 writes the run folder (config, metrics JSONL, curves PNG, atomic checkpoint), and a rerun
resumes from its checkpoint (``--resume``). The learning rate warms up linearly over the first
``min(100, iters / 20)`` iterations, then decays along a cosine to a twentieth.

Targets (``--targets``, :mod:`paintrnn.agents.painter_targets`): MNIST digits (the default), synthetic
pictures of random strokes made on the fly (no dataset), or random crops of a folder's pictures; with
``--start refine`` every episode starts from a partially painted canvas, so the painter learns to paint on
top of a painting (as it does patch by patch in ``paintrnn.paint``). The shipped colour painter::

    paintrnn train painter backprop --run-dir runs/painter-colour --threads 1 --targets synthetic --channels 3 \
        --canvas-size 32 --strokes-per-step 4 --steps 3 --head spatial --colour fit --no-taper \
        --radius-range 0.015 0.2 --opacity-range 0.3 1.0 --start refine --iters 5000

then ``paintrnn.agents.painter.export_painter(CHECKPOINT, "paintrnn/assets/checkpoints/painter-colour.pt",
views=8, min_radius=0.1)`` (the proposal settings, chosen on photos outside the benchmark).

    paintrnn train painter backprop --iters 4000 --run-dir runs/painter-backprop
    torchrun --nproc-per-node 2 -m paintrnn train painter backprop --device cpu
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import KINDS, Painter, PainterSpec, load_model
from paintrnn.agents.painter_targets import EVAL_SEED, TargetSource, parse_targets, start_canvases, to_canvas
from paintrnn.agents.painter_train import PainterRunConfig, due, eval_metrics, finish, mnist_digits, save_painter
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from paintrnn.run import lr_schedule, start_run
from paintrnn.training import all_reduce_mean


@dataclass(frozen=True)
class BackpropConfig(PainterRunConfig):
    """Train the conditional painter by backpropagation through the soft renderer (reconstruction)."""

    run_dir: str = "runs/painter-backprop"
    data_source: Literal["auto", "full", "sample"] = "auto"
    """MNIST files to use: full, the bundled sample, or full when present (auto)."""
    batch_size: int = 64
    """Targets per batch per process."""
    lr: float = 1e-3
    """Adam peak learning rate (linear warm-up, then a cosine decay to a twentieth)."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    sharpness: float = 2.0
    """Soft renderer edge sharpness (per pixel) used for training."""
    render_backend: Literal["auto", "eager", "compiled"] = "auto"
    """Renderer backend: eager PyTorch, torch.compile (fastest on GPU), or auto (compile large calls)."""
    per_step_loss: bool = True
    """Average the loss over the canvases after every step (else only the final canvas counts)."""
    l1_weight: float = 0.0
    """Weight of an extra L1 term."""
    blur_weight: float = 1.0
    """Weight of an L2 term on 4x average-pooled images (long-range gradient for far strokes)."""
    targets: str = "mnist"
    """What to paint: mnist, synthetic (random-stroke pictures made on the fly), photos (photo-like procedural
    pictures made on the fly), mixed (half synthetic, half photos) or folder:PATH (random crops of the pictures
    in a folder)."""
    init: str | None = None
    """Start from the weights of this painter checkpoint (same architecture) instead of random ones: fine-tuning.
    A run that resumes from its own checkpoint ignores it."""
    synthetic_strokes: tuple[int, int] = (4, 40)
    """Synthetic targets: the range of strokes per picture."""
    channels: int = 1
    """Colour channels: 1 (grey) or 3 (RGB; MNIST is repeated into three channels)."""
    start: Literal["black", "refine"] = "black"
    """Canvas each episode starts from: black, or refine (partially painted: the target's mean colour, the target
    roughly painted by a few strokes, a coarse copy, or one blended with another picture), to learn to paint on
    top of a painting."""
    head: Literal["global", "spatial"] = "global"
    """Stroke positions from the LSTM state (global) or from per-stroke heat maps over the encoder's features
    (spatial)."""
    colour: Literal["action", "fit"] = "action"
    """Stroke colours: the policy's actions, or fit (the least-squares colour of the target under each stroke)."""
    taper: bool = True
    """Strokes may change radius and opacity along their length (False: one of each per stroke)."""
    radius_range: tuple[float, float] = (0.01, 0.1)
    """Brush radius range, a fraction of the canvas side."""
    opacity_range: tuple[float, float] = (0.0, 1.0)
    """Stroke opacity range."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = PainterRunConfig.RESUME_MAY_CHANGE | {"render_backend"}

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_targets(self.targets)
        if self.channels not in (1, 3):
            raise ValueError(f"--channels must be 1 or 3, got {self.channels}")
        lo, hi = self.synthetic_strokes
        if not 1 <= lo <= hi:
            raise ValueError(f"--synthetic-strokes must be LOW HIGH with 1 <= LOW <= HIGH, got {lo} {hi}")
        for name, top in (("radius_range", 0.5), ("opacity_range", 1.0)):
            lo_, hi_ = getattr(self, name)
            if not 0 <= lo_ <= hi_ <= top:
                raise ValueError(f"--{name.replace('_', '-')} must be LOW HIGH with 0 <= LOW <= HIGH <= {top}")


def load_targets(cfg: BackpropConfig, split: str) -> Tensor:
    """MNIST digits as a uint8 ``(N, 1, 28, 28)`` tensor."""
    return mnist_digits(split, cfg.data_dir, cfg.data_source)


def reconstruction_loss(canvas: Tensor, target: Tensor, l1_weight: float, blur_weight: float) -> Tensor:
    """L2 (+ L1) (+ L2 of 4x average-pooled images) between ``(B, C, H, W)`` canvases and targets."""
    loss = F.mse_loss(canvas, target)
    if l1_weight:
        loss = loss + l1_weight * F.l1_loss(canvas, target)
    if blur_weight:
        loss = loss + blur_weight * F.mse_loss(F.avg_pool2d(canvas, 4), F.avg_pool2d(target, 4))
    return loss


def spec_of(cfg: BackpropConfig) -> PainterSpec:
    return PainterSpec(
        channels=cfg.channels,
        image_size=cfg.canvas_size,
        strokes_per_step=cfg.strokes_per_step,
        conditional=True,
        hidden=cfg.hidden,
        width=cfg.width,
        radius_range=cfg.radius_range,
        opacity_range=cfg.opacity_range,
        taper=cfg.taper,
        colour=cfg.colour,
        head=cfg.head,
    )


def eval_size(cfg: BackpropConfig) -> int:
    """Side at which the held-out targets are painted: 64 px for MNIST (as always), the training size else."""
    return 64 if parse_targets(cfg.targets)[0] == "mnist" else cfg.canvas_size


def learning_rate(cfg: BackpropConfig, it: int) -> float:
    """Learning rate of iteration ``it`` (from 0): linear warm-up to ``lr`` over the first ``min(100, iters / 20)``
    iterations (at least one), then a cosine to ``lr / 20`` at the end."""
    warm = max(1, min(100, cfg.iters // 20))
    if it < warm:
        return lr_schedule((it + 1) / warm, cfg.lr, cfg.lr, warmup_frac=1.0)  # (it + 1) / warm of the peak
    return lr_schedule((it - warm) / max(1, cfg.iters - warm), cfg.lr, 0.05 * cfg.lr)


def init_weights(painter: Painter, path: str) -> None:
    """Load the weights of the painter checkpoint ``path`` into ``painter``; another architecture is a one-line
    ``ValueError``."""
    source = load_model(path)
    if source.spec != painter.spec:
        raise ValueError(f"--init {path}: its painter is {source.spec}, this run's is {painter.spec}")
    painter.load_state_dict(source.state_dict())


def train_backprop(cfg: BackpropConfig) -> Painter:
    """Train (or resume) a backprop painter and return it (rank 0 writes ``run_dir/checkpoint.pt``)."""
    with start_run(cfg, kind=KINDS["backprop"]) as run:
        painter = Painter(spec_of(cfg)).to(run.device)
        if cfg.init:
            init_weights(painter, cfg.init)
        opt = torch.optim.Adam(painter.parameters(), lr=cfg.lr)
        run.resume(painter, opt)
        model = DistributedDataParallel(painter, find_unused_parameters=True) if run.info.distributed else painter
        source = TargetSource(cfg.targets, cfg.channels, cfg.canvas_size, cfg.data_dir, cfg.data_source,
                              cfg.synthetic_strokes)  # fmt: skip
        test = source.eval_set(cfg.eval_size)
        test_start = None
        if cfg.start == "refine":  # the held-out starting canvases, from a fixed stream
            test_start = start_canvases(to_canvas(test, eval_size(cfg)), torch.Generator().manual_seed(EVAL_SEED))
        running: list[float] = []
        row: dict[str, float] = {}
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters):
            opt.param_groups[0]["lr"] = learning_rate(cfg, it)
            batch_gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + it) * 1024 + run.info.rank)
            target = source.batch(cfg.batch_size, batch_gen, run.device)  # exact on resume, per rank
            start = start_canvases(target, batch_gen) if cfg.start == "refine" else None
            canvases = model(target, cfg.steps, canvas=start, sharpness=cfg.sharpness, backend=cfg.render_backend)
            losses = [reconstruction_loss(c, target, cfg.l1_weight, cfg.blur_weight) for c in canvases]
            loss = torch.stack(losses).mean() if cfg.per_step_loss else losses[-1]
            run.check_finite(loss, it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(painter.parameters(), cfg.grad_clip)
            opt.step()
            running.append(F.mse_loss(canvases[-1].detach(), target).item())
            done = it + 1
            if due(done, cfg.log_every, cfg.iters):
                train_mse = all_reduce_mean(torch.tensor(float(np.mean(running)), device=run.device)).item()
                running = []
                with run.paused():
                    test_mse = eval_metrics(painter, test, cfg, eval_size(cfg), test_start) if run.is_main else {}
                row = {"loss": loss.item(), "train_mse_soft": train_mse, "lr": learning_rate(cfg, done), **test_mse}
                run.log(done, **row)
            if due(done, cfg.checkpoint_every, cfg.iters):
                save_painter(run, done, painter, opt, "backprop")
        return finish(run, painter, "backprop", cfg, **{k: v for k, v in row.items() if k != "lr"})
