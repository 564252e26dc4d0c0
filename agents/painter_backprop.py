"""Backprop mode: train the painter by differentiating through the soft renderer (the quality reference).

Each batch of targets is painted in ``steps`` steps of ``k`` strokes; the loss is the reconstruction error
of the canvas after every step (``per_step_loss``, so early strokes matter) or after the last one only:
pixel L2, plus optionally L1 and an L2 on blurred (4x average-pooled) images, which reaches strokes that do
not yet overlap the target. Runs in one process or under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU);
only rank 0 writes the run folder (config, metrics JSONL, curves PNG, atomic checkpoint), and a rerun
resumes from its checkpoint (``--resume``). The learning rate warms up linearly over the first
``min(100, iters / 20)`` iterations, then decays along a cosine to a twentieth.

    python scripts/train_painter.py backprop --iters 4000 --run-dir runs/painter-backprop
    torchrun --nproc-per-node 2 scripts/train_painter.py backprop --device cpu
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import KINDS, Painter, PainterSpec
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

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = PainterRunConfig.RESUME_MAY_CHANGE | {"render_backend"}


def load_targets(cfg: BackpropConfig, split: str) -> Tensor:
    """MNIST digits as a uint8 ``(N, 1, 28, 28)`` tensor."""
    return mnist_digits(split, cfg.data_dir, cfg.data_source)


def to_canvas(images: Tensor, size: int) -> Tensor:
    """uint8 ``(B, C, h, w)`` -> float ``(B, C, size, size)`` in [0, 1] (bilinear, antialiased)."""
    x = images.float() / 255
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


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
        channels=1,
        image_size=cfg.canvas_size,
        strokes_per_step=cfg.strokes_per_step,
        conditional=True,
        hidden=cfg.hidden,
        width=cfg.width,
    )


def learning_rate(cfg: BackpropConfig, it: int) -> float:
    """Learning rate of iteration ``it`` (from 0): linear warm-up to ``lr`` over the first ``min(100, iters / 20)``
    iterations (at least one), then a cosine to ``lr / 20`` at the end."""
    warm = max(1, min(100, cfg.iters // 20))
    if it < warm:
        return lr_schedule((it + 1) / warm, cfg.lr, cfg.lr, warmup_frac=1.0)  # (it + 1) / warm of the peak
    return lr_schedule((it - warm) / max(1, cfg.iters - warm), cfg.lr, 0.05 * cfg.lr)


def train_backprop(cfg: BackpropConfig) -> Painter:
    """Train (or resume) a backprop painter and return it (rank 0 writes ``run_dir/checkpoint.pt``)."""
    with start_run(cfg, kind=KINDS["backprop"]) as run:
        painter = Painter(spec_of(cfg)).to(run.device)
        opt = torch.optim.Adam(painter.parameters(), lr=cfg.lr)
        run.resume(painter, opt)
        model = DistributedDataParallel(painter, find_unused_parameters=True) if run.info.distributed else painter
        train, test = load_targets(cfg, "train"), load_targets(cfg, "test")[: cfg.eval_size]
        running: list[float] = []
        row: dict[str, float] = {}
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters):
            opt.param_groups[0]["lr"] = learning_rate(cfg, it)
            batch_gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + it) * 1024 + run.info.rank)
            idx = torch.randint(len(train), (cfg.batch_size,), generator=batch_gen)  # exact on resume, per rank
            target = to_canvas(train[idx].to(run.device), cfg.canvas_size)
            canvases = model(target, cfg.steps, sharpness=cfg.sharpness, backend=cfg.render_backend)
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
                    test_mse = eval_metrics(painter, test, cfg) if run.is_main else {}
                row = {"loss": loss.item(), "train_mse_soft": train_mse, "lr": learning_rate(cfg, done), **test_mse}
                run.log(done, **row)
            if due(done, cfg.checkpoint_every, cfg.iters):
                save_painter(run, done, painter, opt, "backprop")
        return finish(run, painter, "backprop", cfg, **{k: v for k, v in row.items() if k != "lr"})
