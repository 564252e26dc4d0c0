"""Train the digit classifier of :mod:`paintrnn.metrics` on MNIST and export it with the test set's feature statistics.

Adam on the cross-entropy, batches drawn from a fresh permutation of the training digits each epoch, every
digit shifted by up to ``--shift`` pixels (so that off-centre samples of a generator are still read as digits)
and, with ``--augment``, rendered differently (:func:`restyle`: blurred, sharpened, thickened or thinned, dimmed),
so that the features, and the Fréchet distance in them, follow the shape of a digit more than the pen that drew
it (a stroke renderer's edges are not MNIST's); a cosine learning-rate decay; test accuracy at every log. The
loop counts optimiser steps (``--log-every``, ``--checkpoint-every``); ``--epochs`` sets its length. A rerun
resumes exactly (``--resume``).
``--export PATH`` writes, at the end, the small inference checkpoint that :mod:`paintrnn.metrics` loads:
weights, config and the mean and covariance of the 10,000 test digits' features (no optimiser)::

    python -m paintrnn.agents.digit_classifier_train --data-dir /path/to/data --run-dir runs/digit-classifier \
        --export paintrnn/assets/checkpoints/digit-classifier.pt
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from paintrnn.config import parse_config
from paintrnn.data import load_mnist
from paintrnn.metrics import KIND, ClassifierSpec, DigitClassifier, classify
from paintrnn.run import RunConfig, RunLockedError, lr_schedule, start_run
from paintrnn.training import CheckpointError, NonFiniteLossError, export_weights, save_checkpoint


@dataclass(frozen=True)
class ClassifierTrainConfig(RunConfig):
    """Train the MNIST digit classifier whose features measure sample quality (paintrnn.metrics)."""

    run_dir: str = "runs/digit-classifier"
    log_every: int = 200
    checkpoint_every: int = 500
    data_dir: str | None = None
    """Folder holding MNIST (default: $PAINTRNN_DATA or the cache)."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """MNIST files to use: full, the bundled sample, or full when present (auto)."""
    epochs: int = 4
    """Passes over the training digits."""
    batch_size: int = 128
    """Digits per optimiser step."""
    lr: float = 2e-3
    """Adam peak learning rate (cosine decay to a twentieth)."""
    shift: int = 2
    """Random translation of each training digit, up to this many pixels in x and y (0: none)."""
    augment: bool = True
    """Restyle training digits at random (blur, sharpen, thicken, thin, dim): features of shape, not of the pen."""
    width: int = 32
    """Channels of the first convolution."""
    features: int = 128
    """Size of the feature layer."""
    eval_size: int = 10000
    """Test digits scored at each log."""
    export: str | None = None
    """Write the inference checkpoint with the test features' statistics here at the end."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {"data_dir", "eval_size", "export"}

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epochs", "batch_size", "width", "features", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.shift <= 8:
            raise ValueError(f"--shift must be in 0..8, got {self.shift}")

    def spec(self) -> ClassifierSpec:
        return ClassifierSpec(width=self.width, features=self.features)


def mnist_tensors(split: str, cfg: ClassifierTrainConfig) -> tuple[Tensor, Tensor]:
    """MNIST ``split`` as float images ``(N, 1, 28, 28)`` in [0, 1] and labels ``(N,)``."""
    images, labels = load_mnist(split, cfg.data_dir, source=cfg.data_source)  # type: ignore[arg-type]
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255)[:, None]
    return x, torch.from_numpy(labels)


