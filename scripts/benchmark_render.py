"""Benchmark the stroke renderer against the Learning to Paint method (circles along the curve, PIL).

Strokes per second, batch of B canvases with one RGB stroke each, strokes drawn like Learning to Paint's
uniform actions (end points uniform, control point inside their box, radius up to a quarter of the side):
  ours, hard, forward (no grad)          ours, soft, forward + backward of a square-sum loss
  (square-sum loss alone: that loss's forward + backward on a leaf of the output's shape, for reference)
  baseline: ~100 filled circles along the Bézier on a 2x canvas (PIL ImageDraw, radius and opacity
  interpolated), bilinear downsampling to the target size, then alpha compositing (NumPy), stroke by stroke.
Each setting runs in a fresh process: torch threads (``--threads 1,0``; 0 = torch's default) times the
allocator (``--malloc glibc,keep``: glibc's default, which unmaps and re-faults every tensor above 32 MB,
or ``keep``, :func:`paintrnn.training.keep_freed_memory`, what the training scripts use). The targets are
judged on torch's default threads with ``keep``; every other setting is in the table. Within a process the
methods are timed in interleaved rounds, so the ratio to PIL (measured under the same setting) is robust to
load. ``python scripts/benchmark_render.py [--quick] [--threads 1,0] [--json docs/results/render.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from paintrnn.render import render_strokes, stroke_size
from paintrnn.training import keep_freed_memory


def ltp_strokes(batch: int, seed: int) -> torch.Tensor:
    """``(batch, 1, 13)`` strokes from Learning to Paint's action distribution, in our layout."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, 1, stroke_size(3), generator=g)
    s[..., 2:4] = s[..., 0:2] + (s[..., 4:6] - s[..., 0:2]) * s[..., 2:4]  # control point between the ends
    s[..., 6:8] *= 0.5  # radius up to 1/4 of the side (LTP: 1 + z * width // 2 on a 2x canvas)
    return s


def pil_baseline(strokes: np.ndarray, size: int, circles: int = 100) -> np.ndarray:
    """Learning to Paint's renderer: filled circles along the curve on a 2x canvas, downsampled."""
    big = 2 * size
    t = np.linspace(0.0, 1.0, circles)
    canvas = np.zeros((strokes.shape[0], size, size, strokes.shape[-1] - 10), np.float32)
    for b, (x0, y0, x1, y1, x2, y2, r0, r2, a0, a2, *colour) in enumerate(strokes[:, 0]):
        xs = ((1 - t) ** 2 * x0 + 2 * t * (1 - t) * x1 + t**2 * x2) * big
        ys = ((1 - t) ** 2 * y0 + 2 * t * (1 - t) * y1 + t**2 * y2) * big
        rs = ((1 - t) * r0 + t * r2) * big
        alphas = np.round(((1 - t) * a0 + t * a2) * 255).astype(int)
        mask = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(mask)
        for x, y, r, a in zip(xs.tolist(), ys.tolist(), rs.tolist(), alphas.tolist()):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=a)
        alpha = np.asarray(mask.resize((size, size), Image.BILINEAR), np.float32)[..., None] / 255.0
        canvas[b] = canvas[b] * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    return canvas


def timed(fns: dict, reps: int) -> dict:
    """Median seconds of each function over ``reps`` rounds that call them in turn (interleaved, so that a
    changing machine load hits every method alike), after two warm-up calls (compilation stays out)."""
    for fn in fns.values():
        fn()
        fn()
    times: dict = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


PIL_ROW = "PIL circles (LTP) forward"


