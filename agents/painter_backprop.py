"""Backprop mode: train the painter by differentiating through the soft renderer (the quality reference).

Each batch of targets is painted in ``steps`` steps of ``k`` strokes; the loss is the reconstruction error
of the canvas after every step (``per_step_loss``, so early strokes matter) or after the last one only:
pixel L2, plus optionally L1 and an L2 on blurred (4x average-pooled) images, which reaches strokes that do
not yet overlap the target. Runs in one process or under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU);
only rank 0 writes the run folder (config, metrics JSONL, curves PNG, atomic checkpoint) and resumes
from its checkpoint after a kill.

    python scripts/train_painter.py backprop --iters 4000 --run-dir runs/painter-backprop
    torchrun --nproc-per-node 2 scripts/train_painter.py backprop --device cpu
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import KIND, Painter, PainterSpec, paint
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from paintrnn.data import load_mnist
from paintrnn.training import (
    DistInfo,
    MetricsLogger,
    all_reduce_mean,
    check_finite,
    cleanup_distributed,
    load_checkpoint,
    plot_metrics,
    progress,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_distributed,
    write_config,
)


@dataclass(frozen=True)
class BackpropConfig:
    """Train the conditional painter by backpropagation through the soft renderer (reconstruction)."""

    run_dir: str = "runs/painter-backprop"
    """Folder for config.json, metrics.jsonl, curves.png and checkpoint.pt (resumed when present)."""
    device: str = "auto"
    """cpu, cuda or auto (cuda when available)."""
    seed: int = 0
    """Seed of weights, data order and everything random."""
    data_dir: str | None = None
    """Folder holding MNIST (default: $PAINTRNN_DATA or the cache; the bundled sample when absent)."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """MNIST files to use: full, the bundled sample, or full when present (auto)."""
    canvas_size: int = 32
    """Side of the canvas (and encoder input) during training; strokes re-render at any size later."""
    strokes_per_step: int = 5
    """k: strokes per step."""
    steps: int = 2
    """Steps per episode (total strokes = steps * strokes_per_step)."""
    hidden: int = 256
    """LSTM state size."""
    width: int = 32
    """Channels of the encoder's first convolution."""
    batch_size: int = 64
    """Targets per batch per process."""
    iters: int = 3000
    """Optimiser steps."""
    lr: float = 1e-3
    """Adam learning rate (cosine decay to a twentieth after a short warm-up)."""
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
    eval_size: int = 256
    """Held-out test digits evaluated (hard renderer, 64 px) at each log."""
    log_every: int = 50
    """Iterations between metric lines."""
    checkpoint_every: int = 250
    """Iterations between checkpoints."""
    progress: bool = True
    """Show a progress bar."""
    threads: int = 1
    """torch CPU threads (0 = torch's default); one thread is much faster on a shared, busy CPU."""


def load_targets(cfg: BackpropConfig, split: str) -> Tensor:
    """MNIST digits as a uint8 ``(N, 1, 28, 28)`` tensor."""
    images, _ = load_mnist(split, cfg.data_dir, source=cfg.data_source)  # type: ignore[arg-type]
    return torch.from_numpy(np.ascontiguousarray(images))[:, None]


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


