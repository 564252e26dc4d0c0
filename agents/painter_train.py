"""``paintrnn train painter``: one command line for the painter's four training modes, and the pieces they share.

    paintrnn train painter backprop [options]   # differentiate through the soft renderer
    paintrnn train painter ppo [options]        # PPO on the native vector env (l2_delta)
    paintrnn train painter ddpg [options]       # model-based DDPG, the renderer as the model (l2_delta)
    paintrnn train painter gan [options]        # unconditional doodling, discriminator reward

``paintrnn train painter MODE --help`` lists each mode's options (its config dataclass). Every mode
trains inside :func:`paintrnn.run.start_run`: the run options come first, ``--iters`` is the training length
(optimiser steps or PPO iterations), ``--steps`` the episode length, and a run folder resumes by ``--resume``
(a mode never resumes another mode's checkpoint: each writes its own kind, see
:data:`paintrnn.agents.painter.KINDS`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from paintrnn.agents.painter import Painter, evaluate_mse, prepare_images
from torch import nn

from paintrnn.config import parse_config
from paintrnn.data import load_mnist, mnist_description
from paintrnn.run import Run, RunConfig, RunLockedError
from paintrnn.training import CheckpointError, NonFiniteLossError, keep_freed_memory, plot_metrics

MODES = {
    "backprop": ("paintrnn.agents.painter_backprop", "BackpropConfig", "train_backprop"),
    "ppo": ("paintrnn.agents.painter_ppo", "PPOConfig", "train_ppo"),
    "ddpg": ("paintrnn.agents.painter_ddpg", "DDPGConfig", "train_ddpg"),
    "gan": ("paintrnn.agents.painter_gan", "GANConfig", "train_gan"),
    "gan-backprop": ("paintrnn.agents.doodle_train", "DoodleConfig", "train_doodle"),
}
"""Mode -> (module, config class, train function)."""


@dataclass(frozen=True)
class PainterRunConfig(RunConfig):
    """Options of every painter training mode (after the run options); each mode adds its own."""

    data_dir: str | None = None
    """Folder holding MNIST (default: $PAINTRNN_DATA or the cache; the bundled sample when absent)."""
    canvas_size: int = 32
    """Side of the training canvas (strokes re-render at any size; evaluation is at 64 px)."""
    strokes_per_step: int = 5
    """k: strokes per step (the action bundle)."""
    steps: int = 2
    """Steps per episode (total strokes = steps * strokes_per_step)."""
    hidden: int = 256
    """LSTM state size."""
    width: int = 32
    """Channels of the encoder's first convolution."""
    iters: int = 3000
    """Training iterations: optimiser steps (backprop), rollouts and updates (PPO, GAN), act-and-update (DDPG)."""
    eval_size: int = 256
    """MNIST test digits evaluated (deterministic policy, 64 px hard renderer) at each log."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {"data_dir", "eval_size"}
    """A resumed run may find its data elsewhere and evaluate on more or fewer digits; training longer (another
    ``--iters``, which stretches the schedule) needs ``--resume force``, as in every trainer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("canvas_size", "strokes_per_step", "steps", "hidden", "width", "iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")

    @staticmethod
    def quick() -> dict[str, Any]:
        """Overrides for a smoke run of a few seconds (tests, ``benchmark --quick``); modes add theirs."""
        return dict(iters=4, hidden=32, width=8, eval_size=16, log_every=2, checkpoint_every=2, progress=False)


def due(done: int, every: int, total: int) -> bool:
    """Whether iteration ``done`` (counted from 1) is one of every ``every``th, or the last of ``total``."""
    return done % every == 0 or done == total


def mnist_digits(split: str, data_dir: str | None, source: str = "auto", n: int | None = None) -> torch.Tensor:
    """The first ``n`` (all when None) MNIST digits of ``split`` as a uint8 ``(N, 1, 28, 28)`` tensor."""
    images, _ = load_mnist(split, data_dir, source=source)  # type: ignore[arg-type]
    return torch.from_numpy(np.ascontiguousarray(images[:n]))[:, None]


def eval_metrics(
    painter: Painter,
    digits: torch.Tensor,
    cfg: PainterRunConfig,
    size: int = 64,
    canvases: torch.Tensor | None = None,
) -> dict[str, float]:
    """``test_mse_N``: the test targets' MSE after every whole step of ``N`` strokes (``size`` px, hard renderer),
    painted on black or on ``canvases`` ``(N, C, size, size)``, whose own MSE is then ``test_mse_0``."""
    k = cfg.strokes_per_step
    mse = evaluate_mse(painter, digits, cfg.steps * k, size=size, canvases=canvases)
    row = {f"test_mse_{n}": mse[n - 1] for n in range(k, len(mse) + 1, k)}
    if canvases is not None:
        target = prepare_images(digits, painter.spec.channels, size)
        row = {"test_mse_0": float(((canvases - target) ** 2).mean()), **row}
    return row


def save_painter(
    run: Run,
    step: int,
    painter: Painter,
    optimizer: torch.optim.Optimizer,
    mode: str,
    extra: dict[str, Any] | None = None,
    modules: dict[str, nn.Module] | None = None,
) -> None:
    """Checkpoint through ``run.save`` with what :func:`~paintrnn.agents.painter.load_model` needs beside the
    weights (the painter's spec and mode) and the mode's ``extra`` state, then redraw the curves."""
    info = {"spec": dataclasses.asdict(painter.spec), "mode": mode}
    run.save(step, painter, optimizer, extra={**info, **(extra or {})}, modules=modules)
    if run.is_main:
        with run.paused():
            plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png")


def data_used(cfg: PainterRunConfig, mode: str) -> str | None:
    """The MNIST a run reads (:func:`~paintrnn.data.mnist_description`), or None when it paints no digits."""
    target = getattr(cfg, "targets", None) or getattr(cfg, "target", "")
    if not (target.startswith("mnist") or mode == "gan"):
        return None
    return mnist_description(cfg.data_dir, getattr(cfg, "data_source", "auto"))


def finish(run: Run, painter: Painter, mode: str, cfg: PainterRunConfig, **result: Any) -> Painter:
    """End a run: the painter learns where it came from (as :func:`load_model` would tell it), and rank 0
    prints the run's summary line with ``result`` (the final metrics) and the MNIST it read (``data``)."""
    painter.mode, painter.train_config = mode, dataclasses.asdict(cfg)
    painter.trained_iters = max(run.start, cfg.iters)
    data = data_used(cfg, mode)
    if run.is_main:
        print(run.summary(iters=painter.trained_iters, **result, **({"data": data} if data else {})))
    return painter


def main(argv: Sequence[str] | None = None) -> int:
    """``paintrnn train painter MODE [options]``: 0 when training ends; 1, with a one-line message, when the loss turned
    NaN or inf, or the run folder cannot be resumed (other settings, another mode) or is in use."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODES:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"paintrnn train painter: choose a mode: {', '.join(MODES)}", file=sys.stderr)
            return 2
        return 0
    mode, rest = argv[0], argv[1:]
    module_name, config_name, train_name = MODES[mode]
    module = importlib.import_module(module_name)
    cfg = parse_config(getattr(module, config_name), rest, prog=f"paintrnn train painter {mode}")
    keep_freed_memory()  # the renderer's large per-step tensors would be re-faulted page by page otherwise
    try:
        getattr(module, train_name)(cfg)
    except (NonFiniteLossError, CheckpointError, RunLockedError) as exc:
        print(f"train_painter {mode}: {exc}", file=sys.stderr)
        return 1
    return 0
