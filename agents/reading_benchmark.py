"""Benchmark: reading with attention. RAM and DRAW's read classifier on the papers' cluttered MNIST, and DRAM against
a whole-image CNN on rows of digits.

Rows come from finished run folders (``--from-runs DIR ...``; each DIR holds ``{task}_{model}/result.json`` for the
tasks ``cluttered60``, ``cluttered100`` (written by ``scripts/train_glimpse.py``, models ``ram`` and ``draw-read``)
and ``multidigit`` (written by ``scripts/train_reading.py``, models ``dram`` and ``cnn``); every run found is a
row), or are trained here (``--quick``: the bundled MNIST sample, seconds each, the same table; the numbers mean
nothing). A GNU ``time`` record beside a run folder (``{task}_{model}.time``: ``user system elapsed`` seconds)
adds the CPU minutes of the whole process.

Targets (the papers' numbers): RAM on 60 x 60 cluttered MNIST <= 4.04% error (Mnih et al. 2014, 8 glimpses);
DRAW's read classifier on 100 x 100 cluttered MNIST <= 3.36% (Gregor et al. 2015); the DRAM reader's sequence
error at or below the whole-image CNN's, trained for no more time (Ba et al. 2014 against Goodfellow et al.
2014). The RAM target uses the longest RAM run trained by REINFORCE (the paper's method; runs with pathwise
locations are rows of their own), DRAW's the longest run of its kind. The DRAM/CNN pair is two runs of one folder
on one device (trained side by side), DRAM with the default location training on rows without clutter when the
folders hold such a run, DRAM for no more minutes than the CNN; the longest such pair (pairs on cluttered rows are
rows of the table).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from paintrnn.agents import dram, glimpse_train

from paintrnn.config import parse_config
from paintrnn.scenes import CLUTTERED
from paintrnn.training import machine_info, resolve_device

RUNS = (  # (task, model) in table order
    ("cluttered60", "ram"), ("cluttered60", "draw-read"), ("cluttered100", "ram"), ("cluttered100", "draw-read"),
    ("multidigit", "dram"), ("multidigit", "cnn"),
)  # fmt: skip
PAPER = {("cluttered60", "ram"): 4.04, ("cluttered100", "ram"): 10.83, ("cluttered100", "draw-read"): 3.36}
"""The papers' test errors (%) for the same task and model (none for DRAW on 60 x 60, nor for MNIST rows)."""
MODEL_NAMES = {"ram": "RAM", "draw-read": "DRAW read classifier", "dram": "DRAM reader", "cnn": "CNN, whole image"}
SLACK = 1.02
"""The DRAM/CNN pair counts as 'no more training time' when DRAM trained at most 2% longer (log-line granularity)."""


@dataclass(frozen=True)
class BenchConfig:
    """Reading benchmark (RAM and DRAW-read on cluttered MNIST; DRAM against a whole-image CNN on rows of digits)."""

    from_runs: tuple[str, ...] = ()
    """Run folders holding {task}_{model}/result.json (each run found is a row); empty = train here."""
    quick: bool = False
    """Train tiny versions on the bundled MNIST sample (under a minute; the numbers mean nothing)."""
    runs_dir: str = "runs/benchmark_reading"
    """Where runs trained here are written."""
    device: str = "auto"
    """cpu, cuda or auto (training here)."""
    json: str | None = None
    """Write the results (rows, machine, budget, targets) to this JSON file."""


def collect(folders: Sequence[str]) -> list[tuple[str, str, dict]]:
    """``(task, model, result)`` of every ``{task}_{model}`` run found in ``folders`` (with ``cpu_minutes`` of the
    whole process when a ``{task}_{model}.time`` record lies beside the run folder)."""
    found = []
    for folder in folders:
        for task, model in RUNS:
            path = Path(folder) / f"{task}_{model}"
            if (path / "result.json").is_file():
                result = json.loads((path / "result.json").read_text())
                timing = Path(folder) / f"{task}_{model}.time"
                if timing.is_file():
                    user, system, _ = (float(x) for x in timing.read_text().split()[-3:])
                    result["process_cpu_minutes"] = (user + system) / 60
                result["folder"] = str(folder)
                found.append((task, model, result))
    return found


