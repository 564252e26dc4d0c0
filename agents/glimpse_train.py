"""Train the recurrent attention model (or a whole-image baseline) on MNIST or translated/cluttered MNIST.

Training runs on batched tensors through the retina (:mod:`paintrnn.retina`), not through the Gymnasium
environment, for speed; the environment ``paintrnn/Glimpse-v0`` poses the same task one episode at a time.
A run folder holds ``config.json``, ``metrics.jsonl``, ``curves.png``, ``checkpoint.pt`` (atomic, written
every epoch; a rerun with the same folder resumes from it), ``result.json`` and ``glimpses.gif``.

    python scripts/train_glimpse.py --task mnist --glimpses 7 --glimpse-size 8 --scales 1 --epochs 100
    python scripts/train_glimpse.py --task translated --glimpses 8 --glimpse-size 12 --scales 3 --device cuda
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.glimpse import RAM, Rollout, episode_frames, ram_loss
from torch import Tensor, nn
from tqdm.auto import tqdm

from paintrnn.config import parse_config
from paintrnn.data import load_mnist
from paintrnn.media import write_gif
from paintrnn.retina import place_on_canvas
from paintrnn.training import (
    MetricsLogger,
    check_finite,
    load_checkpoint,
    plot_metrics,
    resolve_device,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    write_config,
)

CHECKPOINT_KIND = "glimpse"


@dataclass(frozen=True)
class Config:
    """Train a glimpse classifier (RAM, Mnih et al. 2014) or a same-budget whole-image baseline."""

    task: Literal["mnist", "translated", "cluttered"] = "mnist"
    """28x28 MNIST, digits at random places on a larger canvas, or the same among clutter."""
    canvas: int = 60
    """Canvas width in pixels for the translated and cluttered tasks."""
    clutter: int = 4
    """Number of 8x8 fragments of other digits scattered on the canvas (cluttered task)."""
    model: Literal["ram", "random", "mlp", "cnn"] = "ram"
    """RAM; the same network looking at random places (ablation); or a baseline seeing the whole image."""
    glimpses: int = 7
    """Number of glimpses per image (episode length)."""
    glimpse_size: int = 8
    """Width g of the sharpest patch; every patch is resized to g x g."""
    scales: int = 1
    """Number of patches k in a glimpse, each twice as wide as the previous."""
    start: Literal["centre", "random"] = "centre"
    """Where the first glimpse is taken: the image centre, or a uniformly random place."""
    std: float = 0.11
    """Standard deviation of the Gaussian location policy (locations live in [-1, 1])."""
    shift: int = 0
    """Training augmentation: each training image is moved by a random offset of up to +-shift pixels (zeros fill
    in) every time it is drawn. 0 = none, as in the paper; the test images are never moved."""
    hidden: int = 256
    """Units in the LSTM core (and the hidden layers of the MLP baseline)."""
    epochs: int = 100
    """Passes over the 60000 training digits (the training budget)."""
    batch_size: int = 128
    """Images per gradient step."""
    lr: float = 1e-3
    """Adam learning rate at the start; it follows a cosine schedule down to lr_final."""
    lr_final: float = 1e-5
    """Learning rate at the end of the last epoch."""
    grad_clip: float = 5.0
    """Clip the global gradient norm to this value."""
    train_limit: int | None = None
    """Use only the first N training digits (quick runs and tests)."""
    test_limit: int | None = None
    """Evaluate on only the first N test digits (quick runs and tests)."""
    eval_every: int = 5
    """Evaluate the test error every N epochs (for the curves; no model selection is done)."""
    time_limit_min: float | None = None
    """A training budget in minutes: the learning-rate schedule then runs over whichever of epochs and time ends
    first, and training stops after the first epoch past the limit (the result records it). None = epochs only."""
    data_dir: str | None = None
    """Folder with the MNIST files (default: $PAINTRNN_DATA or the per-user cache)."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """Full MNIST, the small bundled sample, or the full files when present."""
    run_dir: str = "runs/glimpse"
    """Run folder (config, metrics, curves, checkpoint, result, GIF). An existing checkpoint is resumed."""
    seed: int = 0
    """Seed for weights, data order, canvases and the policy's noise."""
    device: str = "auto"
    """cpu, cuda or auto."""
    progress: bool = True
    """Show a progress bar."""
    gif: bool = True
    """Write glimpses.gif (test digits with the glimpse path and the predicted class) at the end."""


class WholeImageNet(nn.Module):
    """Baselines that see the whole image: a 2-hidden-layer MLP or a small CNN."""

    def __init__(self, kind: Literal["mlp", "cnn"], side: int, hidden: int = 256, n_classes: int = 10) -> None:
        super().__init__()
        if kind == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            feat = hidden
        else:
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * (side // 4) ** 2, hidden), nn.ReLU(),
            )  # fmt: skip
            feat = hidden
        self.head = nn.Linear(feat, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.net(images))  # (B, n_classes)