@torch.no_grad()
def evaluate_mse(
    painter: Painter, targets: Tensor, strokes: int, size: int = 64, batch: int = 250, show: bool = False
) -> list[float]:
    """Mean squared error per pixel after each of the first ``strokes`` strokes (index n-1: after n strokes),
    hard renderer at ``size`` px; ``targets`` uint8 ``(N, C, h, w)``. ``strokes`` rounds up to whole steps."""
    device = next(painter.parameters()).device
    steps = -(-strokes // painter.spec.strokes_per_step)
    total = torch.zeros(steps * painter.spec.strokes_per_step, dtype=torch.float64)
    for i in progress(range(0, len(targets), batch), enabled=show, desc="evaluate", leave=False):
        tgt = to_canvas(targets[i : i + batch].to(device), size)
        canvases, _ = paint(painter, tgt, steps)  # (B, steps*k, C, H, W)
        total += ((canvases - tgt[:, None]) ** 2).mean((2, 3, 4)).sum(0).double().cpu()
    return (total / len(targets)).tolist()[:strokes]


def spec_of(cfg: BackpropConfig) -> PainterSpec:
    return PainterSpec(
        channels=1,
        image_size=cfg.canvas_size,
        strokes_per_step=cfg.strokes_per_step,
        conditional=True,
        hidden=cfg.hidden,
        width=cfg.width,
    )


def train_backprop(cfg: BackpropConfig) -> Painter:
    """Train (or resume) a backprop painter and return it (rank 0 writes ``run_dir/checkpoint.pt``)."""
    dist_info = setup_distributed(cfg.device)
    device, main = dist_info.device, dist_info.is_main
    try:
        return _train(cfg, dist_info, device, main)
    finally:
        cleanup_distributed()


def _train(cfg: BackpropConfig, dist_info: DistInfo, device: torch.device, main: bool) -> Painter:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run_dir)
    ckpt_path = run / "checkpoint.pt"
    generator = seed_everything(cfg.seed)
    painter = Painter(spec_of(cfg)).to(device)
    opt = torch.optim.Adam(painter.parameters(), lr=cfg.lr)
    start, prior_minutes = 0, 0.0
    if ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, device, kind=KIND)
        painter.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start = ckpt["step"]
        set_rng_state(ckpt["rng"], generator)
        prior_minutes = ckpt["extra"].get("minutes", 0.0)
    model = DistributedDataParallel(painter, find_unused_parameters=True) if dist_info.distributed else painter
    train, test = load_targets(cfg, "train"), load_targets(cfg, "test")[: cfg.eval_size]
    if main:
        run.mkdir(parents=True, exist_ok=True)
        write_config(run / "config.json", cfg)
    logger = MetricsLogger(run / "metrics.jsonl", resume_step=start if start else None, enabled=main)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, cfg.iters), last_epoch=start - 1)
    t0, running = time.time(), []
    for it in progress(range(start, cfg.iters), enabled=main and cfg.progress, initial=start, total=cfg.iters):
        batch_gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + it) * 1024 + dist_info.rank)
        idx = torch.randint(len(train), (cfg.batch_size,), generator=batch_gen)  # exact on resume, per rank
        target = to_canvas(train[idx].to(device), cfg.canvas_size)
        canvases = model(target, cfg.steps, sharpness=cfg.sharpness, backend=cfg.render_backend)
        losses = [reconstruction_loss(c, target, cfg.l1_weight, cfg.blur_weight) for c in canvases]
        loss = torch.stack(losses).mean() if cfg.per_step_loss else losses[-1]
        check_finite(loss, it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(painter.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running.append(F.mse_loss(canvases[-1].detach(), target).item())
        done = it + 1
        if done % cfg.log_every == 0 or done == cfg.iters:
            train_mse = all_reduce_mean(torch.tensor(float(np.mean(running)), device=device)).item()
            running = []
            if main:
                mse = evaluate_mse(painter, test, cfg.steps * cfg.strokes_per_step)
                k = cfg.strokes_per_step
                logger.log(
                    done,
                    loss=loss.item(),
                    train_mse_soft=train_mse,
                    minutes=prior_minutes + (time.time() - t0) / 60,
                    lr=sched.get_last_lr()[0],
                    **{f"test_mse_{n}": mse[n - 1] for n in range(k, len(mse) + 1, k)},
                )
        if main and (done % cfg.checkpoint_every == 0 or done == cfg.iters):
            save_checkpoint(
                ckpt_path,
                kind=KIND,
                config=cfg,
                model=painter,
                optimizer=opt,
                step=done,
                generator=generator,
                extra={
                    "spec": dataclasses.asdict(spec_of(cfg)),
                    "mode": "backprop",
                    "minutes": prior_minutes + (time.time() - t0) / 60,
                },
            )
            plot_metrics(run / "metrics.jsonl", run / "curves.png")
    return painter


def _lr_factor(it: int, total: int) -> float:
    warm = max(1, min(100, total // 20))
    if it < warm:
        return (it + 1) / warm
    return float(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(1.0, (it - warm) / max(1, total - warm)))))
