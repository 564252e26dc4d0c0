"""Environment steps per second: single env, ``SyncVectorEnv`` of single envs, and the native vector env.

Every env runs at 64 x 64 px (grey, MNIST targets, ``l2_delta`` reward, 1 stroke per step) with random
actions sampled beforehand. Each configuration is timed in several interleaved rounds and the best round
counts (the least disturbed by other processes). Target (issue 3): on a 2-core CPU the native vector env
with 64 envs is >= 20x faster per environment step than ``SyncVectorEnv`` of 64 envs.

    python scripts/benchmark_envs.py --json docs/results/envs.json [--quick] [--device cpu]
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import torch
from tqdm.auto import tqdm

from paintrnn.config import parse_config

from .batched import parse_autoreset_mode

TARGET_SPEEDUP = 20.0


@dataclass(frozen=True)
class BenchmarkConfig:
    """Benchmark the paintrnn environments (steps per second)."""

    json: str | None = None
    """Write the results here (e.g. docs/results/envs.json)."""
    quick: bool = False
    """Fewer steps and rounds (same table, under a minute)."""
    device: str = "cpu"
    """Device of the native vector envs ('cpu' or 'cuda'); single and Sync envs stay on the CPU."""
    size: int = 64
    """Canvas side in pixels."""
    rounds: int = 3
    """Interleaved timing rounds per configuration (the best counts)."""
    seconds: float = 2.0
    """Approximate time budget of one round of one configuration."""
    render_backend: str = "auto"
    """Renderer backend of the stroke envs: 'auto' (torch.compile for the large native batches, eager for the
    small single-env calls), 'eager' (the envs' default) or 'compiled'."""
    threads: int = 0
    """torch intra-op threads for every row (0: torch's default, one per core; single envs' small tensors stay
    on one thread either way)."""


def _make(env_id: str, kind: str, n: int, size: int, device: str, backend: str):
    options = {"height": size, "width": size}
    if env_id != "paintrnn/Draw-v0":
        options["render_backend"] = backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "single":
            return gym.make(env_id, **options)
        if kind == "sync":
            mode = parse_autoreset_mode("next_step")
            return gym.make_vec(env_id, n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **options)
        return gym.make_vec(env_id, n, device=device, **options)


def _time_steps(env, kind: str, actions: list, budget_s: float) -> tuple[int, float]:
    """Step with ``actions`` (cycled) until ``budget_s`` has passed; return (vector steps, seconds)."""
    steps, start = 0, time.perf_counter()
    while True:
        obs, reward, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        steps += 1
        if kind == "single" and (terminated or truncated):
            env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s and steps >= 3:
            return steps, elapsed


def run(cfg: BenchmarkConfig) -> dict:
    import paintrnn.envs

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rounds, seconds = (1, 0.5) if cfg.quick else (cfg.rounds, cfg.seconds)
    kinds = [("single", 1), ("sync", 64), ("native", 64), ("native", 256)]
    setups = []
    for env_id in paintrnn.envs.CANVAS_ENV_IDS:
        for kind, n in kinds:
            env = _make(env_id, kind, n, cfg.size, cfg.device, cfg.render_backend)
            env.reset(seed=0)
            env.action_space.seed(0)
            actions = [env.action_space.sample() for _ in range(16)]
            _time_steps(env, kind, actions, 0.0)  # warm up
            setups.append({"env": env_id, "kind": kind, "num_envs": n, "handle": env, "actions": actions, "best": 0.0})
    for _ in tqdm(range(rounds), desc="rounds", disable=cfg.quick):
        for s in setups:
            steps, elapsed = _time_steps(s["handle"], s["kind"], s["actions"], seconds)
            s["best"] = max(s["best"], steps * s["num_envs"] / elapsed)
    rows = []
    for s in setups:
        s["handle"].close()
        label = {"single": "single env", "sync": "SyncVectorEnv", "native": "native vector env"}[s["kind"]]
        rows.append({"env": s["env"], "setup": label, "num_envs": s["num_envs"], "env_steps_per_s": s["best"]})
    targets = []
    for env_id in paintrnn.envs.CANVAS_ENV_IDS:
        rate = {(r["setup"], r["num_envs"]): r["env_steps_per_s"] for r in rows if r["env"] == env_id}
        speedup = rate[("native vector env", 64)] / rate[("SyncVectorEnv", 64)]
        for r in rows:
            if r["env"] == env_id:
                r["speedup_vs_sync64"] = r["env_steps_per_s"] / rate[("SyncVectorEnv", 64)]
        targets.append(
            {
                "name": f"{env_id}: native(64) / SyncVectorEnv(64) env steps per second",
                "value": speedup,
                "op": ">=",
                "target": TARGET_SPEEDUP,
            }
        )
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": cfg.device,
        "gpu": torch.cuda.get_device_name() if cfg.device.startswith("cuda") else None,
    }
    budget = {
        "rounds": rounds,
        "seconds_per_round": seconds,
        "canvas": f"{cfg.size}x{cfg.size} grey",
        "strokes_per_step": 1,
        "target": "mnist",
        "reward": "l2_delta",
    }
    return {"rows": rows, "machine": machine, "budget": budget, "targets": targets, "config": asdict(cfg)}


def format_table(result: dict) -> str:
    lines = [f"{'env':24s} {'setup':20s} {'envs':>5s} {'env steps/s':>12s} {'vs sync64':>10s}"]
    for r in result["rows"]:
        lines.append(
            f"{r['env']:24s} {r['setup']:20s} {r['num_envs']:5d} {r['env_steps_per_s']:12.1f} "
            f"{r['speedup_vs_sync64']:9.1f}x"
        )
    for t in result["targets"]:
        ok = "met" if t["value"] >= t["target"] else "MISSED"
        lines.append(f"target {t['name']}: {t['value']:.1f} {t['op']} {t['target']} ({ok})")
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
