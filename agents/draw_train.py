"""Train and evaluate DRAW on binarised MNIST: ``paintrnn train draw --preset fast --epochs 10``.

Training images are binarised afresh at every use (dynamic binarisation); the test set is binarised once
with a fixed seed (this is *not* the Larochelle fixed binarisation the paper used, so numbers are close to,
not identical with, its 80.97 nats). A run folder (``--run-dir``) holds ``config.json``, ``metrics.jsonl``
(training losses every ``log_every`` steps, test bounds every epoch), ``curves.png``, ``checkpoint.pt``
(atomic, resumable: a killed run restarted with the same command continues exactly; see ``--resume``),
``samples.png`` and, at the end, ``eval.json`` with the test negative ELBO and the importance-weighted bound
(on as many test digits as fits a quarter of the training's compute, ``--final-eval scaled``; all of them, as
in the paper, with ``--final-eval paper``). ``--eval-only`` scores the folder's checkpoint without training.

Runs under ``torchrun --nproc-per-node N`` (DDP; gloo on CPU, NCCL on GPU) with a ``DistributedSampler``;
only rank 0 writes files. On one GPU each training step is replayed as a CUDA graph (``--cuda-graph``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

import torch
from paintrnn.agents.draw import DRAW, PRESETS, DrawConfig, StepFn, preset
from paintrnn.agents.draw_eval import evaluate
from paintrnn.agents.vae import VAE, VAEConfig
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from paintrnn.config import config_from_dict, parse_config
from paintrnn.data import binarize_dynamic, binarize_fixed, load_mnist, mnist_description
from paintrnn.graphs import GraphedStep, prepare_optimizer
from paintrnn.media import save_grid
from paintrnn.run import Run, RunConfig, lr_schedule, start_run
from paintrnn.training import (
    EMA,
    CheckpointError,
    NonFiniteLossError,
    check_finite,
    load_checkpoint,
    machine_info,
    plot_metrics,
)

CHECKPOINT_KIND = "draw"


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Train DRAW on binarised MNIST (negative ELBO in nats per image, Adam, gradient clipping)."""

    run_dir: str = "runs/draw"
    """Run folder: config.json, metrics.jsonl, curves.png, checkpoint.pt, samples.png and eval.json."""
    threads: int = 0
    """torch CPU threads (0 = torch's default, DRAW's default as before; 1 is fastest on a CPU shared with others)."""
    log_every: int = 50
    """Optimiser steps between training metric lines (test bounds come every --eval-every epochs)."""
    checkpoint_every: int = 500
    """Optimiser steps between checkpoints (one is also written at each epoch end)."""
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
    """Compute the IWAE bound on the first N test images (it costs k + 1 forward passes each); None: as
    --final-eval says."""
    final_eval: Literal["scaled", "paper"] = "scaled"
    """Size of the final IWAE evaluation when --iwae-images is not given. scaled: scaled to the run, about a quarter
    of its training compute (0.75 x images trained / (k + 1) test digits, at least 100); a run of about 11 epochs
    or more gets all of them. paper: every test digit, as the paper and docs/results/draw.json report."""
    elbo_samples: int = 1
    """Posterior draws per test image averaged in the final -ELBO (one draw is unbiased but noisy, ~0.06 nats on
    the paper configuration; more draws shrink the noise, reported as test_nelbo_mc_se)."""
    eval_every: int = 1
    """Evaluate the test negative ELBO every this many epochs."""
    max_iters: int | None = None
    """Stop (with a checkpoint) after this many optimiser steps in total."""
    time_limit_min: float | None = None
    """Stop after this many minutes of training (evaluation excluded) and evaluate: a fixed time budget."""
    decay_by_time: bool = False
    """Decay the learning rate over --time-limit-min when that ends first (a fixed time budget; a resumed run
    then no longer repeats the uninterrupted one exactly, as the schedule depends on measured time)."""
    eval_only: bool = False
    """Do not train: evaluate the run folder's checkpoint (test ELBO, IWAE) and write eval.json."""
    vae: bool = False
    """Train the plain VAE baseline with the model's latent budget (steps x z_size) instead of DRAW."""
    vae_hidden: int = 500
    """Hidden units per layer of the baseline VAE."""
    compile: bool = False
    """torch.compile the step function (falls back to eager if compilation fails)."""
    cuda_graph: bool = True
    """On a GPU (one process), replay each whole training step as a CUDA graph: T=64 launches thousands of
    tiny kernels per step, and the graph removes their launch cost. Training images are then binarised on
    the GPU, so the noise differs from an eager run (a resumed run still repeats an uninterrupted one)."""
    eval_batch: int = 500
    """Test images per evaluation batch (rows per forward pass for the IWAE bound)."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {
        "data_dir", "test_images", "iwae_k", "iwae_images", "final_eval", "elbo_samples", "eval_every", "eval_batch",
        "max_iters", "time_limit_min", "eval_only", "compile", "cuda_graph",
    }  # fmt: skip
    """Where the data lives, what is evaluated when, where a run stops, and how the step is executed."""
    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {**RunConfig.DEPRECATED_FLAGS, "--max-steps": "--max-iters"}
    """``--out``, ``--ckpt-every``, ``--no-resume`` (every trainer's) and ``--max-steps``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        for name in ("epochs", "batch_size", "eval_every", "eval_batch", "elbo_samples"):
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

    @property
    def kind(self) -> str:
        """Checkpoint kind: "draw", or "vae" for the baseline."""
        return "vae" if self.vae else CHECKPOINT_KIND


LEGACY_FIELDS = {"out": "run_dir", "ckpt_every": "checkpoint_every", "max_steps": "max_iters"}
"""Field names of configs saved before the run skeleton, and their names now."""


def saved_train_config(values: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` of a saved dict (``eval.json``'s ``train``, a checkpoint's ``config["train"]``),
    also one written before the run skeleton: ``out``, ``ckpt_every``, ``max_steps`` renamed, ``resume``
    True/False read as auto/never, ``threads`` None as 0 (torch's default)."""
    values = {LEGACY_FIELDS.get(k, k): v for k, v in values.items()}
    if isinstance(values.get("resume"), bool):
        values["resume"] = "auto" if values["resume"] else "never"
    if "threads" in values and values["threads"] is None:
        values["threads"] = 0
    return config_from_dict(TrainConfig, values)


# ---------------------------------------------------------------- data, schedule, model


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
    return cfg.lr * lr_schedule(frac, 1.0, cfg.lr_final)  # as a fraction of lr: the same floats as ever


def build_model(cfg: TrainConfig) -> DRAW | VAE:
    """A fresh DRAW model of the configured preset (with overrides), or the VAE baseline with its latent budget."""
    mcfg = cfg.model_config()
    return VAE(VAEConfig.matching(mcfg, cfg.vae_hidden)) if cfg.vae else DRAW(mcfg)


def use_tf32(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 tensor cores for the LSTM products
        torch.backends.cudnn.allow_tf32 = True


# ---------------------------------------------------------------- evaluation and outputs


def model_bounds(model: DRAW | VAE, ema: EMA | None, test_x: Tensor, cfg: TrainConfig, **kw: Any) -> dict[str, float]:
    """Test bounds (:func:`~paintrnn.agents.draw_eval.evaluate`) of the averaged weights when there are any, with
    the raw weights' -ELBO as ``raw_test_nelbo``; else of the raw weights."""
    if ema is None:
        return evaluate(model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed, **kw)
    raw = evaluate(model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed)["test_nelbo"]
    return {**evaluate(ema.model, test_x, batch_size=cfg.eval_batch, seed=cfg.test_seed, **kw), "raw_test_nelbo": raw}


def plot_curves(run: Run) -> None:
    """``curves.png`` from the log (absent only when --eval-only scores a checkpoint on its own)."""
    if run.is_main and (run.dir / "metrics.jsonl").is_file():
        keys = ["loss", "test_nelbo", "kl", "grad_norm", "images_per_s"]
        plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png", keys)


SCALED_EVAL_SHARE = 0.25
"""``--final-eval scaled``: the final IWAE bound costs about this share of the training's compute (a training image
costs about three forward passes, forward and backward; an IWAE image k + 1)."""
SCALED_EVAL_MIN_IMAGES = 100
"""``--final-eval scaled`` evaluates the IWAE bound on at least this many test digits."""


def iwae_plan(cfg: TrainConfig, trained_images: int, test_images: int) -> tuple[int, str]:
    """How many test digits the final IWAE bound is computed on, and the sentence that says so: ``--iwae-images``
    when given, all of them with ``--final-eval paper``, else a number scaled to the ``trained_images`` (see
    :data:`SCALED_EVAL_SHARE`)."""
    k = cfg.iwae_k
    if cfg.iwae_images is not None:
        n = min(cfg.iwae_images, test_images)
        return n, f"IWAE k={k} on {n} of {test_images} test digits (--iwae-images)"
    if cfg.final_eval == "paper":
        return test_images, f"IWAE k={k} on all {test_images} test digits (--final-eval paper)"
    scaled = int(SCALED_EVAL_SHARE * 3 * trained_images / (k + 1))
    n = min(test_images, max(SCALED_EVAL_MIN_IMAGES, scaled))
    if n == test_images:
        return n, f"IWAE k={k} on all {test_images} test digits (--final-eval scaled: the run is long enough)"
    return n, (
        f"IWAE k={k} on {n} of {test_images} test digits, scaled to the run's {trained_images} training images "
        f"(--final-eval paper: all of them)"
    )


def final_evaluation(
    run: Run, cfg: TrainConfig, model: DRAW | VAE, ema: EMA | None, test_x: Tensor, budget: dict[str, Any]
) -> dict[str, float]:
    """The final test bounds (IWAE on :func:`iwae_plan`'s digits, several ELBO draws as configured), announced by
    one line on stderr and shown by a progress bar with its ETA; on rank 0 also ``eval.json`` (the bounds, what
    was evaluated, the data, the training ``budget`` and the settings), ``samples.png`` and ``curves.png``. Not
    counted as training time."""
    with run.paused():
        show = cfg.progress and run.is_main
        n_iwae, plan = iwae_plan(cfg, int(budget["iters"]) * int(budget["batch_size"]), int(test_x.shape[0]))
        if not cfg.iwae_k:
            plan = "no IWAE bound (--iwae-k 0)"
        if run.is_main:
            print(f"{cfg.kind} final evaluation: -ELBO on {test_x.shape[0]} test digits, {plan}", file=sys.stderr)
        final = model_bounds(
            model, ema, test_x, cfg, iwae_k=cfg.iwae_k, show=show, iwae_images=n_iwae, elbo_samples=cfg.elbo_samples,
        )  # fmt: skip
        if run.is_main:
            report = {**final, "iwae_k": cfg.iwae_k, "test_images": int(test_x.shape[0]), "final_eval": plan,
                      "data": mnist_description(cfg.data_dir, cfg.data_source), **budget,
                      "processes": run.info.world_size, "ema_decay": ema.decay if ema is not None else 0.0,
                      "model": asdict(cfg.model_config()),
                      "train": asdict(cfg), "machine": machine_info(run.device)}  # fmt: skip
            (run.dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
            shown = model if ema is None else ema.model
            canvases = shown.sample(64, run.device)[0]  # (T+1, 64, 1, H, W) logits
            save_grid(run.dir / "samples.png", torch.sigmoid(canvases[-1, :, 0]).cpu().numpy(), 8, 2)
            plot_curves(run)
    return final


def headline(bounds: dict[str, float]) -> dict[str, float]:
    """The bounds a summary line shows: the test -ELBO (with its Monte Carlo error) and the IWAE bound."""
    return {k: v for k, v in bounds.items() if k in ("test_nelbo", "test_nelbo_mc_se") or k.startswith("test_iwae")}


# ---------------------------------------------------------------- the training step


class TrainStep:
    """One optimiser step on the batch in ``inputs`` (forward, backward, clipping, Adam), returning
    ``(loss, recon, grad_norm)``: the body that :class:`~paintrnn.graphs.GraphedStep` calls eagerly or captures.

    Eager, ``inputs`` holds binary images and ``net`` (the model or its DDP wrapper) checks and runs them;
    graphed, it holds intensities, binarised on the GPU inside the graph, and the model unrolls them without
    host-synchronising checks. ``step_fn`` is a compiled :meth:`DRAW.step` (``--compile``) or None (eager)."""

    def __init__(
        self,
        model: DRAW | VAE,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: Tensor,
        grad_clip: float,
        graphed: bool,
        step_fn: StepFn | None = None,
    ) -> None:
        self.model, self.net, self.optimizer, self.inputs = model, net, optimizer, inputs
        self.grad_clip, self.graphed, self.step_fn = grad_clip, graphed, step_fn
        self.step = 0
        """Index of the step being taken (for the message of a non-finite loss)."""

    def __call__(self) -> Tensor:
        if self.graphed:
            result = self.model.unroll(binarize_dynamic(self.inputs), step_fn=self.step_fn)
        else:
            result = self.net(self.inputs) if self.step_fn is None else self.net(self.inputs, step_fn=self.step_fn)
            check_finite(result.loss, self.step)
        result.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return torch.stack([result.loss.detach(), result.recon.mean().detach(), grad_norm.detach()])


def compile_step(model: DRAW, batch: int) -> StepFn | None:
    """``torch.compile(model.step)``, compiled now on a training-shaped batch so that a broken toolchain falls
    back to eager (None). Evaluation keeps the eager step: its batch shapes would recompile this one."""
    cfg = model.config
    compiled = torch.compile(model.step, dynamic=False)
    try:
        x = torch.zeros(batch, 1, cfg.height, cfg.width, device=next(model.parameters()).device)
        model(x, step_fn=compiled).loss.backward()
    except Exception as exc:  # pragma: no cover - depends on the toolchain
        print(f"torch.compile failed ({type(exc).__name__}: {exc}); running eager", file=sys.stderr)
        compiled = None
    model.zero_grad(set_to_none=True)
    return compiled


def build_runner(
    cfg: TrainConfig, run: Run, model: DRAW | VAE, optimizer: torch.optim.Optimizer, inputs: Tensor, graphed: bool
) -> tuple[GraphedStep, TrainStep]:
    """The step runner: compile the step (``--compile``), wrap the model for DDP, and capture the step as a CUDA
    graph when ``graphed`` (falling back to eager if capture fails: then ``body.graphed`` is False)."""
    step_fn = compile_step(model, inputs.shape[0]) if cfg.compile and isinstance(model, DRAW) else None
    net = DistributedDataParallel(model) if run.info.distributed else model
    body = TrainStep(model, net, optimizer, inputs, cfg.grad_clip, graphed, step_fn)
    model.train()
    try:
        return GraphedStep(body, model, optimizer, enabled=graphed), body
    except Exception as exc:  # pragma: no cover - depends on the GPU toolchain
        print(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); running eager", file=sys.stderr)
        body.graphed = False
        prepare_optimizer(optimizer, False)
        optimizer.zero_grad(set_to_none=True)
        return GraphedStep(body, model, optimizer, enabled=False), body


class Batches:
    """The training images of each step: the ``DistributedSampler``'s shuffle of the step's epoch (the same on
    a resumed run) and noise seeded by (seed, step, rank) only, written into the runner's ``inputs`` buffer
    (binarised here when eager; as intensities, binarised inside the graph, when graphed)."""

    def __init__(self, cfg: TrainConfig, run: Run, train_x: Tensor, inputs: Tensor) -> None:
        info = run.info
        self.cfg, self.rank, self.inputs = cfg, info.rank, inputs
        self.sampler = DistributedSampler(
            range(train_x.shape[0]), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed,
            drop_last=True,
        )  # fmt: skip
        self.local_batch = cfg.batch_size // info.world_size
        self.per_epoch = len(self.sampler) // self.local_batch
        if self.per_epoch == 0:
            raise ValueError(f"{train_x.shape[0]} training images give no full batch of {cfg.batch_size}")
        self.total = self.per_epoch * cfg.epochs
        self.train_x, self.graphed = train_x, False
        self.source = train_x
        self._epoch, self._order = -1, torch.zeros(0, dtype=torch.long)

    def on_device(self, graphed: bool) -> None:
        """Keep the training set on the device (one copy) when the step is graphed."""
        self.graphed = graphed
        self.source = self.train_x.to(self.inputs.device) if graphed else self.train_x

    def load(self, step: int) -> None:
        """Fill ``inputs`` with the batch of ``step`` and seed the step's noise."""
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = torch.tensor(list(self.sampler), device=self.source.device)  # one copy per epoch
            self._epoch = epoch
        idx = self._order[pos * self.local_batch : (pos + 1) * self.local_batch]
        seed = step_seed(self.cfg.seed, step, self.rank)
        if self.graphed:
            torch.cuda.manual_seed(seed)  # the replay draws from this state
            self.inputs.copy_(self.source[idx])
        else:
            torch.manual_seed(seed)
            self.inputs.copy_(binarize_dynamic(self.train_x[idx]))


# ---------------------------------------------------------------- training and evaluation-only runs


@dataclass
class Trained:
    """What a run leaves: the model (raw weights, unwrapped) and its one summary line."""

    model: DRAW | VAE
    summary: str


def fit(
    cfg: TrainConfig,
    run: Run,
    model: DRAW | VAE,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    runner: GraphedStep,
    body: TrainStep,
    batches: Batches,
    test_x: Tensor,
) -> tuple[int, bool]:
    """The training loop from ``run.start``: steps, metric lines, per-epoch test bounds and checkpoints.
    Returns the steps done and whether the time limit stopped it."""
    per_epoch, total = batches.per_epoch, batches.total
    step, ckpt = run.start, run.checkpoint
    sums, seen = torch.zeros(3, device=run.device), 0  # running sums of (loss, recon, grad norm) since the last log
    if ckpt is not None and "log_sums" in ckpt["extra"]:
        sums, seen = ckpt["extra"]["log_sums"].to(run.device), int(ckpt["extra"]["log_seen"])
    elapsed = run.sync_clock()
    window = (step, elapsed)  # images/s counts this process's training steps and time since the last log

    def save() -> None:
        run.check_finite(sums, step)  # a graphed run checks here and at each log: keep the last good checkpoint
        ema_extra = {"ema": ema.state_dict(), "ema_decay": ema.decay} if ema is not None else {}
        run.save(step, model, optimizer, config={"model": asdict(cfg.model_config()), "train": asdict(cfg)},
                 extra={"epoch": step / per_epoch, "log_sums": sums.cpu(), "log_seen": seen, **ema_extra},
                 modules={"ema": ema.model} if ema is not None else None)  # fmt: skip

    out_of_time = False
    bar = run.progress(range(step, total), total=total, desc="DRAW", show=("loss", "test_nelbo", "images_per_s"))
    for i in bar:
        batches.load(i)
        runner.set_lr(lr_at(cfg, i, total, elapsed))
        model.train()
        body.step = i
        sums += runner()
        step, seen = i + 1, seen + 1
        if ema is not None:
            ema.update(model, step)
        at_log, end_of_epoch = step % cfg.log_every == 0 or step == total, step % per_epoch == 0
        elapsed = run.sync_clock() if at_log or end_of_epoch else run.elapsed  # synced: the GPU has caught up
        if at_log:
            run.check_finite(sums, step)
            avg = (sums / seen).tolist()
            rate = (step - window[0]) * cfg.batch_size / max(elapsed - window[1], 1e-9)  # evaluation excluded
            run.log(step, loss=avg[0], recon=avg[1], kl=avg[0] - avg[1], grad_norm=avg[2],
                    lr=lr_at(cfg, step, total, elapsed), images_per_s=rate, epoch=step / per_epoch)  # fmt: skip
            sums.zero_()
            seen, window = 0, (step, elapsed)
        if end_of_epoch and (step // per_epoch) % cfg.eval_every == 0:
            with run.paused():
                metrics = model_bounds(model, ema, test_x, cfg)
            run.log(step, epoch=step / per_epoch, **metrics)  # outside paused(): its clock reading must not count it
            with run.paused():
                plot_curves(run)
        out_of_time = cfg.time_limit_min is not None and elapsed >= 60 * cfg.time_limit_min
        if end_of_epoch or step % cfg.checkpoint_every == 0 or step == cfg.max_iters or out_of_time:
            save()
        if out_of_time or (cfg.max_iters is not None and step >= cfg.max_iters):
            break
    return step, out_of_time


def train_run(cfg: TrainConfig) -> Trained:
    """Train (or resume) as configured, evaluate at the end (or when the time limit stops the run); with
    ``eval_only``, evaluate the run folder's checkpoint instead (:func:`evaluate_run`)."""
    if cfg.eval_only:
        return evaluate_run(cfg)
    with start_run(cfg, cfg.kind) as run:
        if cfg.batch_size % run.info.world_size:
            raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the {run.info.world_size} processes")
        model = build_model(cfg).to(run.device)  # the same initial weights on every rank
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        train_x, test_x = mnist_tensors(cfg)
        mcfg = cfg.model_config()
        inputs = torch.zeros(cfg.batch_size // run.info.world_size, 1, mcfg.height, mcfg.width, device=run.device)
        batches = Batches(cfg, run, train_x, inputs)  # the step reads its images from this buffer (a graph: always)
        ckpt = run.resume(model, optimizer)
        ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
        if ema is not None and ckpt is not None and ckpt["extra"].get("ema"):  # (else it starts from the weights)
            ema.load_state_dict(ckpt["extra"]["ema"])
        graphed = cfg.cuda_graph and run.device.type == "cuda" and not (run.info.distributed or cfg.vae)
        prepare_optimizer(optimizer, graphed)  # after loading: the checkpoint carries the mode it was saved in
        use_tf32(run.device)
        with run.paused():  # compiling and capturing are set-up, not training
            runner, body = build_runner(cfg, run, model, optimizer, inputs, graphed)
        batches.on_device(body.graphed)
        step, out_of_time = fit(cfg, run, model, optimizer, ema, runner, body, batches, test_x)
        result: dict[str, Any] = {"iters": step, "epochs": step / batches.per_epoch}
        if step >= batches.total or out_of_time:
            budget = {"epochs": step / batches.per_epoch, "iters": step, "train_minutes": run.sync_clock() / 60,
                      "stopped_by_time_limit": out_of_time, "batch_size": cfg.batch_size,
                      "cuda_graph": body.graphed}  # fmt: skip
            final = final_evaluation(run, cfg, model, ema, test_x, budget)
            result.update(headline(final))
        elif "loss" in run.last_metrics:  # stopped early (--max-iters): no final evaluation, the last training loss
            result["loss"] = run.last_metrics["loss"]
        return Trained(model, run.summary(**result))


def evaluate_run(cfg: TrainConfig) -> Trained:
    """``--eval-only``: the final evaluation of the run folder's checkpoint (its average when it kept one), with
    the budget it was trained with (epochs, steps, minutes, batch size); no training, no change to the checkpoint."""
    with start_run(cfg, cfg.kind) as run:
        if not run.checkpoint_path.is_file():
            raise CheckpointError(f"--eval-only needs a checkpoint, and there is none at {run.checkpoint_path}")
        ckpt = load_checkpoint(run.checkpoint_path, map_location=run.device, kind=cfg.kind)
        saved, mcfg = config_from_dict(DrawConfig, ckpt["config"]["model"]), cfg.model_config()
        if saved != mcfg:
            raise CheckpointError(f"{run.checkpoint_path} holds a model {saved}, but this run asks for {mcfg}")
        model = build_model(cfg).to(run.device)
        model.load_state_dict(ckpt["model"])
        extra = ckpt.get("extra", {})
        ema = None
        if extra.get("ema"):
            ema = EMA(model, extra["ema_decay"])
            ema.load_state_dict(extra["ema"])
        use_tf32(run.device)
        batch = ckpt["config"]["train"]["batch_size"]  # as trained
        epochs = extra.get("epoch")
        if epochs is None:  # a checkpoint from elsewhere: count the epochs of the training set it names
            epochs = ckpt["step"] / (mnist_tensors(cfg)[0].shape[0] // batch)
        budget = {"epochs": epochs, "iters": ckpt["step"], "train_minutes": extra.get("elapsed_s", 0.0) / 60,
                  "stopped_by_time_limit": False, "batch_size": batch, "cuda_graph": False}  # fmt: skip
        final = final_evaluation(run, cfg, model, ema, mnist_test_set(cfg), budget)
        return Trained(model, run.summary(iters=ckpt["step"], epochs=epochs, **headline(final)))


def train(cfg: TrainConfig) -> DRAW | VAE:
    """Train (or resume, or with ``eval_only`` only evaluate) a DRAW model as configured; return the model
    (its raw weights, unwrapped)."""
    return train_run(cfg).model


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: parse a :class:`TrainConfig`, train, print the run's summary line."""
    cfg = parse_config(TrainConfig, argv, prog="paintrnn train draw")
    try:
        trained = train_run(cfg)
    except NonFiniteLossError as exc:
        print(f"train_draw: {exc}", file=sys.stderr)
        return 1
    print(trained.summary)
    return 0
