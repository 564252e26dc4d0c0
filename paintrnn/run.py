"""One run skeleton for every trainer: base options, set-up, resume policy, checkpoints, metrics, clean-up.

A trainer's config subclasses :class:`RunConfig` (so every ``paintrnn train X --help`` starts with the same
options) and its ``train`` function keeps its loop explicit, inside one context::

    @dataclass(frozen=True)
    class TrainConfig(RunConfig):
        run_dir: str = "runs/texture"
        iters: int = 3000
        \"\"\"Optimiser steps.\"\"\"

    def train(cfg: TrainConfig) -> Model:
        with start_run(cfg, kind="texture") as run:           # threads, DDP, seed, lock, config.json
            model = Model().to(run.device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            ckpt = run.resume(model, opt)                    # None on a fresh start
            for it in run.progress(range(run.start, cfg.iters), total=cfg.iters, desc="texture"):  # shows the loss
                opt.param_groups[0]["lr"] = lr_schedule(it / cfg.iters, cfg.lr, 0.05 * cfg.lr)
                loss = ...
                run.check_finite(loss, it)
                if (it + 1) % cfg.log_every == 0:
                    run.log(it + 1, loss=loss)                # adds `minutes` of training time
                if (it + 1) % cfg.checkpoint_every == 0:
                    run.save(it + 1, model, opt)              # atomic, refuses non-finite weights
            return model

The one resume policy (``--resume``): ``auto`` continues from ``run_dir/checkpoint.pt`` when it exists,
``must`` requires it, ``never`` starts afresh (overwriting the folder's checkpoint), ``force`` continues
even when settings differ. Without ``force`` a resumed run must match the checkpoint in every setting that
changes the run's meaning: all config fields except :attr:`RunConfig.RESUME_MAY_CHANGE` (extended by each
trainer); the differences are listed in the error. Only rank 0 writes files; the run folder is locked for
the process's lifetime, so a second process training into it is refused (a dead process's lock is gone
with it). Distributed clean-up happens in ``finally``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import torch
from tqdm.auto import tqdm

from paintrnn.training import (
    CheckpointError,
    DistInfo,
    MetricsLogger,
    NonFiniteLossError,
    check_finite,
    cleanup_distributed,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_distributed,
    synced_clock,
    write_config,
)

T = TypeVar("T")
TIME_KEY = "minutes"
"""The one time key of every metrics line: minutes of training (evaluation excluded), resumed across restarts."""
PROGRESS_KEYS = ("loss", "episode_return")
"""Metrics a progress bar shows by default (:meth:`Run.progress`): the loss, every ``*_loss``, the RL return."""


class RunLockedError(RuntimeError):
    """Another live process is training into the same run folder."""


@dataclass(frozen=True)
class RunConfig:
    """Options every trainer shares (they come first in each ``--help``)."""

    run_dir: str = "runs/run"
    """Run folder: config.json, metrics.jsonl, curves.png, checkpoint.pt and the trainer's outputs."""
    device: str = "auto"
    """cpu, cuda or auto (cuda when available)."""
    seed: int = 0
    """Seed of initial weights, data order and every random draw."""
    threads: int = 1
    """torch CPU threads (0 = torch's default); one is fastest for these small models on a busy CPU."""
    progress: bool = True
    """Show a progress bar."""
    log_every: int = 50
    """Training iterations (steps or epochs, as the trainer counts) between metric lines."""
    checkpoint_every: int = 250
    """Training iterations between checkpoints (one is also written at the end)."""
    resume: Literal["auto", "must", "never", "force"] = "auto"
    """auto: continue from run_dir/checkpoint.pt when it exists; must: require it; never: start afresh
    (overwriting it); force: continue even if settings that change the run differ from the checkpoint's."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"run_dir", "device", "threads", "progress", "log_every", "checkpoint_every", "resume"}
    )
    """Fields a resumed run may change: they do not alter the training trajectory. Trainers add theirs."""
    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {
        "--out": "--run-dir",
        "--ckpt-every": "--checkpoint-every",
        "--no-resume": "--resume never",
    }
    """Old command-line flags still accepted, with a deprecation message, mapped to their new names."""

    def __post_init__(self) -> None:
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {self.threads}")
        if self.resume not in ("auto", "must", "never", "force"):
            raise ValueError(f"--resume must be auto, must, never or force, got {self.resume!r}")


def config_differences(cfg: RunConfig, saved: dict[str, Any]) -> list[str]:
    """``name: saved -> now`` for every field outside ``RESUME_MAY_CHANGE`` that differs from a saved config."""
    now = dataclasses.asdict(cfg)
    diffs = []
    for name, value in now.items():
        if name in type(cfg).RESUME_MAY_CHANGE or name not in saved:
            continue
        old = saved[name]
        if isinstance(value, tuple) and isinstance(old, list):
            old = tuple(old)
        if old != value:
            diffs.append(f"{name}: {old!r} -> {value!r}")
    return diffs


def lr_schedule(
    frac: float, peak: float, final: float, warmup_frac: float = 0.0, shape: Literal["cosine", "linear"] = "cosine"
) -> float:
    """The one learning-rate schedule: linear warm-up over the first ``warmup_frac`` of training, then a cosine
    (or a straight line, ``shape="linear"``) from ``peak`` to ``final`` (absolute) at ``frac = 1``. ``frac`` is
    the fraction of training done (by iterations, epochs or time, as the trainer measures it), clipped to [0, 1]."""
    frac = min(max(frac, 0.0), 1.0)
    if frac < warmup_frac:
        return peak * frac / warmup_frac
    t = (frac - warmup_frac) / (1.0 - warmup_frac) if warmup_frac < 1 else 0.0
    if shape == "linear":
        return peak + (final - peak) * t
    if shape != "cosine":
        raise ValueError(f"shape must be 'cosine' or 'linear', got {shape!r}")
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * t))


class _FolderLock:
    """An exclusive ``flock`` on ``run_dir/.lock``: held while the process lives, released by the OS at death."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self.fh = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(
                f"{self.path.parent} is in use by {owner}: two processes must not train into one run folder "
                "(wait for it, or choose another --run-dir)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self.fh = fh

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()  # closing releases the flock
            self.fh = None


