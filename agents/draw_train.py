"""Train and evaluate DRAW on binarised MNIST: ``python scripts/train_draw.py --preset fast --epochs 10``.

Training images are binarised afresh at every use (dynamic binarisation); the test set is binarised once
with a fixed seed (this is *not* the Larochelle fixed binarisation the paper used, so numbers are close to,
not identical with, its 80.97 nats). A run folder holds ``config.json``, ``metrics.jsonl`` (training
losses every ``log_every`` steps, test bounds every epoch), ``curves.png``, ``checkpoint.pt`` (atomic,
resumable: a killed run restarted with the same command continues exactly), ``samples.png`` and, at the
end, ``eval.json`` with the test negative ELBO and the importance-weighted bound.

Runs under ``torchrun --nproc-per-node N`` (DDP; gloo on CPU, NCCL on GPU) with a ``DistributedSampler``;
only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from paintrnn.agents.draw import DRAW, PRESETS, DrawConfig, preset
from paintrnn.agents.draw_eval import evaluate
from paintrnn.agents.vae import VAE, VAEConfig
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from paintrnn.config import config_from_dict, parse_config
from paintrnn.data import binarize_dynamic, binarize_fixed, load_mnist
from paintrnn.graphs import GraphedStep, prepare_optimizer
from paintrnn.media import save_grid
from paintrnn.training import (
    EMA,
    CheckpointError,
    DistInfo,
    MetricsLogger,
    NonFiniteLossError,
    check_finite,
    cleanup_distributed,
    load_checkpoint,
    plot_metrics,
    progress,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    synced_clock,
    write_config,
)

CHECKPOINT_KIND = "draw"


@dataclass(frozen=True)
class TrainConfig:
    """Train DRAW on binarised MNIST (negative ELBO in nats per image, Adam, gradient clipping)."""

    preset: str = "fast"
    """Model preset: paper (Table 3, T=64), paper_noattn, fast (T=16), fast_noattn, cpu, small, tiny."""
    steps: int | None = None
    """Override the preset's number of drawing steps T."""
    enc_size: int | None = None
    """Override the encoder LSTM size."""
    dec_size: int | None = None
    """Override the decoder LSTM size."""
    z_size: int | None = None
    """Override the latent size per step."""
    read_n: int | None = None
    """Override the read window size N."""
    write_n: int | None = None
    """Override the write window size N."""
    attention: bool | None = None
    """Override attention on/off."""
    canvas_init: float | None = None
    """Override the initial canvas logit."""
    epochs: int = 10
    """Passes over the 60000 training images."""
    batch_size: int = 100
    """Images per optimiser step (over all processes)."""
    lr: float = 1e-3
    """Adam learning rate (peak)."""
    lr_final: float = 0.1
    """Cosine decay of the learning rate to this fraction of ``lr`` at the last step."""
    grad_clip: float = 10.0
    """Clip the global gradient norm to this value."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights with this decay (0: off; 0.999 is typical) and use it
    for the test bounds, the samples and the exported model; the raw weights' -ELBO is logged beside it."""
    seed: int = 0
    """Random seed (data order, binarisation, posterior noise, initial weights)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    out: str = "runs/draw"
    """Run folder (config, metrics, curves, checkpoint, samples, eval)."""
    data_dir: str | None = None
    """Folder holding mnist/ (default: $PAINTRNN_DATA or the user cache)."""
    data_source: str = "auto"
    """MNIST source: full, sample (bundled subset) or auto."""
    train_images: int | None = None
    """Use only the first N training images (quick runs)."""
    test_images: int | None = None
    """Evaluate on the first N test images (default: all 10000)."""
    test_seed: int = 0
    """Seed of the one fixed binarisation of the test set."""
    iwae_k: int = 50
    """Importance samples for the final IWAE bound (0: skip)."""
    iwae_images: int | None = None
    """Compute the IWAE bound on the first N test images only (default: all; it costs k forward passes each)."""
    elbo_samples: int = 1
    """Posterior draws per test image averaged in the final -ELBO (one draw is unbiased but noisy, ~0.06 nats on
    the paper configuration; more draws shrink the noise, reported as test_nelbo_mc_se)."""
    eval_every: int = 1
    """Evaluate the test negative ELBO every this many epochs."""
    log_every: int = 50
    """Log training metrics every this many steps."""
    ckpt_every: int = 500
    """Write a checkpoint every this many steps (and at each epoch end)."""
    max_steps: int | None = None
    """Stop (with a checkpoint) after this many optimiser steps in total."""
    time_limit_min: float | None = None
    """Stop after this many minutes of training (evaluation excluded) and evaluate: a fixed time budget."""
    decay_by_time: bool = False
    """Decay the learning rate over --time-limit-min when that ends first (a fixed time budget; a resumed run
    then no longer repeats the uninterrupted one exactly, as the schedule depends on measured time)."""
    eval_only: bool = False
    """Do not train: evaluate the run folder's checkpoint (test ELBO, IWAE) and write eval.json."""
    resume: bool = True
    """Continue from the run folder's checkpoint when there is one."""
    vae: bool = False
    """Train the plain VAE baseline with the model's latent budget (steps x z_size) instead of DRAW."""
    vae_hidden: int = 500
    """Hidden units per layer of the baseline VAE."""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice; 1 is fastest on a CPU shared with other jobs)."""
    compile: bool = False
    """torch.compile the step function (falls back to eager if compilation fails)."""
    cuda_graph: bool = True
    """On a GPU (one process), replay each whole training step as a CUDA graph: T=64 launches thousands of
    tiny kernels per step, and the graph removes their launch cost. Training images are then binarised on
    the GPU, so the noise differs from an eager run (a resumed run still repeats an uninterrupted one)."""
    eval_batch: int = 500
    """Test images per evaluation batch (rows per forward pass for the IWAE bound)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        for name in ("epochs", "batch_size", "eval_every", "log_every", "ckpt_every", "eval_batch", "elbo_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 < self.lr_final <= 1 and self.grad_clip > 0):
            raise ValueError("need lr > 0, 0 < lr_final <= 1 and grad_clip > 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"--ema-decay must lie in [0, 1), got {self.ema_decay}")

    def model_config(self) -> DrawConfig:
        overrides = {
            f.name: getattr(self, f.name) for f in fields(DrawConfig) if getattr(self, f.name, None) is not None
        }
        return preset(self.preset, **overrides)


def mnist_fixed_set(cfg: TrainConfig, split: str = "test", n: int | None = None) -> torch.Tensor:
    """The first ``n`` digits of ``split`` (default: all), binarised once with ``test_seed``: ``(M, 1, 28, 28)``."""
    images, _ = load_mnist(split, cfg.data_dir, source=cfg.data_source)
    return binarize_fixed(torch.from_numpy(images[:n]).float().div_(255)[:, None], cfg.test_seed)


def mnist_test_set(cfg: TrainConfig) -> torch.Tensor:
    """The fixed binary test set ``(M, 1, 28, 28)``: the first ``test_images`` digits, binarised with ``test_seed``."""
    return mnist_fixed_set(cfg, "test", cfg.test_images)


def mnist_tensors(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Training intensities in [0, 1] ``(N, 1, 28, 28)`` and the fixed binary test set ``(M, 1, 28, 28)``."""
    train, _ = load_mnist("train", cfg.data_dir, source=cfg.data_source)
    return torch.from_numpy(train[: cfg.train_images]).float().div_(255)[:, None], mnist_test_set(cfg)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the binarisation and posterior noise of one training step: a resumed run redraws the same."""
    return (seed * 1_000_003 + step * 4099 + rank * 7919 + 17) % 2**63


def lr_at(cfg: TrainConfig, step: int, total: int, elapsed_s: float = 0.0) -> float:
    """Cosine decay from ``lr`` to ``lr * lr_final`` over ``total`` steps (or over the time limit, whichever
    runs out first, with ``decay_by_time``)."""
    frac = step / max(total, 1)
    if cfg.decay_by_time and cfg.time_limit_min:
        frac = max(frac, elapsed_s / (60 * cfg.time_limit_min))
    frac = min(frac, 1.0)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))


def machine_info(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def train(cfg: TrainConfig) -> DRAW | VAE:
    """Train (or resume) a DRAW model as configured; return the trained model (unwrapped)."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    info: DistInfo = setup_distributed(cfg.device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the {info.world_size} processes")
    out = Path(cfg.out)
    mcfg = cfg.model_config()
    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = (VAE(VAEConfig.matching(mcfg, cfg.vae_hidden)) if cfg.vae else DRAW(mcfg)).to(info.device)
    kind = "vae" if cfg.vae else CHECKPOINT_KIND
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    graphed = cfg.cuda_graph and info.device.type == "cuda" and not (info.distributed or cfg.vae or cfg.eval_only)
    train_x, test_x = mnist_tensors(cfg)
    sampler = DistributedSampler(
        range(train_x.shape[0]),
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=cfg.seed,
        drop_last=True,
    )
    local_batch = cfg.batch_size // info.world_size
    per_epoch = len(sampler) // local_batch
    if per_epoch == 0:
        raise ValueError(f"{train_x.shape[0]} training images give no full batch of {cfg.batch_size}")
    total = per_epoch * cfg.epochs

    step, elapsed, ckpt = 0, 0.0, None
    ckpt_path = out / "checkpoint.pt"
    if cfg.resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, map_location=info.device, kind=kind)
        saved = config_from_dict(DrawConfig, ckpt["config"]["model"])
        if saved != mcfg:
            raise CheckpointError(f"{ckpt_path} holds a model {saved}, but this run asks for {mcfg}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], float(ckpt["extra"].get("elapsed_s", 0.0))
    elif cfg.eval_only:
        raise CheckpointError(f"--eval-only needs a checkpoint, and there is none at {ckpt_path}")
    saved_ema = ckpt["extra"].get("ema") if ckpt else None
    decay = cfg.ema_decay or (ckpt["extra"].get("ema_decay", 0.0) if cfg.eval_only and saved_ema else 0.0)
    ema = EMA(model, decay) if decay else None
    if ema is not None and saved_ema:  # a run resumed without an average starts one from its current weights
        ema.load_state_dict(saved_ema)
    prepare_optimizer(optimizer, graphed)  # after loading: the checkpoint carries the mode it was saved in
    if info.is_main and not cfg.eval_only:  # the configuration of the latest (re)start
        out.mkdir(parents=True, exist_ok=True)
        write_config(out / "config.json", cfg)
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 tensor cores for the LSTM products
        torch.backends.cudnn.allow_tf32 = True
    logger = MetricsLogger(out / "metrics.jsonl", resume_step=step if step else None, enabled=info.is_main)
    eager = compiled = None  # evaluation runs the eager step: its batch shapes would recompile a compiled one
    if cfg.compile and not cfg.vae and not cfg.eval_only:
        eager = model.step
        try:  # compile now, on a training-shaped batch, so that a broken toolchain falls back to eager
            model.step = compiled = torch.compile(eager, dynamic=False)
            model(torch.zeros(local_batch, 1, mcfg.height, mcfg.width, device=info.device)).loss.backward()
            model.zero_grad(set_to_none=True)
        except Exception as exc:  # pragma: no cover - depends on the toolchain
            model.step, compiled = eager, None
            model.zero_grad(set_to_none=True)
            print(f"torch.compile failed ({type(exc).__name__}: {exc}); running eager", file=sys.stderr)
    net = DistributedDataParallel(model) if info.distributed else model
    # The step reads its images from a buffer that keeps its storage (a CUDA graph replays fixed addresses):
    # binary images when eager (binarised on the CPU from the step's seed), intensities when graphed.
    inputs = torch.zeros(local_batch, 1, mcfg.height, mcfg.width, device=info.device)
    train_src = train_x.to(info.device) if graphed else train_x

    def train_step() -> torch.Tensor:
        x = binarize_dynamic(inputs) if graphed else inputs
        result = model.unroll(x) if graphed else net(x)
        if not graphed:
            check_finite(result.loss, step)
        result.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        return torch.stack([result.loss.detach(), result.recon.mean().detach(), grad_norm.detach()])

    model.train()
    try:
        runner = GraphedStep(train_step, model, optimizer, enabled=graphed)
    except Exception as exc:  # pragma: no cover - depends on the GPU toolchain
        print(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); running eager", file=sys.stderr)
        graphed = False
        prepare_optimizer(optimizer, False)
        optimizer.zero_grad(set_to_none=True)
        train_src = train_x
        runner = GraphedStep(train_step, model, optimizer, enabled=False)

    def test_bounds(**kwargs) -> dict[str, float]:
        """Bounds of the averaged weights when there are any (with the raw weights' -ELBO), else the raw."""
        if compiled is not None:
            model.step = eager
        try:
            if ema is None:
                return evaluate(model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed, **kwargs)
            raw = evaluate(model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed)["test_nelbo"]
            return {**evaluate(ema.model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed, **kwargs),
                    "raw_test_nelbo": raw}  # fmt: skip
        finally:
            if compiled is not None:
                model.step = compiled

    def plot_curves() -> None:  # from the log, absent only when --eval-only scores a checkpoint on its own
        if info.is_main and (out / "metrics.jsonl").is_file():
            keys = ["loss", "test_nelbo", "kl", "grad_norm", "images_per_s"]
            plot_metrics(out / "metrics.jsonl", out / "curves.png", keys)

    def checkpoint() -> None:
        check_finite(sums, step)  # a graphed run checks here and at each log: keep the last good checkpoint
        if info.is_main:
            save_checkpoint(
                ckpt_path,
                kind=kind,
                config={"model": asdict(mcfg), "train": asdict(cfg)},
                model=model,
                optimizer=optimizer,
                step=step,
                extra={"elapsed_s": elapsed, "epoch": step / per_epoch, "log_sums": sums.cpu(), "log_seen": seen,
                       **({"ema": ema.state_dict(), "ema_decay": ema.decay} if ema is not None else {})},
            )  # fmt: skip

    bar = progress(range(step, total), enabled=cfg.progress and info.is_main, initial=step, total=total, desc="DRAW")
    sums, seen = torch.zeros(3, device=info.device), 0  # running log averages
    if step and "log_sums" in ckpt["extra"]:
        sums, seen = ckpt["extra"]["log_sums"].to(info.device), int(ckpt["extra"]["log_seen"])
    window = (step, elapsed)  # images/s counts this process's training steps and time since the last log
    t_last = synced_clock(info.device)
    epoch_order: list[int] = []
    out_of_time = False
    for _ in [] if cfg.eval_only else bar:
        epoch, pos = divmod(step, per_epoch)
        if pos == 0 or not epoch_order:
            sampler.set_epoch(epoch)
            epoch_order = list(sampler)
            order = torch.tensor(epoch_order, device=train_src.device)  # one host-to-device copy per epoch
        idx = order[pos * local_batch : (pos + 1) * local_batch]
        seed = step_seed(cfg.seed, step, info.rank)  # noise depends on (seed, step, rank) only
        if graphed:
            torch.cuda.manual_seed(seed)  # the replay draws from this state
            inputs.copy_(train_src[idx])
        else:
            torch.manual_seed(seed)
            inputs.copy_(binarize_dynamic(train_x[idx]))
        runner.set_lr(lr_at(cfg, step, total, elapsed))
        model.train()
        sums += runner()
        step += 1
        if ema is not None:
            ema.update(model, step)
        at_log = step % cfg.log_every == 0 or step == total
        now = synced_clock(info.device) if at_log or step % per_epoch == 0 else time.perf_counter()
        elapsed += now - t_last
        t_last = now
        seen += 1
        if at_log:
            check_finite(sums, step)
            avg = (sums / seen).tolist()
            rate = (step - window[0]) * cfg.batch_size / max(elapsed - window[1], 1e-9)  # evaluation excluded
            logger.log(
                step,
                loss=avg[0],
                recon=avg[1],
                kl=avg[0] - avg[1],
                grad_norm=avg[2],
                lr=lr_at(cfg, step, total, elapsed),
                images_per_s=rate,
                epoch=step / per_epoch,
                minutes=elapsed / 60,
            )
            if info.is_main and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{avg[0]:.2f}", img_s=f"{rate:.0f}")
            sums.zero_()
            seen, window = 0, (step, elapsed)
        end_of_epoch = step % per_epoch == 0
        if end_of_epoch and (step // per_epoch) % cfg.eval_every == 0:
            metrics = test_bounds()
            logger.log(step, epoch=step / per_epoch, minutes=elapsed / 60, **metrics)
            plot_curves()
            t_last = time.perf_counter()  # evaluation time is not training time
        if end_of_epoch or step % cfg.ckpt_every == 0 or step == cfg.max_steps:
            checkpoint()
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        if cfg.time_limit_min is not None and elapsed >= 60 * cfg.time_limit_min:
            out_of_time = True
            checkpoint()
            break
    if step >= total or out_of_time or cfg.eval_only:
        show = cfg.progress and info.is_main
        final = test_bounds(iwae_k=cfg.iwae_k, show=show, iwae_images=cfg.iwae_images, elbo_samples=cfg.elbo_samples)
        if info.is_main:
            batch = ckpt["config"]["train"]["batch_size"] if cfg.eval_only else cfg.batch_size  # as trained
            report = {
                **final,
                "iwae_k": cfg.iwae_k,
                "test_images": int(test_x.shape[0]),
                "epochs": step / per_epoch if batch == cfg.batch_size else step / (train_x.shape[0] // batch),
                "steps": step,
                "train_minutes": elapsed / 60,
                "stopped_by_time_limit": out_of_time,
                "batch_size": batch,
                "processes": info.world_size,
                "cuda_graph": graphed,
                "ema_decay": ema.decay if ema is not None else 0.0,
                "model": asdict(mcfg),
                "train": asdict(cfg),
                "machine": machine_info(info.device),
            }
            (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
            shown = model if ema is None else ema.model
            save_grid(
                out / "samples.png", torch.sigmoid(shown.sample(64, info.device)[0][-1, :, 0]).cpu().numpy(), 8, 2
            )
            plot_curves()
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: parse a :class:`TrainConfig` and train."""
    cfg = parse_config(TrainConfig, argv, prog="train_draw")
    try:
        train(cfg)
    except NonFiniteLossError as exc:
        print(f"train_draw: {exc}", file=sys.stderr)
        return 1
    finally:
        cleanup_distributed()
    return 0
