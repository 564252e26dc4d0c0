"""Benchmark of unconditional digit generators in one metric: :func:`paintrnn.metrics.sample_quality`.

Each row draws ``--n`` images (10,000; ``--quick``: 500) and measures them against the 10,000 MNIST test digits:
the Fréchet distance (``fd``) in the shipped digit classifier's features, the smallest predicted-class fraction
(mode coverage) and the mean confidence. Rows:

* real digits: the first ``n`` MNIST *training* digits (the floor: what sampling noise alone costs; the test digits
  themselves are at 0 by construction);
* DRAW: samples (Bernoulli means) of the shipped ``cpu`` preset (``paintrnn.load("draw")``), and of the paper
  configuration when ``--draw-paper`` names its checkpoint;
* the VAE baseline when ``--vae`` names a checkpoint (none is shipped: the row says so);
* random strokes (the ceiling): uniformly random actions of the painter's action space, 10 strokes;
* the backprop doodlers (:mod:`paintrnn.agents.doodle_train`), one per checkpoint in ``--doodlers`` (5, 10, 20
  strokes), and the RL doodlers (the painter's ``gan`` mode, PPO rewarded by a discriminator) in ``--rl-runs``;
  each with its training budget (iterations, minutes).

Doodles are drawn with the hard renderer at 64 px (downsampled to 28 px by the metric). ``--quick`` trains a tiny
doodler and RL doodler for a few seconds each when none is given (a smoke test of the pipeline, not a result).
The targets (issue 23): the best backprop doodler's ``fd`` at or below DRAW ``cpu``'s; every class at least 5% of
its samples; the best RL doodler's ``fd`` within 2x the best backprop doodler's.

    python scripts/benchmark_doodle.py --doodlers runs/doodle-5 runs/doodle-10 runs/doodle-20 \
        --rl-runs runs/painter-gan --json docs/results/doodle.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from paintrnn.agents.doodler import doodle_frames
from paintrnn.agents.doodler import load_model as load_doodler
from paintrnn.agents.painter import actions_to_strokes, paint
from paintrnn.agents.painter import load_model as load_painter
from paintrnn.agents.painter_gif import episode_frames

import paintrnn
from paintrnn.config import parse_config
from paintrnn.data import load_mnist, mnist_description
from paintrnn.hub import checkpoint_path
from paintrnn.media import save_grid, write_gif
from paintrnn.metrics import SampleQuality, sample_quality
from paintrnn.render import render_strokes
from paintrnn.training import atomic_write_bytes, load_checkpoint, machine_info, read_metrics, resolve_device

MIN_CLASS = 0.05
"""Target: every digit class at least this fraction of a doodler's samples."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """Measure digit generators (real digits, DRAW, VAE, random strokes, doodlers) by sample quality."""

    json: str | None = None
    """Write the results (rows, machine, budget, targets) to this JSON file."""
    quick: bool = False
    """Smoke test: 500 samples per row, and tiny doodlers trained here when none are given (under a minute)."""
    doodlers: tuple[str, ...] = ()
    """Backprop doodler checkpoints or run folders (e.g. 5, 10 and 20 strokes); 'doodler' is the shipped one."""
    rl_runs: tuple[str, ...] = ()
    """RL doodler checkpoints or run folders (the painter's gan mode)."""
    draw: str = "draw"
    """DRAW cpu-preset model (a name, run folder or checkpoint)."""
    draw_paper: str | None = None
    """DRAW paper-configuration checkpoint, when at hand."""
    vae: str | None = None
    """VAE baseline checkpoint (scripts/train_draw.py --vae), when at hand."""
    n: int = 10000
    """Samples per row (--quick: 500)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    data_dir: str | None = None
    """Folder holding MNIST (default: ../shared/data when it holds MNIST, else $PAINTRNN_DATA or the cache): the
    real-digit row."""
    data_source: Literal["auto", "full", "sample"] = "auto"
    """MNIST files to use: full, the bundled sample, or full when present (auto)."""
    seed: int = 0
    """Seed of every sample drawn."""
    threads: int = 1
    """torch CPU threads (0 = torch's default)."""
    note: str = ""
    """Free text stored in the JSON's budget (how and where the models were trained)."""
    pictures: str | None = None
    """Folder for pictures of the doodlers measured: doodle_backprop_N.gif/.png (N strokes) and doodle_rl_N.gif/.png,
    16 doodles each, stroke by stroke."""


def find_data_dir(cfg: BenchmarkConfig) -> str | None:
    """``--data-dir``, else ``../shared/data`` when it holds MNIST, else the default (cache or sample)."""
    if cfg.data_dir is not None or cfg.data_source == "sample":
        return cfg.data_dir
    shared = Path("..") / "shared" / "data"
    return str(shared) if (shared / "mnist").is_dir() else None


def row_of(name: str, q: SampleQuality, seconds: float, **info: Any) -> dict[str, Any]:
    fractions = [round(f, 4) for f in q.class_fractions]
    return {"name": name, "fd": q.fd, "min_class_fraction": q.min_class_fraction, "confidence": q.mean_confidence,
            "class_fractions": fractions, "n": q.n, "seconds": seconds, **info}  # fmt: skip


def random_strokes(n: int, strokes: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` canvases of ``strokes`` uniformly random painter actions each (hard renderer): the ceiling."""
    actions = torch.rand(n, strokes * 11, generator=generator) * 2 - 1  # (n, strokes * 11) in [-1, 1]
    return render_strokes(actions_to_strokes(actions, 1), height=size, width=size, mode="hard", backend="eager")


@torch.no_grad()
def draw_samples(model: torch.nn.Module, n: int, generator: torch.Generator, batch: int = 1000) -> torch.Tensor:
    """``n`` DRAW (or VAE) samples: the Bernoulli means ``sigmoid(c_T)`` of the last canvas, ``(n, 1, H, W)``."""
    out = []
    for i in range(0, n, batch):
        canvases, _ = model.sample(min(batch, n - i), generator=generator)
        out.append(torch.sigmoid(canvases[-1]).cpu())
    return torch.cat(out)


@torch.no_grad()
def rl_samples(painter: torch.nn.Module, n: int, generator: torch.Generator, batch: int = 500) -> torch.Tensor:
    """``n`` doodles of an unconditional painter (its Gaussian policy sampled with ``generator``), 64 px, hard."""
    out = []
    for i in range(0, n, batch):
        frames, _ = paint(painter, None, painter.episode_steps, 64, 64, batch=min(batch, n - i), generator=generator)
        out.append(frames[:, -1].cpu())
    return torch.cat(out)


def write_pictures(folder: str | Path, name: str, frames: np.ndarray) -> list[Path]:
    """``folder/name.gif`` (the frames, stroke by stroke) and ``folder/name.png`` (the last frame)."""
    folder = Path(folder)
    gif = write_gif(folder / f"{name}.gif", frames, duration_ms=150, hold_last_ms=2000)
    return [gif, save_grid(folder / f"{name}.png", frames[-1][None], nrow=1)]


def recipe_of(config: dict[str, Any], prior_components: int) -> str:
    """How a backprop doodler was trained, in a few words: its teacher, prior and discriminator weight."""
    parts = [f"teacher {config['teacher']}"] if config.get("teacher") else []
    parts.append(f"{prior_components}-Gaussian prior" if prior_components else "N(0, 1) prior")
    adversarial = config.get("adversarial", 1.0)
    parts.append(f"discriminator x{adversarial:g}" if adversarial else "no discriminator")
    return ", ".join(parts)


def budget_of(path: Path, ckpt: dict) -> dict[str, Any]:
    """Training budget of a checkpoint: iterations, minutes (its metrics log or clock), device, sizes."""
    config = ckpt.get("config", {})
    out: dict[str, Any] = {"iterations": int(ckpt.get("step", 0)), "device": config.get("device")}
    elapsed = ckpt.get("extra", {}).get("elapsed_s")
    if elapsed is not None:
        out["minutes"] = float(elapsed) / 60
    metrics = path.parent / "metrics.jsonl"
    if "minutes" not in out and metrics.is_file():
        minutes = [r["minutes"] for r in read_metrics(metrics) if "minutes" in r]
        if minutes:
            out["minutes"] = minutes[-1]
    for key in ("batch_size", "num_envs", "lr", "canvas_size", "strokes_per_step", "steps", "threads"):
        if key in config:
            out[key] = config[key]
    return out


def _quick_doodlers(cfg: BenchmarkConfig, device: torch.device, data_dir: str | None) -> tuple[list[str], list[str]]:
    """Train a tiny backprop doodler and a tiny RL doodler for a few seconds each (``--quick`` without models)."""
    from paintrnn.agents.doodle_train import DoodleConfig, train_doodle

    doodlers, rl = list(cfg.doodlers), list(cfg.rl_runs)
    if not doodlers:
        run = Path("runs") / "benchmark-quick-doodle"
        quick = {
            **DoodleConfig.quick(),
            "data_source": cfg.data_source,
            "iters": 30,
            "log_every": 30,
            "checkpoint_every": 30,
        }
        train_doodle(DoodleConfig(run_dir=str(run), device=str(device), data_dir=data_dir, seed=cfg.seed,
                                  resume="never", **quick))  # fmt: skip
        doodlers.append(str(run))
    if not rl:
        try:
            from paintrnn.agents.painter_gan import GANConfig, train_gan
        except ImportError:  # the environments are not installed
            return doodlers, rl
        run = Path("runs") / "benchmark-quick-gan"
        quick = {**GANConfig.quick(), "num_envs": 8, "canvas_size": 16, "steps": 2, "disc_width": 8, "iters": 3}
        train_gan(replace(GANConfig(), run_dir=str(run), device=str(device), data_dir=data_dir, seed=cfg.seed,
                          resume="never", **quick))  # fmt: skip
        rl.append(str(run))
    return doodlers, rl


def run_benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Measure every row and return the results (printed as a table by :func:`main`)."""
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    n = 500 if cfg.quick else cfg.n
    data_dir = find_data_dir(cfg)
    rows: list[dict[str, Any]] = []
    budget: dict[str, Any] = {"note": cfg.note} if cfg.note else {}

    def gen(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(cfg.seed * 7919 + offset)

    t0 = time.time()
    images, _ = load_mnist("train", data_dir, source=cfg.data_source)
    data = mnist_description(data_dir, cfg.data_source)
    real = torch.from_numpy(np.ascontiguousarray(images[:n])).float()[:, None] / 255
    rows.append(row_of(f"real digits ({len(real)} MNIST training digits: the floor)", sample_quality(real),
                       time.time() - t0, kind="real"))  # fmt: skip

    for label, name in (("DRAW, cpu preset (T=10)", cfg.draw), ("DRAW, paper configuration (T=64)", cfg.draw_paper)):
        if name is None:
            rows.append({"name": label, "fd": None, "kind": "draw", "note": "no checkpoint at hand"})
            continue
        t0 = time.time()
        model = paintrnn.load(name, device)
        q = sample_quality(draw_samples(model, n, gen(1)))
        rows.append(row_of(label, q, time.time() - t0, kind="draw", model=str(name)))
        budget[label] = {
            "steps": model.config.steps,
            **budget_of(checkpoint_path(name), load_checkpoint(checkpoint_path(name))),
        }

    if cfg.vae is None:
        rows.append({"name": "VAE baseline", "fd": None, "kind": "vae",
                     "note": "no VAE is shipped; pass --vae RUN (scripts/train_draw.py --vae)"})  # fmt: skip
    else:
        t0 = time.time()
        model = paintrnn.load(cfg.vae, device)
        rows.append(row_of("VAE baseline", sample_quality(draw_samples(model, n, gen(2))), time.time() - t0,
                           kind="vae", model=str(cfg.vae)))  # fmt: skip
        budget["VAE baseline"] = budget_of(checkpoint_path(cfg.vae), load_checkpoint(checkpoint_path(cfg.vae)))

    t0 = time.time()
    rows.append(row_of("random strokes (10 per image: the ceiling)", sample_quality(random_strokes(n, 10, 64, gen(3))),
                       time.time() - t0, kind="random", strokes=10))  # fmt: skip

    doodlers, rl_runs = _quick_doodlers(cfg, device, data_dir) if cfg.quick else (list(cfg.doodlers), list(cfg.rl_runs))
    for i, name in enumerate(doodlers):
        t0 = time.time()
        path = checkpoint_path(name)
        doodler = load_doodler(path, device)
        q = sample_quality(doodler.sample(n, 64, gen(10 + i)))
        strokes = doodler.spec.strokes
        recipe = recipe_of(doodler.train_config, doodler.spec.prior_components)
        label = f"backprop doodler, {strokes} strokes ({recipe})"
        b = budget_of(path, load_checkpoint(path))
        rows.append(row_of(label, q, time.time() - t0, kind="backprop", strokes=strokes, model=str(name),
                           recipe=recipe, iterations=b["iterations"], train_minutes=b.get("minutes")))  # fmt: skip
        budget[f"{label} ({name})"] = b
        if cfg.pictures:
            write_pictures(cfg.pictures, f"doodle_backprop_{strokes}", doodle_frames(doodler, 16))
    for i, name in enumerate(rl_runs):
        t0 = time.time()
        path = checkpoint_path(name)
        painter = load_painter(path, device)
        q = sample_quality(rl_samples(painter, n, gen(20 + i)))
        strokes = painter.episode_steps * painter.spec.strokes_per_step
        b = budget_of(path, load_checkpoint(path))
        details = (f", {b['num_envs']} envs" if "num_envs" in b else "") + (f", lr {b['lr']:g}" if "lr" in b else "")
        details += f", {b['iterations']} iterations"
        label = f"RL doodler (gan mode: PPO, discriminator reward), {strokes} strokes{details}"
        rows.append(row_of(label, q, time.time() - t0, kind="rl", strokes=strokes, model=str(name),
                           iterations=b["iterations"], train_minutes=b.get("minutes")))  # fmt: skip
        budget[f"{label} ({name})"] = b
        if cfg.pictures:
            frames = episode_frames(painter, None, painter.episode_steps, 16, 64, scale=2)
            write_pictures(cfg.pictures, f"doodle_rl_{strokes}", frames)

    return {"benchmark": "doodle", "quick": cfg.quick, "n": n, "data": data, "rows": rows,
            "machine": machine_info(device), "budget": budget, "targets": targets_of(rows)}  # fmt: skip


def targets_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, from the measured rows (the best backprop and RL doodler by ``fd``)."""

    def best(kind: str) -> dict[str, Any] | None:
        found = [r for r in rows if r.get("kind") == kind and r.get("fd") is not None]
        return min(found, key=lambda r: r["fd"]) if found else None

    def target(name: str, value: float, op: str, goal: float) -> dict[str, Any]:
        met = value <= goal if op == "<=" else value >= goal
        return {"name": name, "value": value, "op": op, "target": goal, "met": bool(met)}

    out = []
    bp, rl = best("backprop"), best("rl")
    draw = next((r for r in rows if r.get("kind") == "draw" and r.get("fd") is not None), None)
    if bp is not None and draw is not None:
        out.append(target(f"backprop doodler FD ({bp['strokes']} strokes) <= DRAW cpu preset FD", bp["fd"], "<=",
                          draw["fd"]))  # fmt: skip
    if bp is not None:
        name = f"backprop doodler ({bp['strokes']} strokes): smallest class fraction"
        out.append(target(name, bp["min_class_fraction"], ">=", MIN_CLASS))
    if bp is not None and rl is not None:
        out.append(target(f"RL doodler FD ({rl['strokes']} strokes) <= 2x backprop doodler FD", rl["fd"], "<=",
                          2 * bp["fd"]))  # fmt: skip
    return out


def format_table(result: dict[str, Any]) -> str:
    """The rows and targets as text."""
    w = max(len(r["name"]) for r in result["rows"])  # the widest row name
    lines = [f"{'row':<{w}} {'FD':>9} {'min class':>9} {'conf':>6} {'n':>6} {'train min':>9}"]
    for r in result["rows"]:
        if r.get("fd") is None:
            lines.append(f"{r['name']:<{w}} {'-':>9}  ({r.get('note', '')})")
            continue
        minutes = r.get("train_minutes")
        shown = f"{minutes:.1f}" if minutes is not None else "-"
        lines.append(f"{r['name']:<{w}} {r['fd']:9.2f} {r['min_class_fraction']:9.3f} {r['confidence']:6.3f} "
                     f"{r['n']:>6} {shown:>9}")  # fmt: skip
    for t in result["targets"]:
        lines.append(
            f"target: {t['name']}: {t['value']:.3f} {t['op']} {t['target']:.3f} -> {'met' if t['met'] else 'MISSED'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and the JSON (written to ``--json`` too); returns 0."""
    cfg = parse_config(BenchmarkConfig, argv, prog="paintrnn bench doodle")
    t0 = time.time()
    result = run_benchmark(cfg)
    result["wall_seconds"] = time.time() - t0
    print(format_table(result))
    text = json.dumps(result, indent=2)
    print(text)
    if cfg.json:
        atomic_write_bytes(cfg.json, (text + "\n").encode())
    return 0