def train_here(cfg: BenchConfig) -> list[tuple[str, str, dict]]:
    """Tiny runs of every row on the bundled sample (``--quick``), or the real runs' settings otherwise."""
    if not cfg.quick:
        raise SystemExit("training every row takes hours: pass --from-runs DIR (see docs/agents/reading.md) or --quick")
    results = []
    for task, model in RUNS:
        run_dir = str(Path(cfg.runs_dir) / f"{task}_{model}")
        if task == "multidigit":
            run_cfg = dram.ReaderConfig(model=model, min_digits=2, max_digits=3, width=96, hidden=32, batch_size=16,
                                        iters=20, log_every=10, eval_every=20, test_size=100, data_source="sample",
                                        device=cfg.device, progress=False, gif=False, run_dir=run_dir)  # fmt: skip
            results.append((task, model, dram.train(run_cfg)[1]))
        else:
            run_cfg = glimpse_train.Config(task=task, model=model, glimpses=4, glimpse_size=12, scales=3, hidden=64,
                                           read_size=8, epochs=1, batch_size=64, train_limit=256, test_limit=200,
                                           data_source="sample", device=cfg.device, progress=False, gif=False,
                                           run_dir=run_dir)  # fmt: skip
            results.append((task, model, glimpse_train.train(run_cfg)[1]))
    return results


def _locations(r: dict) -> str:
    """How a RAM or DRAM run learned where to look (runs older than the option: REINFORCE)."""
    return r["config"].get("locations", "reinforce")


def _name(model: str, r: dict) -> str:
    pathwise = model in ("ram", "dram") and _locations(r) == "pathwise"
    return MODEL_NAMES[model] + (", pathwise locations" if pathwise else "")


def _row(task: str, model: str, r: dict) -> dict:
    c = r["config"]
    if task == "multidigit":
        attention = "whole image"
        if model == "dram":
            attention = (f"{c['glimpses_per_read']} glimpses per symbol, {c['glimpse_size']}x{c['glimpse_size']} "
                         f"retina, {c['scales']} scale(s), context / {c['context']}")  # fmt: skip
        return {
            "task": f"rows of {c['min_digits']}-{c['max_digits']} MNIST digits, {c['height']}x{c['width']}"
            + (f", {c['clutter']} distractors" if c["clutter"] else ""),
            "model": _name(model, r),
            "attention": attention,
            "error": "sequence",
            "test_error_pct": r["test_seq_error_pct"],
            "symbol_error_pct": r["test_symbol_error_pct"],
            "paper_error_pct": None,
            "n_test": r["n_test"],
            "budget": f"{r['iters_done']} iters x {c['batch_size']} rows",
            "train_minutes": round(r["train_minutes"], 2),
            "train_cpu_minutes": round(r["train_cpu_minutes"], 2),
            "process_cpu_minutes": round(r["process_cpu_minutes"], 2) if "process_cpu_minutes" in r else None,
            "device": r.get("device_name", r["device"]),
            "parameters": r["parameters"],
        }
    spec = CLUTTERED[task]
    if model == "ram":
        attention = f"{c['glimpses']} glimpses, {c['glimpse_size']}x{c['glimpse_size']} retina, {c['scales']} scale(s)"
    else:
        attention = f"{c['glimpses']} glimpses, {c['read_size']}x{c['read_size']} filterbank read"
    return {
        "task": f"cluttered MNIST {spec.canvas}x{spec.canvas}, {spec.clutter} distractors",
        "model": _name(model, r),
        "attention": attention,
        "error": "class",
        "test_error_pct": r["test_error_pct"],
        "symbol_error_pct": None,
        "paper_error_pct": PAPER.get((task, model)),
        "n_test": r["n_test"],
        "budget": f"{r['epochs_done']} epochs x {c.get('train_limit') or 60000} digits",
        "train_minutes": round(r["train_minutes"], 2),
        "train_cpu_minutes": None,
        "process_cpu_minutes": round(r["process_cpu_minutes"], 2) if "process_cpu_minutes" in r else None,
        "device": r.get("device_name", r["device"]),
        "parameters": r["parameters"],
    }


def _length(r: dict) -> float:
    return r.get("epochs_done", r.get("iters_done", 0))


def _fair(dram_run: dict, cnn_run: dict) -> bool:
    """A DRAM and a CNN run trained side by side (one folder, one device), DRAM for no more minutes."""
    same = (dram_run.get("folder"), dram_run["device"]) == (cnn_run.get("folder"), cnn_run["device"])
    return same and dram_run["train_minutes"] <= SLACK * cnn_run["train_minutes"]


def _pair_text(dram_run: dict, cnn_run: dict) -> str:
    clutter = dram_run["config"]["clutter"]
    return (f"{_name('dram', dram_run)} {dram_run['test_seq_error_pct']:.2f} against the CNN's "
            f"{cnn_run['test_seq_error_pct']:.2f}" + (f" on rows over {clutter} distractors" if clutter else "")
            + f" ({dram_run.get('device_name', dram_run['device'])}, {dram_run.get('folder')})")  # fmt: skip


