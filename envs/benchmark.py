"""Environment steps per second: single env, ``SyncVectorEnv`` of single envs, and the native vector env.

Every env runs with its default arguments (64 x 64 px grey, MNIST targets, ``l2_delta`` reward, 1 stroke per
step; ``--size`` changes the canvas) and random actions sampled beforehand. The first row is what a user gets
from ``gym.make_vec("paintrnn/Paint-v0", num_envs=64)`` in a fresh process: its first step is timed, then it
steps until its renderer has switched to the compiled kernels (``render_backend="auto"`` compiles big batches in
a background thread, see :mod:`paintrnn.envs.renderer`), and the slowest of those warm-up steps is recorded
too. Each configuration is then timed in several interleaved rounds and the best round counts (the least
disturbed by other processes). Targets: on a 2-core CPU the native vector env with 64 envs is >= 20x faster per
environment step than ``SyncVectorEnv`` of 64 envs, both with default arguments, and no first step takes
more than 2 s.

    python scripts/benchmark_envs.py --json docs/results/envs.json [--quick] [--device cpu]
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from paintrnn.config import parse_config
from paintrnn.training import machine_info

from .batched import parse_autoreset_mode
from .canvas import CanvasConfig

TARGET_SPEEDUP = 20.0
"""Native vector env (64) / ``SyncVectorEnv`` (64), env steps per second, default arguments."""
TARGET_FIRST_STEP_S = 2.0
"""Longest acceptable first step of ``gym.make_vec(id, num_envs=64)``."""
STROKE_ENVS = ("paintrnn/Paint-v0", "paintrnn/PaintGrid-v0")
SETUPS = (  # (kind, num_envs, render_backend override or None): the defaults' native row first
    ("native", 64, None),
    ("sync", 64, None),
    ("single", 1, None),
    ("native", 256, None),
    ("native", 64, "eager"),
)
LABELS = {"single": "single env", "sync": "SyncVectorEnv", "native": "native vector env"}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Benchmark the paintrnn environments (steps per second)."""

    json: str | None = None
    """Write the results here (e.g. docs/results/envs.json)."""
    quick: bool = False
    """Fewer steps and rounds (same table)."""
    device: str = "cpu"
    """Device of the native vector envs ('cpu' or 'cuda'); single and Sync envs stay on the CPU."""
    size: int = 64
    """Canvas side in pixels (64: the envs' default)."""
    rounds: int = 3
    """Interleaved timing rounds per configuration (the best counts)."""
    seconds: float = 2.0
    """Approximate time budget of one round of one configuration."""
    render_backend: str | None = None
    """Renderer backend of the stroke envs' rows: None (the envs' default, 'auto'), 'eager' or 'compiled'. The
    extra 'eager' row of each stroke env is measured either way."""
    compile_timeout_s: float = 600.0
    """Longest wait, stepping, for a stroke env's background compile before its rounds are timed."""
    threads: int = 0
    """torch intra-op threads for every row (0: torch's default, one per core; single envs' small tensors stay
    on one thread either way)."""


def _make(env_id: str, kind: str, n: int, cfg: BenchmarkConfig, backend: str | None):
    """The env of one row, with only the arguments that differ from the defaults."""
    options: dict[str, Any] = {}
    if cfg.size != CanvasConfig.height or cfg.size != CanvasConfig.width:
        options.update(height=cfg.size, width=cfg.size)
    backend = backend or cfg.render_backend
    if env_id in STROKE_ENVS and backend is not None:
        options["render_backend"] = backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "single":
            return gym.make(env_id, **options), options
        if kind == "sync":
            mode = parse_autoreset_mode("next_step")
            env = gym.make_vec(env_id, n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **options)
            return env, options
        if cfg.device != "cpu":
            options["device"] = cfg.device
        return gym.make_vec(env_id, n, **options), options


def _step(env, kind: str, action) -> None:
    _, _, terminated, truncated, _ = env.step(action)
    if kind == "single" and (terminated or truncated):
        env.reset()


def _time_steps(env, kind: str, actions: list, budget_s: float) -> tuple[int, float]:
    """Step with ``actions`` (cycled) until ``budget_s`` has passed; return (vector steps, seconds)."""
    steps, start = 0, time.perf_counter()
    while True:
        _step(env, kind, actions[steps % len(actions)])
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s and steps >= 3:
            return steps, elapsed