def measure(batch: int, reps: int, backend: str, threads: int, malloc: str) -> list[dict]:
    """Rows of the table for one setting (threads ``0``: torch's default), measured in this process."""
    if threads:
        torch.set_num_threads(threads)
    if malloc == "keep" and not keep_freed_memory():
        raise SystemExit("--malloc keep needs glibc (Linux)")
    rows = []
    for size in (64, 128):
        s = ltp_strokes(batch, seed=size)
        s_np = s.numpy().astype(np.float64)
        leaf = torch.rand(batch, 3, size, size, requires_grad=True)

        def hard(s=s, size=size):
            with torch.no_grad():
                render_strokes(s, height=size, width=size, mode="hard", backend=backend)

        def soft(s=s, size=size):
            p = s.clone().requires_grad_(True)
            render_strokes(p, height=size, width=size, mode="soft", backend=backend).square().sum().backward()

        def loss(leaf=leaf):
            leaf.grad = None
            leaf.square().sum().backward()

        fns = {
            "ours hard forward": hard,
            "ours soft forward+backward": soft,
            "(square-sum loss of soft, alone)": loss,
            PIL_ROW: lambda s_np=s_np, size=size: pil_baseline(s_np, size),
        }
        for name, sec in timed(fns, reps).items():
            rows.append(
                {
                    "method": name,
                    "size": size,
                    "batch": batch,
                    "threads": torch.get_num_threads(),
                    "malloc": malloc,
                    "seconds": sec,
                    "strokes_per_s": batch / sec,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (same table, < 1 min)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--batch", type=int, default=256, help="canvases (one stroke each)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 10, quick 3)")
    parser.add_argument("--backend", default="auto", choices=["auto", "eager", "compiled"])
    parser.add_argument(
        "--threads",
        default="1,0",
        help="comma-separated torch thread counts, each measured in a fresh process; 0 = torch's default "
        "(the targets are judged on the default)",
    )
    parser.add_argument(
        "--malloc",
        default="glibc,keep",
        help="comma-separated allocator settings, each in a fresh process: 'glibc' (default behaviour) or 'keep' "
        "(paintrnn.training.keep_freed_memory; the targets are judged on it)",
    )
    parser.add_argument("--child-malloc", default="glibc", help=argparse.SUPPRESS)  # internal
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # internal: one setting
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 10)
    if args.child is not None:
        print(json.dumps(measure(args.batch, reps, args.backend, args.child, args.child_malloc)))
        return {}
    load_before = os.getloadavg()[0]
    rows, defaults = [], None
    mallocs = args.malloc.split(",")
    for malloc in mallocs:
        for threads in (int(t) for t in args.threads.split(",")):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--batch", str(args.batch)]
            cmd += ["--reps", str(reps), "--backend", args.backend, "--child-malloc", malloc]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            part = json.loads(out.strip().splitlines()[-1])
            rows += part
            if threads == 0:
                defaults = part[0]["threads"]
    judged = (defaults if defaults is not None else rows[0]["threads"], "keep" if "keep" in mallocs else mallocs[0])
    rate = {(r["method"], r["size"], r["threads"], r["malloc"]): r["strokes_per_s"] for r in rows}

    def ratio(method: str, size: int, threads: int, malloc: str) -> float:
        return rate[(method, size, threads, malloc)] / rate[(PIL_ROW, size, threads, malloc)]

    targets = [
        {"name": "hard_fwd_64_speedup_vs_pil", "op": ">=", "target": 10},
        {"name": "soft_fwdbwd_128_vs_pil_fwd", "op": ">=", "target": 2},
    ]
    cases = {
        "hard_fwd_64_speedup_vs_pil": ("ours hard forward", 64),
        "soft_fwdbwd_128_vs_pil_fwd": ("ours soft forward+backward", 128),
    }
    for t in targets:
        t["value"] = ratio(*cases[t["name"]], *judged)
        t["threads"], t["malloc"] = judged
    print(f"{'method':<34} {'size':>5} {'threads':>7} {'malloc':>6} {'strokes/s':>11} {'x PIL':>7}")
    for row in rows:
        x = ratio(row["method"], row["size"], row["threads"], row["malloc"])
        print(
            f"{row['method']:<34} {row['size']:>5} {row['threads']:>7} {row['malloc']:>6} "
            f"{row['strokes_per_s']:>11.0f} {x:>7.2f}"
        )
    for t in targets:
        ok = t["value"] >= t["target"]
        print(
            f"target {t['name']} ({judged[0]} threads, malloc {judged[1]}): {t['value']:.2f} (>= {t['target']}) "
            f"{'met' if ok else 'MISSED'}"
        )
    result = {
        "rows": rows,
        "targets": targets,
        "ratios_by_setting": {
            f"{th} threads, malloc {m}": {name: ratio(*case, th, m) for name, case in cases.items()}
            for th, m in sorted({(r["threads"], r["malloc"]) for r in rows})
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "default_threads": judged[0],
            "load_average_1min_before": load_before,
            "load_average_1min_after": os.getloadavg()[0],
            "device": "cpu",
        },
        "budget": {
            "batch": args.batch,
            "reps": reps,
            "quick": args.quick,
            "backend": args.backend,
            "threads": args.threads,
            "malloc": args.malloc,
            "strokes": "Learning to Paint uniform actions, RGB, one stroke per canvas",
            "timing": "median of interleaved rounds after 2 warm-up calls; each thread setting in a fresh process",
        },
    }
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
