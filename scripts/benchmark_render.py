"""Benchmark the stroke renderer against the Learning to Paint method (circles along the curve, PIL).

Strokes per second, batch of B canvases with one RGB stroke each, strokes drawn like Learning to Paint's
uniform actions (end points uniform, control point inside their box, radius up to a quarter of the side):
  ours, hard, forward (no grad)          ours, soft, forward + backward
  baseline: ~100 filled circles along the Bézier on a 2x canvas (PIL ImageDraw, radius and opacity
  interpolated), bilinear downsampling to the target size, then alpha compositing (NumPy), stroke by stroke.
``python scripts/benchmark_render.py [--quick] [--json docs/results/render.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from paintrnn.render import render_strokes, stroke_size


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


def timed(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up call (compilation stays out of the timing)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (same table, < 1 min)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--batch", type=int, default=256, help="canvases (one stroke each)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 10, quick 3)")
    parser.add_argument("--backend", default="auto", choices=["auto", "eager", "compiled"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 10)
    rows, rate = [], {}
    for size in (64, 128):
        s = ltp_strokes(args.batch, seed=size)
        s_np = s.numpy().astype(np.float64)

        def hard(s=s, size=size):
            with torch.no_grad():
                render_strokes(s, height=size, width=size, mode="hard", backend=args.backend)

        def soft(s=s, size=size):
            p = s.clone().requires_grad_(True)
            render_strokes(p, height=size, width=size, mode="soft", backend=args.backend).square().sum().backward()

        for name, fn, r in (
            ("ours hard forward", hard, reps),
            ("ours soft forward+backward", soft, reps),
            ("PIL circles (LTP) forward", lambda s_np=s_np, size=size: pil_baseline(s_np, size), max(1, reps // 3)),
        ):
            sec = timed(fn, r)
            rate[(name, size)] = args.batch / sec
            rows.append(
                {"method": name, "size": size, "batch": args.batch, "seconds": sec, "strokes_per_s": args.batch / sec}
            )
    targets = [
        {
            "name": "hard_fwd_64_speedup_vs_pil",
            "op": ">=",
            "target": 10,
            "value": rate[("ours hard forward", 64)] / rate[("PIL circles (LTP) forward", 64)],
        },
        {
            "name": "soft_fwdbwd_128_vs_pil_fwd",
            "op": ">=",
            "target": 2,
            "value": rate[("ours soft forward+backward", 128)] / rate[("PIL circles (LTP) forward", 128)],
        },
    ]
    print(f"{'method':<30} {'size':>5} {'strokes/s':>11} {'x PIL':>7}")
    for row in rows:
        base = rate[("PIL circles (LTP) forward", row["size"])]
        print(f"{row['method']:<30} {row['size']:>5} {row['strokes_per_s']:>11.0f} {row['strokes_per_s'] / base:>7.2f}")
    for t in targets:
        ok = t["value"] >= t["target"]
        print(f"target {t['name']}: {t['value']:.2f} (>= {t['target']}) {'met' if ok else 'MISSED'}")
    result = {
        "rows": rows,
        "targets": targets,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "device": "cpu",
        },
        "budget": {
            "batch": args.batch,
            "reps": reps,
            "quick": args.quick,
            "backend": args.backend,
            "strokes": "Learning to Paint uniform actions, RGB, one stroke per canvas",
        },
    }
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
