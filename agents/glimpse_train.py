"""Train the recurrent attention model, DRAW's read classifier or a whole-image baseline on (cluttered) MNIST.

Training runs on batched tensors through the retina (:mod:`paintrnn.retina`), not through the Gymnasium
environment, for speed; the environment ``paintrnn/Glimpse-v0`` poses the same task one episode at a time (a
trained RAM plays it with :meth:`paintrnn.agents.glimpse.RAM.predict`). A run folder (:mod:`paintrnn.run`) holds
``config.json``, ``metrics.jsonl``, ``curves.png``, ``checkpoint.pt`` (atomic, written every epoch; a rerun
continues from it exactly, see ``--resume``), ``result.json`` and ``glimpses.gif``. Load the trained classifier
with :func:`paintrnn.agents.glimpse.load_model`.

    paintrnn train glimpse --task mnist --glimpses 7 --glimpse-size 8 --scales 1 --epochs 100
    paintrnn train glimpse --task translated --glimpses 8 --glimpse-size 12 --scales 3 --device cuda
    paintrnn train glimpse --task cluttered60 --glimpses 8 --glimpse-size 12 --scales 3
    paintrnn train glimpse --task cluttered100 --model draw-read --glimpses 8 --read-size 12

The tasks ``cluttered60`` and ``cluttered100`` are the papers' cluttered MNIST (:data:`paintrnn.scenes.CLUTTERED`:
60 x 60 with 4 distractors, 100 x 100 with 8, pieces of other digits that never cover the digit's centre); the
test scenes are fixed by a seed. ``cluttered`` is the older, freer recipe (``--canvas``, ``--clutter``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.draw_read import DrawReader, reading_frames
from paintrnn.agents.glimpse import (
    KIND,
    RAM,
    Rollout,
    WholeImageNet,
    build_classifier,
    episode_frames,
    ram_loss,
    scene_side,
)
from torch import Tensor, nn

from paintrnn.config import parse_config
from paintrnn.data import load_mnist, mnist_description
from paintrnn.media import write_gif
from paintrnn.retina import place_on_canvas
from paintrnn.run import Run, RunConfig, lr_schedule, start_run
from paintrnn.scenes import CLUTTERED, cluttered
from paintrnn.training import plot_metrics


@dataclass(frozen=True)
class Config(RunConfig):
    """Train a glimpse classifier (RAM, Mnih et al. 2014) or a same-budget whole-image baseline."""

    run_dir: str = "runs/glimpse"
    """Run folder: config.json, metrics.jsonl, curves.png, checkpoint.pt, result.json and glimpses.gif."""
    log_every: int = 1
    """Epochs between metric lines (an epoch that evaluates, and the last, are always logged)."""
    checkpoint_every: int = 1
    """Epochs between checkpoints (one is also written at the end)."""
    task: Literal["mnist", "translated", "cluttered", "cluttered60", "cluttered100"] = "mnist"
    """28x28 MNIST, digits at random places on a larger canvas, or the same among clutter; cluttered60 and
    cluttered100 are the papers' cluttered tasks (60x60 with 4 distractors, 100x100 with 8; canvas and clutter
    fixed)."""
    canvas: int = 60
    """Canvas width in pixels for the translated and cluttered tasks."""
    clutter: int = 4
    """Number of 8x8 fragments of other digits scattered on the canvas (cluttered task; 0: none)."""
    model: Literal["ram", "random", "draw-read", "mlp", "cnn"] = "ram"
    """RAM; the same network looking at random places (ablation); DRAW's differentiable read attention as a
    classifier (trained by backprop alone); or a baseline seeing the whole image."""
    glimpses: int = 7
    """Number of glimpses per image (episode length)."""
    glimpse_size: int = 8
    """Width g of the sharpest patch; every patch is resized to g x g."""
    scales: int = 1
    """Number of patches k in a glimpse, each twice as wide as the previous."""
    read_size: int = 12
    """Width N of DRAW's N x N filterbank read (the draw-read model)."""
    start: Literal["centre", "random"] = "centre"
    """Where the first glimpse is taken: the image centre, or a uniformly random place."""
    std: float = 0.11
    """Standard deviation of the Gaussian location policy (locations live in [-1, 1])."""
    locations: Literal["reinforce", "pathwise"] = "reinforce"
    """RAM: how it learns where to look. 'reinforce': sampled locations and REINFORCE (the paper); 'pathwise': the
    policy's mean, read through a glimpse differentiable in its location (bilinear,
    :func:`paintrnn.retina.soft_glimpse`), trained by the classification loss through it. On cluttered MNIST it
    did far worse than REINFORCE (docs/agents/reading.md): its gradient only sees what lies under the patches."""
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
    gif: bool = True
    """Write glimpses.gif (test digits with the glimpse path and the predicted class) at the end."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {
        "eval_every", "test_limit", "gif", "data_dir"
    }  # fmt: skip
    """Also what is evaluated and written besides training, and where the MNIST files lie. Not the time limit:
    it shapes the learning-rate schedule (``--resume force`` extends a budget anyway)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("glimpses", "epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.shift < 0:
            raise ValueError(f"--shift must be >= 0 pixels, got {self.shift}")
        if self.task != "mnist" and self.canvas < 28:
            raise ValueError(f"--canvas must be at least 28 pixels, got {self.canvas}")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise ValueError(f"--time-limit-min must be > 0 minutes, got {self.time_limit_min}")


def build_model(cfg: Config) -> nn.Module:
    """The untrained classifier of ``cfg``: :class:`RAM` or :class:`WholeImageNet`."""
    return build_classifier(asdict(cfg))


def image_side(cfg: Config) -> int:
    """Width of the images the model sees."""
    return scene_side(cfg.task, cfg.canvas)


def make_scenes(
    digits: Tensor,
    cfg: Config,
    generator: torch.Generator,
    train: bool = False,
    pool: Tensor | None = None,
    index: Tensor | None = None,
) -> Tensor:
    """The images the model sees: the digits themselves, or digits placed on a larger canvas (then, for
    training, moved by up to ``cfg.shift`` pixels). The papers' cluttered tasks cut their distractors from other
    digits of ``pool`` (the split's digits; ``index``: the digits' rows of it, never cut from)."""
    if cfg.task in CLUTTERED:
        spec = CLUTTERED[cfg.task]
        digits = cluttered(digits, spec.canvas, spec.clutter, generator, pool, index, spec.fragment)[0]
    elif cfg.task != "mnist":
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
    if isinstance(model, DrawReader):
        return model(images, cfg.glimpses).logits, None
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
        index = torch.arange(i, min(i + batch, len(digits)), device=digits.device)
        images = make_scenes(digits[i : i + batch], cfg, gen, pool=digits, index=index)
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
    frac = epochs_done / cfg.epochs
    if cfg.time_limit_min is not None:
        frac = max(frac, seconds / (60 * cfg.time_limit_min))
    return lr_schedule(frac, cfg.lr, cfg.lr_final)


def train(cfg: Config) -> tuple[nn.Module, dict]:
    """Train (or resume, see ``--resume``); returns the model (eval mode) and the result: what ``result.json``
    holds, plus ``summary_line``, the run's one summary line."""
    with start_run(cfg, kind=KIND) as run:
        if run.info.distributed:
            raise ValueError("the glimpse trainer runs in one process: launch it without torchrun")
        device = run.device
        noise = torch.Generator(device).manual_seed(cfg.seed + 1)  # on the device: canvases, starts, policy noise
        train_x, train_y = load_digits(cfg, "train", device)
        test_x, test_y = load_digits(cfg, "test", device)
        model = build_model(cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        ckpt = run.resume(model, opt)  # restores run.generator: the data order
        if ckpt is not None:
            noise.set_state(ckpt["extra"]["noise_rng"].cpu())
        steps_per_epoch = math.ceil(len(train_x) / cfg.batch_size)
        epochs_done, stopped_early = run.start, False
        bar = run.progress(range(run.start, cfg.epochs), total=cfg.epochs, desc=f"{cfg.model}/{cfg.task}",
                           show=("loss", "err"))  # fmt: skip
        for epoch in bar:
            order = torch.randperm(len(train_x), generator=run.generator).to(device)
            sums = {k: torch.zeros((), device=device) for k in ("loss", "nll", "reward")}  # on device: no syncs
            for i in range(steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, epoch + i / steps_per_epoch, run.elapsed)
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                images = make_scenes(train_x[idx], cfg, noise, train=True, pool=train_x, index=idx)
                labels = train_y[idx]
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
            run.check_finite(sums["loss"], (epoch + 1) * steps_per_epoch)  # once an epoch: no per-step GPU syncs
            epochs_done = epoch + 1
            row = {k: v.item() / steps_per_epoch for k, v in sums.items()}
            row.update(train_err=100.0 * (1 - row["reward"]), lr=opt.param_groups[0]["lr"])
            done = epochs_done == cfg.epochs
            out_of_time = cfg.time_limit_min is not None and run.sync_clock() / 60 >= cfg.time_limit_min
            if epochs_done % cfg.eval_every == 0 or done or out_of_time:
                with run.paused():
                    row["test_err"] = evaluate(model, test_x, test_y, cfg)
            if epochs_done % cfg.log_every == 0 or "test_err" in row or done or out_of_time:
                run.log(epochs_done, **row)  # the bar shows the loss and the errors
            if epochs_done % cfg.checkpoint_every == 0 or done or out_of_time:
                run.save(epochs_done, model, opt, extra={"noise_rng": noise.get_state()})
            if out_of_time and not done:
                stopped_early = True
                break
        bar.close()
        minutes = run.sync_clock() / 60
        with run.paused():
            if run.is_main:
                plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png",
                             ["loss", "nll", "train_err", "test_err", "lr"])  # fmt: skip
            result = finish(model, cfg, run, test_x, test_y, epochs_done, stopped_early, minutes)
        line = run.summary(test_error_pct=result["test_error_pct"], epochs=f"{epochs_done}/{cfg.epochs}",
                           **({"stopped_early": True} if stopped_early else {}))  # fmt: skip
        return model.eval(), {**result, "summary_line": line}


def finish(
    model: nn.Module, cfg: Config, run: Run, test_x: Tensor, test_y: Tensor, epochs_done: int, stopped_early: bool,
    minutes: float,
) -> dict:  # fmt: skip
    """Final test error, ``result.json`` (with the ``minutes`` of training) and the GIF (rank 0 writes them)."""
    test_err = evaluate(model, test_x, test_y, cfg)
    result = {
        "test_error_pct": test_err,
        "epochs_done": epochs_done,
        "epochs_planned": cfg.epochs,
        "stopped_early": stopped_early,
        "train_minutes": minutes,
        "device": str(run.device),
        "device_name": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else "cpu",
        "n_test": len(test_x),
        "data": mnist_description(cfg.data_dir, cfg.data_source),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(cfg),
    }
    if run.is_main:
        (run.dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        if cfg.gif and isinstance(model, RAM | DrawReader):
            write_glimpse_gif(model, cfg, test_x, run.dir / "glimpses.gif")
    return result


@torch.no_grad()
def write_glimpse_gif(model: RAM | DrawReader, cfg: Config, digits: Tensor, path: Path, n: int = 8) -> Path:
    """The first ``n`` test digits with the glimpses (or DRAW's read windows) moving over them and the predicted
    class (distractors come from all of ``digits``)."""
    gen = torch.Generator().manual_seed(4321)
    index = torch.arange(min(n, len(digits)), device=digits.device)
    images = make_scenes(digits[:n], cfg, gen, pool=digits, index=index)
    model.eval()
    scale = 4 if image_side(cfg) <= 32 else 2
    if isinstance(model, DrawReader):
        reading = model(images, cfg.glimpses)
        frames = reading_frames(images, reading.windows, reading.logits.argmax(-1), cfg.read_size, scale)
    else:
        start = start_locations(len(images), cfg, gen, images.device)
        out = model(images, cfg.glimpses, start, gen, deterministic=True, random_locations=cfg.model == "random")
        frames = episode_frames(images, out.locations, out.logits.argmax(-1), cfg.glimpse_size, cfg.scales, scale)
    model.train()
    return write_gif(path, frames, duration_ms=500, hold_last_ms=1500)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``paintrnn train glimpse --help``. Prints the run's summary line; returns 0."""
    cfg = parse_config(Config, argv, prog="paintrnn train glimpse")
    _, result = train(cfg)
    print(result["summary_line"])
    return 0