def table(results: Sequence[tuple[str, str, dict]]) -> tuple[list[dict], list[dict]]:
    """The rows (in :data:`RUNS` order, shorter runs first) and the three targets."""
    order = sorted(results, key=lambda x: (RUNS.index((x[0], x[1])), _length(x[2])))
    rows = [_row(task, model, r) for task, model, r in order]
    targets = []
    for (task, model), target in ((("cluttered60", "ram"), 4.04), (("cluttered100", "draw-read"), 3.36)):
        runs = [r for t, m, r in results if (t, m) == (task, model) and (m != "ram" or _locations(r) == "reinforce")]
        if runs:
            longest = max(runs, key=_length)
            value = longest["test_error_pct"]
            targets.append({"name": f"{MODEL_NAMES[model]} test error, {task} (%)", "value": round(value, 2),
                            "op": "<=", "target": target, "met": value <= target,
                            "note": f"the longest run: {longest['epochs_done']} epochs, "
                                    f"{longest['train_minutes']:.1f} training minutes"})  # fmt: skip
    readers = [r for t, m, r in results if (t, m) == ("multidigit", "dram")]
    default = [r for r in readers if _locations(r) == dram.ReaderConfig.locations and not r["config"]["clutter"]]
    cnns = [r for t, m, r in results if (t, m) == ("multidigit", "cnn")]
    pairs = [(a, b) for a in (default or readers) for b in cnns if _fair(a, b)]
    if pairs:
        a, b = max(pairs, key=lambda p: p[0]["train_minutes"])
        others = [(x, y) for x in readers for y in cnns if _fair(x, y) and (x, y) != (a, b)]
        targets.append({
            "name": "DRAM reader sequence error (%) <= the CNN's, at no more training time",
            "value": round(a["test_seq_error_pct"], 2), "op": "<=", "target": round(b["test_seq_error_pct"], 2),
            "met": a["test_seq_error_pct"] <= b["test_seq_error_pct"],
            "note": f"{_name('dram', a)} {a['train_minutes']:.1f} min ({a['iters_done']} iters), "
                    f"CNN {b['train_minutes']:.1f} min ({b['iters_done']} iters), side by side on "
                    f"{a.get('device_name', a['device'])} ({a.get('folder')})"
                    + "".join(f"; also {_pair_text(x, y)}" for x, y in others),
        })  # fmt: skip
    return rows, targets


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line: ``python scripts/benchmark_reading.py --help``. Prints the table; returns the results dict."""
    cfg = parse_config(BenchConfig, argv, prog="paintrnn bench reading")
    results = collect(cfg.from_runs) if cfg.from_runs else train_here(cfg)
    if not results:
        raise SystemExit(f"no {{task}}_{{model}}/result.json found under {cfg.from_runs}")
    rows, targets = table(results)
    print(f"{'task':<50}{'model':<34}{'error':>7}{'paper':>7}  {'budget':<26}{'minutes':>8}{'cpu min':>8}  attention")
    for r in rows:
        cpu = r["train_cpu_minutes"] if r["train_cpu_minutes"] is not None else r["process_cpu_minutes"]
        cpu = float("nan") if cpu is None else cpu
        paper = r["paper_error_pct"] if r["paper_error_pct"] is not None else "-"
        print(f"{r['task']:<50}{r['model']:<34}{r['test_error_pct']:>7.2f}{paper:>7}  {r['budget']:<26}"
              f"{r['train_minutes']:>8.1f}{cpu:>8.1f}  {r['attention']}")  # fmt: skip
    for t in targets:
        print(f"target {t['name']}: {t['value']} {t['op']} {t['target']}: {'met' if t['met'] else 'MISSED'}")
    devices = sorted({r["device"] for r in rows})
    out = {
        "rows": rows,
        "targets": targets,
        "budget": {
            "per_run": "the budget, train_minutes (training clock, wall) and CPU minutes of each row; Adam, cosine "
                       "learning-rate schedule over the budget; on the CPU one thread, on a GPU (the device column) "
                       "two threads beside other runs on the same GPU",
            "source": "run folders: " + ", ".join(cfg.from_runs) if cfg.from_runs else "trained here",
            "quick": cfg.quick,
        },  # fmt: skip
        "machine": {**machine_info(resolve_device(cfg.device) if not cfg.from_runs else torch.device("cpu")),
                    "devices_of_rows": devices},  # fmt: skip
    }
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(out, indent=2) + "\n")
    return out