class Run:
    """A training run in progress: its device, rank, folder, checkpoint, metrics and training clock.

    Made by :func:`start_run`. ``start`` is the iteration to continue from (0 on a fresh start),
    ``checkpoint`` the loaded checkpoint dict (None on a fresh start), ``elapsed`` the training seconds so
    far (restored on resume; time inside :meth:`paused` is not counted)."""

    def __init__(self, cfg: RunConfig, kind: str, info: DistInfo, generator: torch.Generator) -> None:
        self.cfg, self.kind, self.info, self.generator = cfg, kind, info, generator
        self.device: torch.device = info.device
        self.dir = Path(cfg.run_dir)
        self.checkpoint_path = self.dir / "checkpoint.pt"
        self.start = 0
        self.checkpoint: dict[str, Any] | None = None
        self._elapsed = 0.0
        self._clock: float | None = None
        self._paused = False
        self.logger: MetricsLogger | None = None
        self.last_metrics: dict[str, Any] = {}
        """The metrics of the latest :meth:`log` line (what a summary line may show)."""
        self._bar: tqdm | None = None
        self._bar_keys: tuple[str, ...] = PROGRESS_KEYS
        self._postfix: dict[str, str] = {}

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    # ---- resume ----------------------------------------------------------------------------------------
    def resume(
        self,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        restore_rng: bool = True,
    ) -> dict[str, Any] | None:
        """Apply the resume policy: load ``run_dir/checkpoint.pt`` into ``model`` and ``optimizer`` (and the
        RNG states, into :attr:`generator` too) when the policy says so, after checking that the settings
        match. Sets :attr:`start` and the training clock, opens the metrics log (dropping lines past the
        checkpoint) and writes ``config.json`` on rank 0. Returns the checkpoint dict, or None on a fresh start.
        Call it once, after building the model and optimiser and before the loop."""
        cfg, path = self.cfg, self.checkpoint_path
        ckpt = None
        if cfg.resume == "must" and not path.is_file():
            raise CheckpointError(f"--resume must: there is no checkpoint at {path}")
        if cfg.resume != "never" and path.is_file():
            ckpt = load_checkpoint(path, map_location=self.device, kind=self.kind)
            saved = ckpt.get("run_config")
            if saved is None:  # written before run_config existed: the trainer's config, flat or under "train"
                saved = ckpt["config"].get("train", ckpt["config"])
            diffs = config_differences(cfg, saved)
            if diffs and cfg.resume != "force":
                raise CheckpointError(
                    f"{path} was written with other settings ({'; '.join(diffs)}): resume with the same settings, "
                    "use --resume force to continue anyway, --resume never to start afresh, or another --run-dir"
                )
            if diffs and self.is_main:
                print(f"paintrnn: --resume force: continuing despite {'; '.join(diffs)}", file=sys.stderr)
            if model is not None:
                getattr(model, "module", model).load_state_dict(ckpt["model"])
            if optimizer is not None and ckpt.get("optimizer") is not None:
                optimizer.load_state_dict(ckpt["optimizer"])
            if restore_rng and "rng" in ckpt:
                set_rng_state(ckpt["rng"], self.generator)
            self.start = int(ckpt["step"])
            self._elapsed = float(ckpt.get("extra", {}).get("elapsed_s", 0.0))
        self.checkpoint = ckpt
        if self.is_main:
            write_config(self.dir / "config.json", cfg)
        self.logger = MetricsLogger(
            self.dir / "metrics.jsonl", resume_step=self.start if ckpt else None, enabled=self.is_main
        )
        self._clock = synced_clock(self.device)
        return ckpt

    # ---- clock -----------------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Training seconds so far (this and earlier processes), evaluation time excluded."""
        if self._clock is None or self._paused:
            return self._elapsed
        return self._elapsed + time.perf_counter() - self._clock

    def sync_clock(self) -> float:
        """:attr:`elapsed` after the device has run its queued work (CUDA runs asynchronously)."""
        if self._clock is not None and not self._paused:
            now = synced_clock(self.device)
            self._elapsed += now - self._clock
            self._clock = now
        return self._elapsed

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (evaluation, plots, GIFs) does not count as training time."""
        if self._paused:  # nested: the outer pause already stopped the clock
            yield
            return
        self.sync_clock()
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
            if self._clock is not None:
                self._clock = synced_clock(self.device)

    # ---- metrics, progress, checkpoints -------------------------------------------------------------------
    def log(self, step: int, **metrics: Any) -> dict[str, Any]:
        """Append one metrics line at ``step`` with the training time (``minutes``); returns the row."""
        if self.logger is None:
            raise RuntimeError("call Run.resume() before logging")
        row = {**metrics, TIME_KEY: self.sync_clock() / 60}
        self.logger.log(step, **row)
        self.last_metrics = dict(metrics)
        self._show(metrics)
        return row

    def progress(
        self,
        iterable: Iterable[T],
        total: int | None = None,
        desc: str | None = None,
        show: Sequence[str] = PROGRESS_KEYS,
    ) -> tqdm:
        """A tqdm bar over the remaining iterations (starting at :attr:`start`), on rank 0 only. Every :meth:`log`
        line puts its metrics named in ``show`` (a name also matches ``*_name``: ``loss`` shows ``critic_loss``)
        into the bar's postfix, so the bar shows the running loss; the values stay until the next line has them."""
        self._bar_keys, self._postfix = tuple(show), {}
        self._bar = tqdm(iterable, disable=not (self.cfg.progress and self.is_main), initial=self.start, total=total,
                         desc=desc or self.kind, dynamic_ncols=True)  # fmt: skip
        return self._bar

    def _show(self, metrics: dict[str, Any]) -> None:
        """Put the shown metrics of one log line into the progress bar's postfix."""
        if self._bar is None or self._bar.disable:
            return
        for key, value in metrics.items():
            if any(key == name or key.endswith(f"_{name}") for name in self._bar_keys):
                number = float(value) if isinstance(value, (int, float)) or torch.is_tensor(value) else None
                self._postfix[key] = f"{number:.4g}" if number is not None else str(value)
        if self._postfix:
            self._bar.set_postfix(self._postfix)

    def check_finite(self, loss: torch.Tensor, step: int) -> None:
        """Stop with :class:`~paintrnn.training.NonFiniteLossError` on a NaN or infinite loss."""
        check_finite(loss, step)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        extra: dict[str, Any] | None = None,
        config: Any = None,
        modules: dict[str, torch.nn.Module] | None = None,
    ) -> None:
        """Write ``checkpoint.pt`` atomically on rank 0: weights, optimiser, step, RNG states, the training
        clock (``extra["elapsed_s"]``), the run's config (``run_config``) and ``config`` (what the model
        family's loader reads; default: the run's config). A model or optimiser holding a NaN or infinite
        value is refused with :class:`~paintrnn.training.NonFiniteLossError` and the previous checkpoint is kept.
        ``modules`` are further networks (critics, discriminators) whose weights must be finite too."""
        for name, net in {"model": model, **(modules or {})}.items():
            for key, value in getattr(net, "module", net).state_dict().items():
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise NonFiniteLossError(
                        f"{name} weight {key!r} is not finite at step {step}: training stopped and the last good "
                        f"checkpoint was kept (try a lower learning rate or stronger gradient clipping)"
                    )
        if optimizer is not None:
            for state in optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                        raise NonFiniteLossError(
                            f"optimiser state is not finite at step {step}: training stopped and the last good "
                            "checkpoint was kept (try a lower learning rate)"
                        )
        if not self.is_main:
            return
        save_checkpoint(
            self.checkpoint_path,
            kind=self.kind,
            config=self.cfg if config is None else config,
            model=model,
            optimizer=optimizer,
            step=step,
            generator=self.generator,
            extra={"elapsed_s": self.sync_clock(), **(extra or {})},
            run_config=dataclasses.asdict(self.cfg),
        )

    def summary(self, **result: Any) -> str:
        """The one line a trainer ends with (its ``main`` prints it): its final metrics, the run folder and the
        training time; closes the progress bar first, so the line is not drawn over."""
        if self._bar is not None:
            self._bar.close()
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()]
        return f"{self.kind}: {' '.join(parts)} | run {self.dir} | {self.elapsed / 60:.1f} min"


@contextlib.contextmanager
def start_run(cfg: RunConfig, kind: str, seed_offset: int = 0) -> Iterator[Run]:
    """Set up a run: torch threads, the ``torchrun`` process group (when launched by it), seeding
    (``cfg.seed + seed_offset`` on every rank: identical initial weights), and on rank 0 the run folder and
    its lock. Yields a :class:`Run`; the lock and the process group are released in ``finally``."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"start_run needs a RunConfig, got {type(cfg).__name__}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    lock = None
    try:
        info = setup_distributed(cfg.device)
        generator = seed_everything(cfg.seed + seed_offset)
        if info.is_main:
            Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
            lock = _FolderLock(Path(cfg.run_dir))
            lock.acquire()
            for stale in Path(cfg.run_dir).glob(".*.tmp"):  # left by a process killed while writing a file
                stale.unlink(missing_ok=True)
        yield Run(cfg, kind, info, generator)
    finally:
        if lock is not None:
            lock.release()
        cleanup_distributed()
