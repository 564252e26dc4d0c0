"""Benchmark of the painter on the MNIST test set (64 px grey canvas): MSE per pixel at 5 and 10 strokes.

Rows: (a) the backprop painter, (b) the RL painters with ``l2_delta``: PPO (model-free) and model-based DDPG
(Learning to Paint's algorithm, the renderer as its model), (c) a per-image baseline that
optimises the same number of strokes directly by gradient descent through the soft renderer (an upper
reference; evaluated, like the painters, with the hard renderer), and the blank canvas. Painters come from
finished run folders (``--from-runs DIR ...``, the mode is read from each checkpoint) or are trained here
(``--quick``: a few seconds each, for a smoke test of the whole pipeline).

    python scripts/benchmark_painter.py --from-runs runs/painter-backprop runs/painter-ppo runs/painter-ddpg \
        --json out.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from paintrnn.agents.painter import Painter, actions_to_strokes, evaluate_mse, load_model
from paintrnn.agents.painter_backprop import BackpropConfig, to_canvas, train_backprop
from paintrnn.agents.painter_train import mnist_digits

from paintrnn.config import parse_config
from paintrnn.render import render_strokes
from paintrnn.training import (
    atomic_write_bytes,
    machine_info,
    progress,
    read_metrics,
    resolve_device,
    seed_everything,
)

COUNTS = (5, 10)
TARGETS = {5: 0.015, 10: 0.008}
LABELS = {
    "backprop": "(a) backprop painter",
    "ppo": "(b) RL painter (PPO, l2_delta)",
    "ddpg": "(b) RL painter (model-based DDPG, l2_delta)",
}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Evaluate painters and the per-image stroke-optimisation baseline on MNIST test digits at 64 px."""

    json: str | None = None
    """Write the results (rows, machine, budget, targets) to this JSON file."""
    quick: bool = False
    """Smoke test: train tiny painters for a few seconds here and evaluate on few digits."""
    from_runs: tuple[str, ...] = ()
    """Run folders holding finished painter checkpoints (backprop, ppo, ddpg); trained here with --quick when absent."""
    device: str = "auto"
    """cpu, cuda or auto."""
    data_dir: str | None = None
    """Folder holding MNIST (tried after ../shared/data; the bundled sample when nothing is found)."""
    n_test: int = 10000
    """Test digits for the painters (--quick: 200)."""
    n_baseline: int = 500
    """Test digits for the per-image baseline, the first n of the painters' (--quick: 32)."""
    baseline_iters: int = 300
    """Adam steps per image for the baseline (--quick: 60)."""
    seed: int = 0
    """Seed of the baseline's initial strokes and of any training done here."""
    note: str = ""
    """Free text stored in the JSON's budget (e.g. how and where the runs were trained)."""
    threads: int = 1
    """torch CPU threads (0 = torch's default); one thread is much faster on a shared, busy CPU."""


def find_data_dir(cfg: BenchmarkConfig) -> str | None:
    """``--data-dir``, else ``../shared/data`` when it holds MNIST, else the default (cache or sample)."""
    if cfg.data_dir is not None:
        return cfg.data_dir
    shared = Path("..") / "shared" / "data"
    return str(shared) if (shared / "mnist").is_dir() else None