def _warm_up(env, kind: str, actions: list, timeout_s: float, seen: set) -> dict[str, Any]:
    """First step, then (stroke envs with ``render_backend="auto"``) steps until the compiled renderer is in use.

    ``compile_s`` is the background compile's duration for the row that started it (``seen``: the compiles of
    earlier rows, which later rows of the same call shape reuse)."""
    start = time.perf_counter()
    _step(env, kind, actions[0])
    first = time.perf_counter() - start
    renderer = getattr(getattr(env.unwrapped, "sim", None), "renderer", None)
    slowest, steps = first, 1
    if renderer is not None and not renderer.settled:
        while not renderer.settled and time.perf_counter() - start < timeout_s:
            t = time.perf_counter()
            _step(env, kind, actions[steps % len(actions)])
            slowest, steps = max(slowest, time.perf_counter() - t), steps + 1
        t = time.perf_counter()  # the first step on the compiled kernels
        _step(env, kind, actions[steps % len(actions)])
        slowest, steps = max(slowest, time.perf_counter() - t), steps + 1
    _time_steps(env, kind, actions, 0.0)
    job = None if renderer is None else renderer.compile
    own = job is not None and id(job) not in seen
    if own:
        seen.add(id(job))
    return {
        "first_step_s": first,
        "max_warmup_step_s": slowest,
        "warmup_s": time.perf_counter() - start,
        "compiled": bool(renderer is not None and renderer.compiled),
        "compile_s": job.seconds if own else None,
    }


def run(cfg: BenchmarkConfig) -> dict:
    import paintrnn.envs

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rounds, seconds = (1, 0.5) if cfg.quick else (cfg.rounds, cfg.seconds)
    setups, seen = [], set()
    plan = [(e, *s) for e in paintrnn.envs.CANVAS_ENV_IDS for s in SETUPS if s[2] is None or e in STROKE_ENVS]
    for env_id, kind, n, backend in tqdm(plan, desc="setting up", disable=cfg.quick):
        env, options = _make(env_id, kind, n, cfg, backend)
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(16)]
        warm = _warm_up(env, kind, actions, cfg.compile_timeout_s, seen)
        setups.append({"env": env_id, "kind": kind, "num_envs": n, "options": options, "handle": env, **warm})
        setups[-1].update(actions=actions, best=0.0)
    for _ in tqdm(range(rounds), desc="rounds", disable=cfg.quick):
        for s in setups:
            steps, elapsed = _time_steps(s["handle"], s["kind"], s["actions"], seconds)
            s["best"] = max(s["best"], steps * s["num_envs"] / elapsed)
    rows = []
    for s in setups:
        s["handle"].close()
        backend = s["options"].get("render_backend", "auto") if s["env"] in STROKE_ENVS else None
        label = LABELS[s["kind"]] + (" (eager)" if s["kind"] == "native" and backend == "eager" else "")
        keys = ("first_step_s", "max_warmup_step_s", "warmup_s", "compiled", "compile_s")
        rows.append(
            {"env": s["env"], "setup": label, "num_envs": s["num_envs"], "env_steps_per_s": s["best"]}
            | {"options": s["options"], "render_backend": backend}
            | {k: s[k] for k in keys}
        )
    targets = []
    for env_id in paintrnn.envs.CANVAS_ENV_IDS:
        mine = [r for r in rows if r["env"] == env_id]
        sync = next(r for r in mine if r["setup"] == "SyncVectorEnv")["env_steps_per_s"]
        native = next(r for r in mine if r["setup"] == "native vector env" and r["num_envs"] == 64)
        for r in mine:
            r["speedup_vs_sync64"] = r["env_steps_per_s"] / sync
        targets.append({
            "name": f"{env_id}: native(64) / SyncVectorEnv(64) env steps per second, default arguments",
            "value": native["speedup_vs_sync64"], "op": ">=", "target": TARGET_SPEEDUP,
        })  # fmt: skip
        targets.append({
            "name": f"{env_id}: first step of gym.make_vec(id, num_envs=64), seconds",
            "value": native["first_step_s"], "op": "<=", "target": TARGET_FIRST_STEP_S,
        })  # fmt: skip
    machine = machine_info(torch.device(cfg.device))
    budget = {
        "rounds": rounds,
        "seconds_per_round": seconds,
        "canvas": f"{cfg.size}x{cfg.size} grey",
        "strokes_per_step": 1,
        "target": "mnist",
        "reward": "l2_delta",
    }
    return {"rows": rows, "machine": machine, "budget": budget, "targets": targets, "config": asdict(cfg)}


def _met(t: dict) -> bool:
    return t["value"] >= t["target"] if t["op"] == ">=" else t["value"] <= t["target"]


def format_table(result: dict) -> str:
    lines = [
        f"{'env':22s} {'setup':26s} {'envs':>4s} {'env steps/s':>11s} {'vs sync64':>9s} {'1st step':>8s} "
        f"{'slowest':>8s}"
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['env']:22s} {r['setup']:26s} {r['num_envs']:4d} {r['env_steps_per_s']:11.1f} "
            f"{r['speedup_vs_sync64']:8.1f}x {r['first_step_s']:7.3f}s {r['max_warmup_step_s']:7.3f}s"
            + (f"  (compiled in the background in {r['compile_s']:.1f} s)" if r["compile_s"] else "")
        )
    for t in result["targets"]:
        lines.append(f"target {t['name']}: {t['value']:.3g} {t['op']} {t['target']} ({'met' if _met(t) else 'MISSED'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(BenchmarkConfig, argv)
    result = run(cfg)
    print(format_table(result))
    if cfg.json:
        path = Path(cfg.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return result