def build_model(cfg: Config) -> nn.Module:
    if cfg.model in ("mlp", "cnn"):
        return WholeImageNet(cfg.model, image_side(cfg), cfg.hidden)
    return RAM(cfg.glimpse_size, cfg.scales, hidden=cfg.hidden, std=cfg.std)


def image_side(cfg: Config) -> int:
    return 28 if cfg.task == "mnist" else cfg.canvas


def make_scenes(digits: Tensor, cfg: Config, generator: torch.Generator, train: bool = False) -> Tensor:
    """The images the model sees: the digits themselves, or digits placed on a larger canvas (then, for
    training, moved by up to ``cfg.shift`` pixels)."""
    if cfg.task != "mnist":
        digits = place_on_canvas(digits, cfg.canvas, cfg.clutter if cfg.task == "cluttered" else 0, 8, generator)[0]
    return shift_images(digits, cfg.shift, generator) if train and cfg.shift > 0 else digits


def shift_images(images: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Move each image ``(B, 1, H, W)`` by a random whole-pixel offset in ``[-shift, shift]^2``; zeros fill in."""
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (shift, shift, shift, shift))  # (B, 1, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * shift + 1, (2, b), generator=generator, device=generator.device).to(device)
    rows = offsets[0][:, None, None] + torch.arange(h, device=device)[:, None]  # (B, H, 1)
    cols = offsets[1][:, None, None] + torch.arange(w, device=device)  # (B, 1, W)
    return padded[torch.arange(b, device=device)[:, None, None], 0, rows, cols][:, None]  # (B, 1, H, W)


def start_locations(batch: int, cfg: Config, generator: torch.Generator, device: torch.device) -> Tensor:
    if cfg.start == "centre":
        return torch.zeros(batch, 2, device=device)
    return (torch.rand(batch, 2, generator=generator, device=generator.device) * 2 - 1).to(device)


def run_model(
    model: nn.Module, images: Tensor, cfg: Config, generator: torch.Generator, deterministic: bool = False
) -> tuple[Tensor, Rollout | None]:
    """Class logits for one batch of images (any model kind), and the glimpse rollout for RAM models."""
    if isinstance(model, WholeImageNet):
        return model(images), None
    start = start_locations(images.shape[0], cfg, generator, images.device)
    out = model(images, cfg.glimpses, start, generator, deterministic, random_locations=cfg.model == "random")
    return out.logits, out


@torch.no_grad()
def evaluate(
    model: nn.Module, digits: Tensor, labels: Tensor, cfg: Config, seed: int = 1234, batch: int = 1000
) -> float:
    """Test error in percent: fixed canvases and start locations (from ``seed``), the policy's mean path."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    wrong = 0
    for i in range(0, len(digits), batch):
        images = make_scenes(digits[i : i + batch], cfg, gen)
        logits, _ = run_model(model, images, cfg, gen, deterministic=True)
        wrong += int((logits.argmax(-1) != labels[i : i + batch]).sum())
    model.train()
    return 100.0 * wrong / len(digits)


def load_digits(cfg: Config, split: str, device: torch.device) -> tuple[Tensor, Tensor]:
    images, labels = load_mnist(split, cfg.data_dir, source=cfg.data_source)
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None].to(device)  # (N, 1, 28, 28)
    return x, torch.from_numpy(labels).to(device)


def lr_at(cfg: Config, epochs_done: float, seconds: float) -> float:
    """Cosine schedule from ``lr`` to ``lr_final`` over the budget (epochs, or the time limit when it ends first)."""
    progress_frac = epochs_done / cfg.epochs
    if cfg.time_limit_min is not None:
        progress_frac = max(progress_frac, seconds / (60 * cfg.time_limit_min))
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * min(progress_frac, 1.0)))