def optimise_strokes(
    targets: torch.Tensor, n_strokes: int, iters: int, seed: int = 0, lr: float = 0.05, show: bool = False
) -> torch.Tensor:
    """The baseline: ``n_strokes`` strokes per target ``(B, 1, H, W)`` fitted by Adam through the soft renderer.

    Strokes are parametrised like the painter's actions (``tanh`` of free values through
    :func:`actions_to_strokes`), start at random places, and are fitted with the same loss as backprop
    training (L2 plus L2 of 4x pooled images), with the edge sharpness annealed from 1 to 4 px.
    Returns ``(B, n_strokes, 11)`` strokes.
    """
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = targets.shape
    raw = torch.randn(B, n_strokes * (10 + C), generator=g).to(targets.device) * 0.5
    raw = raw.view(B, n_strokes, 10 + C)
    raw[..., 8:] += 1.5  # start opaque and bright, so every stroke gets a gradient from the start
    raw = raw.reshape(B, -1).requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=lr)
    for i in progress(range(iters), enabled=show, desc=f"baseline {n_strokes} strokes", leave=False):
        sharp = 1.0 + 3.0 * i / max(1, iters - 1)
        canvas = render_strokes(actions_to_strokes(torch.tanh(raw), C), height=H, width=W, mode="soft", sharpness=sharp)
        loss = F.mse_loss(canvas, targets) + F.mse_loss(F.avg_pool2d(canvas, 4), F.avg_pool2d(targets, 4))
        opt.zero_grad(set_to_none=True)
        (loss * B).backward()
        opt.step()
    return actions_to_strokes(torch.tanh(raw.detach()), C)


def run_benchmark(cfg: BenchmarkConfig) -> dict:
    """Evaluate every row and return the results dict (also printed as a table by :func:`main`)."""
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    n_test, n_base, base_iters = (200, 32, 60) if cfg.quick else (cfg.n_test, cfg.n_baseline, cfg.baseline_iters)
    data_dir = find_data_dir(cfg)
    test = mnist_digits("test", data_dir, n=n_test)
    rows, budget = [], {"note": cfg.note} if cfg.note else {}
    blank = float((to_canvas(test, 64) ** 2).mean())
    rows.append({"name": "blank canvas", "mse_5": blank, "mse_10": blank, "n_test": len(test), "seconds": 0.0})

    painters: dict[str, tuple[Painter, Path]] = {}
    for run in cfg.from_runs:
        painter = load_model(Path(run) / "checkpoint.pt", device)
        painters[painter.mode] = (painter, Path(run))
    if "backprop" not in painters and cfg.quick:
        run = Path("runs") / "benchmark-quick-backprop"
        quick = BackpropConfig(
            run_dir=str(run),
            device=str(device),
            data_dir=data_dir,
            iters=150,
            batch_size=16,
            canvas_size=32,
            eval_size=16,
            log_every=150,
            progress=True,
            checkpoint_every=150,
            seed=cfg.seed,
            resume="never",
        )
        train_backprop(quick)
        painters["backprop"] = (load_model(run / "checkpoint.pt", device), run)
    if cfg.quick:
        painters.update(_quick_rl(cfg, device, data_dir, skip=set(painters)))

    for mode in LABELS:
        if mode not in painters:
            rows.append({"name": LABELS[mode], "mse_5": None, "mse_10": None, "note": "no checkpoint given"})
            continue
        painter, run = painters[mode]
        t0 = time.time()
        mse = evaluate_mse(painter, test.to(device), max(COUNTS), size=64, show=True)
        rows.append(
            {
                "name": LABELS[mode],
                "mode": mode,
                "mse_5": mse[4],
                "mse_10": mse[9],
                "n_test": len(test),
                "seconds": time.time() - t0,
                "run": str(run),
            }
        )
        budget[mode] = _training_budget(painter, run)

    sub = to_canvas(test[:n_base], 64).to(device)
    row = {"name": f"(c) per-image stroke optimisation ({base_iters} Adam steps)", "n_test": len(sub)}
    t0 = time.time()
    for n in COUNTS:
        strokes = optimise_strokes(sub, n, base_iters, seed=cfg.seed, show=True)
        hard = render_strokes(strokes, height=64, width=64, mode="hard")
        row[f"mse_{n}"] = float(((hard - sub) ** 2).mean())
    row["seconds"] = time.time() - t0
    rows.append(row)
    budget["baseline"] = {"adam_steps_per_image": base_iters, "images": len(sub), "seconds": row["seconds"]}

    by = {r.get("mode"): r for r in rows if r.get("mse_5") is not None}
    targets = []
    for n in COUNTS:
        if "backprop" not in by:
            continue
        bp = by["backprop"][f"mse_{n}"]
        targets.append({"name": f"backprop painter MSE at {n} strokes", "value": bp, "op": "<=", "target": TARGETS[n]})
        for mode, what in (("ppo", "PPO"), ("ddpg", "model-based DDPG")):
            if mode in by:
                name = f"RL painter ({what}) MSE at {n} strokes (target: 2x backprop)"
                targets.append({"name": name, "value": by[mode][f"mse_{n}"], "op": "<=", "target": 2 * bp})
    machine = machine_info(torch.device(device))
    return {
        "benchmark": "painter",
        "quick": cfg.quick,
        "data": str(data_dir),
        "canvas": "64x64 grey",
        "rows": rows,
        "machine": machine,
        "budget": budget,
        "targets": targets,
    }