def shifted(images: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Each ``(B, 1, H, W)`` image translated by its own random ``(dx, dy)`` in ``[-shift, shift]`` (zero fill)."""
    if shift == 0:
        return images
    B, _, H, W = images.shape
    padded = F.pad(images, (shift,) * 4)
    d = torch.randint(0, 2 * shift + 1, (B, 2), generator=generator)
    rows = (d[:, 1:2] + torch.arange(H)).to(images.device)  # (B, H)
    cols = (d[:, 0:1] + torch.arange(W)).to(images.device)  # (B, W)
    b = torch.arange(B, device=images.device)[:, None, None]
    return padded[b, 0, rows[:, :, None], cols[:, None, :]][:, None]


def _blur(images: Tensor, sigma: float) -> Tensor:
    """``(B, 1, H, W)`` images under a Gaussian blur of ``sigma`` px (5 x 5 kernel)."""
    g = torch.exp(-(torch.arange(-2.0, 3.0) ** 2) / (2 * sigma**2))
    k = (g / g.sum()).to(images)
    return F.conv2d(F.conv2d(images, k.view(1, 1, 1, 5), padding=(0, 2)), k.view(1, 1, 5, 1), padding=(2, 0))


def restyle(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each ``(B, 1, H, W)`` digit in [0, 1] drawn with another pen, chosen at random: kept as it is (a third), blurred
    (Gaussian, sigma 0.5-1.2 px), sharpened (contrast about 0.5 raised 2-4x), thickened (3 x 3 max of a half-blurred
    copy) or thinned (3 x 3 min likewise); then a third are dimmed to 60-100% brightness."""
    B = len(images)
    r = torch.rand(B, 4, generator=generator).to(images.device)  # (choice, strength, dim?, dim level)
    choice = (r[:, 0] * 6).long().clamp(max=5)[:, None, None, None]  # 0, 1: keep; 2 blur; 3 sharpen; 4 thick; 5 thin
    s = r[:, 1, None, None, None]
    soft = _blur(images, 0.6)
    styles = [
        images,
        images,
        torch.lerp(_blur(images, 0.5), _blur(images, 1.2), s),
        ((images - 0.5) * (2 + 2 * s) + 0.5).clamp(0, 1),
        F.max_pool2d(soft, 3, 1, 1),
        -F.max_pool2d(-soft, 3, 1, 1),
    ]
    out = torch.stack(styles)[choice.view(-1), torch.arange(B)]  # (B, 1, H, W)
    dim = torch.where(r[:, 2] < 1 / 3, 0.6 + 0.4 * r[:, 3], torch.ones_like(r[:, 3]))[:, None, None, None]
    return (out * dim).clamp(0, 1)


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor) -> float:
    model.eval()
    correct = sum(int((model(images[i : i + 1000]).argmax(-1) == labels[i : i + 1000]).sum())
                  for i in range(0, len(images), 1000))  # fmt: skip
    model.train()
    return correct / len(images)


def export_classifier(model: DigitClassifier, test: Tensor, dst: str | Path, step: int, info: dict) -> dict:
    """Store the test features' statistics in ``model`` and write its inference checkpoint to ``dst``."""
    model.eval()
    feats, _ = classify(test, model)
    model.set_reference(feats)
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "checkpoint.pt"
        save_checkpoint(full, kind=KIND, config=model.spec, model=model, step=step, extra=info)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        return export_weights(full, dst, half=False)


def train(cfg: ClassifierTrainConfig) -> DigitClassifier:
    """Train (or resume) the classifier; returns it (and exports it when ``cfg.export`` says where)."""
    with start_run(cfg, kind=KIND) as run:
        model = DigitClassifier(cfg.spec()).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        run.resume(model, opt)
        train_x, train_y = mnist_tensors("train", cfg)
        test_x, test_y = mnist_tensors("test", cfg)
        test_x, test_y = test_x[: cfg.eval_size].to(run.device), test_y[: cfg.eval_size].to(run.device)
        per_epoch = -(-len(train_x) // cfg.batch_size)
        total = cfg.epochs * per_epoch
        row: dict[str, float] = {}
        running: list[float] = []
        order = None
        for it in run.progress(range(run.start, total), total=total, desc="digit classifier"):
            epoch, i = divmod(it, per_epoch)
            if order is None or i == 0:  # the epoch's permutation, from the seed alone (exact on resume)
                order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(cfg.seed * 1009 + epoch))
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = shifted(train_x[idx], cfg.shift, gen).to(run.device)  # (B, 1, 28, 28)
            if cfg.augment:
                x = restyle(x, gen)
            y = train_y[idx].to(run.device)
            opt.param_groups[0]["lr"] = lr_schedule(it / total, cfg.lr, cfg.lr / 20)
            loss = F.cross_entropy(model(x), y)
            run.check_finite(loss, it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(loss.item())
            done = it + 1
            if done % cfg.log_every == 0 or done == total:
                with run.paused():
                    acc = accuracy(model, test_x, test_y)
                row = {"loss": float(np.mean(running)), "test_accuracy": acc, "epoch": done / per_epoch}
                running = []
                run.log(done, **row)
            if done % cfg.checkpoint_every == 0 or done == total:
                run.save(done, model, opt)
        if cfg.export and run.is_main:
            with run.paused():
                acc = accuracy(model, test_x, test_y)
                info = {"test_accuracy": acc, "trained_steps": max(run.start, total), "train_minutes": run.elapsed / 60,
                        "train_config": dataclasses.asdict(cfg)}  # fmt: skip
                export_classifier(model, test_x, cfg.export, max(run.start, total), info)
            print(f"digit classifier: exported to {cfg.export} (test accuracy {acc:.4f})")
        if run.is_main:
            print(run.summary(**{k: v for k, v in row.items() if k != "epoch"}))
        return model.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paintrnn.agents.digit_classifier_train [options]``: 0 when done, 1 with a one-line message when
    the run folder cannot be resumed or the loss turned NaN."""
    cfg = parse_config(ClassifierTrainConfig, argv, prog="paintrnn train classifier")
    try:
        train(cfg)
    except (NonFiniteLossError, CheckpointError, RunLockedError) as exc:
        print(f"digit_classifier_train: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
