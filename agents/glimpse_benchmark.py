"""Benchmark: RAM test error on MNIST and 60x60 translated MNIST, beside a whole-image CNN and random glimpses.

Rows come from finished run folders (``--from-runs DIR ...``; each DIR holds ``{task}_{model}/result.json`` as
written by ``scripts/train_glimpse.py``; every run found is a row, so one task can show several budgets), or
are trained here (``--quick``: the bundled MNIST sample, a few epochs, under a minute; the same table).
Targets (Mnih et al. 2014 report 1.07% and 1.20%): <= 1.2% on MNIST, <= 1.5% on translated MNIST (the RAM
run with the most epochs), and glimpses chosen by the policy must beat random glimpses of the same network by
a clear margin: at most 0.75 x the ablation's error, compared at the same budget (planned epochs and minutes).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from paintrnn.agents.glimpse_train import Config, train

from paintrnn.config import parse_config

TASKS = {  # task -> glimpse settings of the paper's best rows
    "mnist": dict(task="mnist", glimpses=7, glimpse_size=8, scales=1),
    "translated": dict(task="translated", canvas=60, glimpses=8, glimpse_size=12, scales=3),
}
MODELS = ("ram", "random", "cnn")
MARGIN = 0.75


@dataclass(frozen=True)
class BenchConfig:
    """Glimpse benchmark (RAM vs random glimpses vs a whole-image CNN)."""

    from_runs: tuple[str, ...] = ()
    """Run folders holding {task}_{model}/result.json (each run found is a row); empty = train here."""
    quick: bool = False
    """Train tiny versions on the bundled MNIST sample (under a minute; the numbers mean little)."""
    epochs: int = 1
    """Epochs for each model when training here (with --quick: on 1024 sample digits, tested on 500)."""
    runs_dir: str = "runs/benchmark_glimpse"
    """Where runs trained here are written."""
    data_dir: str | None = None
    """Folder with the MNIST files when training here without --quick."""
    device: str = "auto"
    """cpu, cuda or auto (training here)."""
    json: str | None = None
    """Write the results (rows, machine, budget, targets) to this JSON file."""


def collect(folders: Sequence[str]) -> list[tuple[str, str, dict]]:
    """``(task, model, result.json)`` of every ``{task}_{model}`` run found in ``folders``."""
    found = []
    for folder in folders:
        for task in TASKS:
            for model in MODELS:
                path = Path(folder) / f"{task}_{model}" / "result.json"
                if path.is_file():
                    found.append((task, model, json.loads(path.read_text())))
    return found


def budget(result: dict) -> tuple[int, float | None]:
    """A run's planned budget: (epochs, time limit in minutes); the schedule runs over whichever ends first."""
    return result["config"]["epochs"], result["config"].get("time_limit_min")


def train_here(cfg: BenchConfig) -> list[tuple[str, str, dict]]:
    results = []
    for task, settings in TASKS.items():
        for model in MODELS:
            run_cfg = Config(
                **settings, model=model, epochs=cfg.epochs, eval_every=cfg.epochs, device=cfg.device,
                data_source="sample" if cfg.quick else "auto", data_dir=cfg.data_dir, progress=False, gif=False,
                run_dir=str(Path(cfg.runs_dir) / f"{task}_{model}"), batch_size=64 if cfg.quick else 128,
                train_limit=1024 if cfg.quick else None, test_limit=500 if cfg.quick else None,
            )  # fmt: skip
            results.append((task, model, train(run_cfg)[1]))
    return results


def table(results: Sequence[tuple[str, str, dict]]) -> tuple[list[dict], list[dict]]:
    rows, targets = [], []
    order = sorted(results, key=lambda x: (x[0], MODELS.index(x[1]), x[2]["epochs_done"]))
    for task, model, r in order:
        c = r["config"]
        rows.append({
            "task": "MNIST 28x28" if task == "mnist" else f"translated MNIST {c['canvas']}x{c['canvas']}",
            "model": {"ram": "RAM", "random": "RAM, random glimpses (ablation)", "cnn": "CNN, whole image"}[model],
            "glimpses": c["glimpses"] if model != "cnn" else None,
            "retina": f"{c['glimpse_size']}x{c['glimpse_size']}, {c['scales']} scale(s)" if model != "cnn" else None,
            "train_shift_px": c.get("shift", 0),
            "test_error_pct": r["test_error_pct"],
            "n_test": r["n_test"],
            "epochs": r["epochs_done"],
            "train_minutes": round(r["train_minutes"], 2),
            "device": r.get("device_name", r["device"]),
            "parameters": r["parameters"],
        })  # fmt: skip
    for task, target in (("mnist", 1.2), ("translated", 1.5)):
        ram = [r for t, m, r in results if (t, m) == (task, "ram")]
        if ram:
            longest = max(ram, key=lambda r: r["epochs_done"])
            targets.append({"name": f"RAM test error, {task} (%)", "value": longest["test_error_pct"], "op": "<=",
                            "target": target, "note": f"the longest RAM run: {longest['epochs_done']} epochs"})
        pairs = [(a, b) for a in ram for t, m, b in results if (t, m) == (task, "random") and budget(a) == budget(b)]
        if pairs:  # the policy against random glimpses at the same budget (the longest such pair)
            a, b = max(pairs, key=lambda p: p[0]["epochs_done"])
            ratio = a["test_error_pct"] / max(b["test_error_pct"], 1e-9)
            targets.append({"name": f"RAM error / random-glimpse error, {task}", "value": round(ratio, 3), "op": "<=",
                            "target": MARGIN, "note": f"same budget: {a['epochs_done']} / {b['epochs_done']} epochs"})
    return rows, targets


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(BenchConfig, argv, prog="benchmark_glimpse")
    results = collect(cfg.from_runs) if cfg.from_runs else train_here(cfg)
    if not results:
        raise SystemExit(f"no {{task}}_{{model}}/result.json found under {cfg.from_runs}")
    rows, targets = table(results)
    print(
        f"{'task':<26}{'model':<34}{'glimpses':>9}  {'retina':<20}{'shift':>6}{'error %':>8}{'epochs':>8}"
        f"{'minutes':>9}  device"
    )
    for r in rows:
        print(f"{r['task']:<26}{r['model']:<34}{r['glimpses'] or '-':>9}  {r['retina'] or 'whole image':<20}"
              f"{r['train_shift_px']:>6}"
              f"{r['test_error_pct']:>8.2f}{r['epochs']:>8}{r['train_minutes']:>9.2f}  {r['device']}")  # fmt: skip
    for t in targets:
        ok = t["value"] <= t["target"]
        print(f"target {t['name']}: {t['value']} {t['op']} {t['target']}: {'met' if ok else 'MISSED'}")
    out = {
        "rows": rows,
        "targets": targets,
        "budget": {
            "per_run": "the train_minutes and epochs of each row (Adam, batch 128, cosine schedule over the budget)",
            "source": "run folders: " + ", ".join(cfg.from_runs) if cfg.from_runs else "trained here",
            "quick": cfg.quick,
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "device": sorted({r["device"] for r in rows}),
        },
    }
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(out, indent=2) + "\n")
    return out