def train(cfg: Config) -> dict:
    """Train (resuming from ``run_dir/checkpoint.pt`` when present); returns the result dict."""
    if cfg.glimpses < 1 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError("glimpses, epochs and batch_size must be >= 1")
    if cfg.shift < 0:
        raise ValueError(f"shift must be >= 0 pixels, got {cfg.shift}")
    if cfg.task != "mnist" and cfg.canvas < 28:
        raise ValueError(f"canvas must be at least 28 pixels, got {cfg.canvas}")
    device = resolve_device(cfg.device)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(cfg.seed)  # CPU: data order
    noise = torch.Generator(device).manual_seed(cfg.seed + 1)  # on the device: canvases, starts, policy noise
    train_x, train_y = load_digits(cfg, "train", device)
    test_x, test_y = load_digits(cfg, "test", device)
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    epoch, elapsed = 0, 0.0
    ckpt_path = run / "checkpoint.pt"
    if ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, map_location=device, kind=CHECKPOINT_KIND)
        if ckpt["config"]["model"] != cfg.model or ckpt["config"]["task"] != cfg.task:
            raise ValueError(f"{ckpt_path} holds another run ({ckpt['config']['model']}, {ckpt['config']['task']})")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        epoch, elapsed = ckpt["step"], ckpt["extra"]["elapsed_s"]
        set_rng_state(ckpt["rng"], generator)
        noise.set_state(ckpt["extra"]["noise_rng"].cpu())
    write_config(run / "config.json", cfg)
    logger = MetricsLogger(run / "metrics.jsonl", resume_step=epoch if epoch else None)
    steps_per_epoch = math.ceil(len(train_x) / cfg.batch_size)
    stopped_early = False
    bar = tqdm(range(epoch, cfg.epochs), disable=not cfg.progress, desc=f"{cfg.model}/{cfg.task}", initial=epoch,
               total=cfg.epochs, dynamic_ncols=True)  # fmt: skip
    for epoch in bar:
        t0 = time.time()
        order = torch.randperm(len(train_x), generator=generator).to(device)
        sums = {k: torch.zeros((), device=device) for k in ("loss", "nll", "reward")}  # summed on device: no syncs
        for i in range(steps_per_epoch):
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch + i / steps_per_epoch, elapsed + time.time() - t0)
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            images, labels = make_scenes(train_x[idx], cfg, noise, train=True), train_y[idx]
            logits, rollout = run_model(model, images, cfg, noise)
            if rollout is None:
                loss = F.cross_entropy(logits, labels)
                logs = {"nll": loss.detach(), "reward": (logits.argmax(-1) == labels).float().mean()}
            else:
                loss, logs = ram_loss(rollout, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sums["loss"] += loss.detach()
            sums["nll"] += logs["nll"]
            sums["reward"] += logs["reward"]
        check_finite(sums["loss"], (epoch + 1) * steps_per_epoch)  # once an epoch: no per-step GPU syncs
        elapsed += time.time() - t0
        row = {k: v.item() / steps_per_epoch for k, v in sums.items()}
        row["train_err"] = 100.0 * (1 - row["reward"])
        row.update(lr=opt.param_groups[0]["lr"], minutes=elapsed / 60)
        done = epoch + 1 == cfg.epochs
        out_of_time = cfg.time_limit_min is not None and elapsed / 60 >= cfg.time_limit_min
        if (epoch + 1) % cfg.eval_every == 0 or done or out_of_time:
            row["test_err"] = evaluate(model, test_x, test_y, cfg)
        logger.log(epoch + 1, **row)
        bar.set_postfix(train_err=f"{row['train_err']:.2f}", test_err=row.get("test_err", float("nan")))
        save_checkpoint(ckpt_path, kind=CHECKPOINT_KIND, config=cfg, model=model, optimizer=opt, step=epoch + 1,
                        generator=generator, extra={"elapsed_s": elapsed, "noise_rng": noise.get_state()})  # fmt: skip
        if out_of_time and not done:
            stopped_early = True
            break
    plot_metrics(run / "metrics.jsonl", run / "curves.png", ["loss", "nll", "train_err", "test_err", "lr"])
    result = finish(model, cfg, run, test_x, test_y, device, elapsed, stopped_early)
    return result


def finish(
    model: nn.Module, cfg: Config, run: Path, test_x: Tensor, test_y: Tensor, device: torch.device, elapsed: float,
    stopped_early: bool,
) -> dict:  # fmt: skip
    """Final test error, ``result.json`` and the GIF."""
    ckpt = load_checkpoint(run / "checkpoint.pt", map_location=device, kind=CHECKPOINT_KIND)
    test_err = evaluate(model, test_x, test_y, cfg)
    result = {
        "test_error_pct": test_err,
        "epochs_done": ckpt["step"],
        "epochs_planned": cfg.epochs,
        "stopped_early": stopped_early,
        "train_minutes": elapsed / 60,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "n_test": len(test_x),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(cfg),
    }
    (run / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    if cfg.gif and isinstance(model, RAM):
        write_glimpse_gif(model, cfg, test_x[:8], run / "glimpses.gif")
    return result


@torch.no_grad()
def write_glimpse_gif(model: RAM, cfg: Config, digits: Tensor, path: Path) -> Path:
    """Test digits with the glimpses moving over them and the predicted class."""
    gen = torch.Generator().manual_seed(4321)
    images = make_scenes(digits, cfg, gen)
    model.eval()
    start = start_locations(len(images), cfg, gen, images.device)
    out = model(images, cfg.glimpses, start, gen, deterministic=True, random_locations=cfg.model == "random")
    model.train()
    scale = 4 if image_side(cfg) <= 32 else 2
    frames = episode_frames(images, out.locations, out.logits.argmax(-1), cfg.glimpse_size, cfg.scales, scale)
    return write_gif(path, frames, duration_ms=500, hold_last_ms=1500)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(Config, argv, prog="train_glimpse")
    result = train(cfg)
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    return result