def _training_budget(painter: Painter, run: Path) -> dict:
    """How long and on what the painter was trained (from its config and metrics)."""
    config = painter.train_config
    out = {"iterations": painter.trained_iters, "device": config.get("device")}
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        rows = read_metrics(metrics)
        minutes = [r["minutes"] for r in rows if "minutes" in r]
        if minutes:
            out["minutes"] = minutes[-1]
        if rows and "machine" in rows[-1]:
            out["machine"] = rows[-1]["machine"]
    for key in ("batch_size", "num_envs", "rollout", "total_steps", "canvas_size", "strokes_per_step", "steps"):
        if key in config:
            out[key] = config[key]
    return out


def _quick_rl(
    cfg: BenchmarkConfig, device: torch.device, data_dir: str | None, skip: set[str]
) -> dict[str, tuple[Painter, Path]]:
    """Smoke-train a PPO and a DDPG painter for a few seconds each (``--quick``), except the modes in ``skip``."""
    try:
        from paintrnn.agents.painter_ddpg import DDPGConfig, train_ddpg
        from paintrnn.agents.painter_ppo import PPOConfig, train_ppo
    except ImportError:  # the environments are not installed
        return {}
    out = {}
    for mode, config, train in (("ppo", PPOConfig, train_ppo), ("ddpg", DDPGConfig, train_ddpg)):
        if mode in skip:
            continue
        run = Path("runs") / f"benchmark-quick-{mode}"
        quick = replace(
            config(),
            run_dir=str(run),
            device=str(device),
            seed=cfg.seed,
            data_dir=data_dir,
            resume="never",
            **config.quick(),
        )
        train(quick)
        out[mode] = (load_model(run / "checkpoint.pt", device), run)
    return out


def format_table(result: dict) -> str:
    lines = [f"{'row':<52} {'MSE@5':>9} {'MSE@10':>9} {'n':>6} {'seconds':>8}"]
    for r in result["rows"]:
        f = lambda v: f"{v:9.5f}" if isinstance(v, float) else f"{'-':>9}"
        lines.append(
            f"{r['name']:<52} {f(r['mse_5'])} {f(r['mse_10'])} {r.get('n_test', '-'):>6} {r.get('seconds', 0.0):8.1f}"
        )
    for t in result["targets"]:
        ok = t["value"] <= t["target"]
        lines.append(
            f"target: {t['name']}: {t['value']:.5f} {t['op']} {t['target']:.5f} -> {'met' if ok else 'MISSED'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and the JSON (written to ``--json`` too); returns 0."""
    cfg = parse_config(BenchmarkConfig, argv, prog="benchmark_painter.py")
    t0 = time.time()
    result = run_benchmark(cfg)
    result["wall_seconds"] = time.time() - t0
    print(format_table(result))
    print(f"wall time {result['wall_seconds']:.1f} s")
    text = json.dumps(result, indent=2)
    print(text)
    if cfg.json:
        atomic_write_bytes(cfg.json, (text + "\n").encode())
    return 0
