"""DRAW benchmark: test bounds of finished training runs, and training speed / model FLOP utilisation.

``python scripts/benchmark_draw.py --from-runs runs/draw_cpu runs/draw_fast runs/draw_cpu_noattn runs/vae_cpu
runs/draw_paper --threads 1 2 --elbo-samples 24 --gap-images 10000 --json docs/results/draw.json`` prints one
table and writes the JSON the project's benchmarks share (``rows``, ``machine``, ``budget``, ``targets``).

Quality rows come from run folders written by ``scripts/train_draw.py`` (their ``eval.json``: the test
negative ELBO and IWAE bound in nats, with the training budget: epochs, minutes, device). A run's own -ELBO
uses one posterior draw per test image; ``--elbo-samples S`` re-evaluates each run's checkpoint here with S
draws per image (same test set) and reports that mean with its Monte Carlo standard error, which the targets
then use; ``--gap-images N`` also scores each checkpoint on the first N training digits it saw (binarised once
like the test set) and reports the generalisation gap, test minus train. The baseline measured in this run is
the best independent-pixel Bernoulli model (per-pixel training means, ~206 nats).

Speed rows time full training steps (forward, backward, Adam) of the paper configuration and others, and
divide the model's matrix-multiply FLOP/s (:func:`~paintrnn.agents.draw.model_flops_per_image`) by the
FLOP/s of a dense float32 matmul measured in the same run on the same threads: the model FLOP utilisation
(MFU). A straightforward implementation (``torch.nn.LSTMCell``, separate heads) is timed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from paintrnn.agents import vae
from paintrnn.agents.draw import DRAW, DrawConfig, load_model, model_flops_per_image, preset
from paintrnn.agents.draw_eval import evaluate
from paintrnn.agents.draw_train import mnist_fixed_set, mnist_test_set, saved_train_config
from torch import Tensor, nn

from paintrnn.attention import filterbank, read, window_from_raw, write
from paintrnn.data import binarize_fixed, load_mnist
from paintrnn.training import machine_info

PAPER_NLL = 80.97
CPU_TARGET_NLL = 100.0
MFU_TARGET = 0.5


class StraightforwardDRAW(nn.Module):
    """The textbook DRAW (attention on): ``nn.LSTMCell`` and one ``nn.Linear`` per head; the speed baseline."""

    def __init__(self, c: DrawConfig) -> None:
        super().__init__()
        self.c = c
        self.enc = nn.LSTMCell(2 * c.read_n**2 + c.dec_size, c.enc_size)
        self.dec = nn.LSTMCell(c.z_size, c.dec_size)
        self.mu, self.logsigma = nn.Linear(c.enc_size, c.z_size), nn.Linear(c.enc_size, c.z_size)
        self.read_win, self.write_win = nn.Linear(c.dec_size, 5), nn.Linear(c.dec_size, 5)
        self.patch = nn.Linear(c.dec_size, c.write_n**2)

    def forward(self, x: Tensor) -> Tensor:
        c, b = self.c, x.shape[0]
        h_enc = c_enc = x.new_zeros(b, c.enc_size)
        h_dec = c_dec = x.new_zeros(b, c.dec_size)
        canvas, kl = x.new_full(x.shape, c.canvas_init), 0.0
        for _ in range(c.steps):
            x_hat = x - torch.sigmoid(canvas)
            win = window_from_raw(self.read_win(h_dec), c.height, c.width, c.read_n)
            fx, fy = filterbank(win, c.read_n, c.height, c.width)
            r = torch.cat([read(x, fx, fy, win.gamma).flatten(1), read(x_hat, fx, fy, win.gamma).flatten(1)], 1)
            h_enc, c_enc = self.enc(torch.cat([r, h_dec], 1), (h_enc, c_enc))
            mu, logsigma = self.mu(h_enc), self.logsigma(h_enc)
            z = mu + logsigma.exp() * torch.randn_like(mu)
            kl = kl + 0.5 * (mu**2 + (2 * logsigma).exp() - 2 * logsigma - 1).sum(1)
            h_dec, c_dec = self.dec(z, (h_dec, c_dec))
            win = window_from_raw(self.write_win(h_dec), c.height, c.width, c.write_n)
            fx, fy = filterbank(win, c.write_n, c.height, c.width)
            canvas = canvas + write(self.patch(h_dec).view(b, 1, c.write_n, c.write_n), fx, fy, win.gamma)
        recon = nn.functional.binary_cross_entropy_with_logits(canvas, x, reduction="none").flatten(1).sum(1)
        return (recon + kl).mean()


def matmul_flops(size: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of a dense float32 ``size x size`` matmul on this machine, now."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - t0)


def train_speed(
    model: nn.Module, batch: int, iters: int, loss_of: Callable[[Tensor], Tensor], warmup: int = 2
) -> float:
    """Training images per second (forward with ``loss_of(x)``, backward, Adam step on ``model``'s parameters):
    the median step after ``warmup`` steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    times = []
    for i in range(iters + warmup):
        t0 = time.perf_counter()
        loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / sorted(times)[len(times) // 2]  # median step


def speed_rows(configs: dict[str, DrawConfig], batch: int, iters: int, compile_step: bool) -> list[dict]:
    rows = []
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = DRAW(cfg)
        variants: list[tuple[str, nn.Module, Callable[[Tensor], Tensor]]] = [
            ("paintrnn", model, lambda x, model=model: model(x).loss)
        ]
        if compile_step:
            compiled = DRAW(cfg)
            step_fn = torch.compile(compiled.step, dynamic=False)
            variants.append(
                ("paintrnn + torch.compile", compiled, lambda x, m=compiled, f=step_fn: m(x, step_fn=f).loss)
            )
        if cfg.attention and name == "paper":
            baseline = StraightforwardDRAW(cfg)
            variants.append(("straightforward (nn.LSTMCell)", baseline, baseline))
        for impl, model, loss_of in variants:
            peak_before = matmul_flops()
            rate = train_speed(model, batch, iters, loss_of, warmup=1 if iters < 4 else 2)
            peak = 0.5 * (peak_before + matmul_flops())  # the matmul rate around this measurement
            model_flops = model_flops_per_image(cfg) * rate
            print(f"speed: {name} / {impl}: {rate:.1f} images/s, MFU {model_flops / peak:.1%}", flush=True)
            rows.append(
                {"kind": "speed", "config": name, "implementation": impl, "batch": batch, "images_per_s": rate,
                 "model_gflops": model_flops / 1e9, "matmul_gflops": peak / 1e9, "mfu": model_flops / peak}
            )  # fmt: skip
    return rows


def pixel_baseline(data_dir: str | None) -> dict:
    """Test NLL of the best independent-pixel Bernoulli model (per-pixel means of the training images)."""
    train, _ = load_mnist("train", data_dir)
    test, _ = load_mnist("test", data_dir)
    p = torch.from_numpy(train).double().div(255).mean(0).clamp(1e-4, 1 - 1e-4)
    x = binarize_fixed(torch.from_numpy(test).double().div(255), 0)
    nll = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean().item()
    return {
        "kind": "quality",
        "name": "independent-pixel Bernoulli (baseline)",
        "test_nelbo": nll,
        "test_images": len(x),
    }


def reevaluate(
    folder: Path, train: dict, elbo_samples: int, data_dir: str | None, gap_images: int = 0
) -> dict[str, float]:
    """The -ELBO of a run's checkpoint on its own test set, averaged over ``elbo_samples`` draws per image; with
    ``gap_images``, also on a fixed binarisation of the first ``gap_images`` digits it trained on (``train_nelbo``)
    and the generalisation gap, test minus train."""
    cfg = saved_train_config({**train, "data_dir": data_dir, "progress": False})
    model = (vae.load_model if cfg.vae else load_model)(folder / "checkpoint.pt")

    def nelbo(images: torch.Tensor) -> dict[str, float]:
        res = evaluate(model, images, batch_size=cfg.eval_batch, seed=cfg.test_seed, elbo_samples=elbo_samples)
        return {k: res[k] for k in ("test_nelbo", "test_nelbo_mc_se", "elbo_samples") if k in res}

    result = nelbo(mnist_test_set(cfg))
    if gap_images:
        n = min(gap_images, cfg.train_images or gap_images)  # a run on fewer images: only those it saw
        on_train = nelbo(mnist_fixed_set(cfg, "train", n))
        result.update({k.replace("test", "train"): v for k, v in on_train.items() if k != "elbo_samples"})
        result.update(gap_images=n, generalisation_gap=result["test_nelbo"] - result["train_nelbo"])
    return result


def run_rows(
    folders: Sequence[str], elbo_samples: int = 1, data_dir: str | None = None, gap_images: int = 0
) -> list[dict]:
    """Quality rows from finished run folders; with ``elbo_samples > 1`` or ``gap_images`` their -ELBO is
    re-estimated here (see :func:`reevaluate`)."""
    rows = []
    for folder in folders:
        path = Path(folder) / "eval.json"
        if not path.is_file():
            print(f"skipping {folder}: no eval.json (run not finished)")
            continue
        ev = json.loads(path.read_text())
        model = ev["model"]
        name = "VAE (same latent budget)" if ev["train"].get("vae") else (
            f"DRAW T={model['steps']} {'attention' if model['attention'] else 'no attention'}"
        )  # fmt: skip
        iwae = {
            k: v for k, v in ev.items() if k.startswith("test_iwae") or k in ("iwae_images", "test_nelbo_iwae_images")
        }
        rows.append(
            {"kind": "quality", "name": name, "run": str(folder), "test_nelbo": ev["test_nelbo"], **iwae,
             "test_images": ev["test_images"], "epochs": ev["epochs"], "train_minutes": ev["train_minutes"],
             "device": ev["machine"].get("gpu", ev["machine"]["device"]), "machine": ev["machine"],
             "preset": ev["train"]["preset"], "model": model, "batch_size": ev["batch_size"],
             "stopped_by_time_limit": ev.get("stopped_by_time_limit", False)}
        )  # fmt: skip
        if elbo_samples > 1 or gap_images:
            again = reevaluate(Path(folder), ev["train"], elbo_samples, data_dir, gap_images)
            rows[-1].update(test_nelbo_run=ev["test_nelbo"], **again)
    return rows


def targets(rows: list[dict]) -> list[dict]:
    def best(pred) -> float | None:
        vals = [r["test_nelbo"] for r in rows if r["kind"] == "quality" and pred(r)]
        return min(vals) if vals else None

    cpu_attn = best(lambda r: r.get("model", {}).get("attention") and "cuda" not in r["machine"]["device"]
                    and r["train_minutes"] <= 60 and not r["name"].startswith("VAE"))  # fmt: skip
    gpu_paper = best(lambda r: r.get("preset") == "paper" and "cuda" in r["machine"]["device"])
    mfu = [
        r["mfu"] for r in rows if r["kind"] == "speed" and r["config"] == "paper" and r["implementation"] == "paintrnn"
    ]
    mfu = [max(mfu)] if mfu else []  # the best thread count
    return [
        {
            "name": "test NLL bound, attention, <= 60 min CPU training",
            "value": cpu_attn,
            "op": "<=",
            "target": CPU_TARGET_NLL,
        },
        {"name": "test NLL bound, paper configuration, GPU", "value": gpu_paper, "op": "<=", "target": PAPER_NLL},
        {
            "name": "MFU, paper configuration, CPU training (best thread count)",
            "value": mfu[0] if mfu else None,
            "op": ">=",
            "target": MFU_TARGET,
        },
    ]


def print_table(rows: list[dict], tgts: list[dict]) -> None:
    draws = max((r.get("elbo_samples", 1) for r in rows if r["kind"] == "quality"), default=1)
    head = f"{'-ELBO':>8} {f'(S={draws})':>9}" if draws > 1 else f"{'-ELBO':>8}"
    gap = any("generalisation_gap" in r for r in rows)
    head += f" {'gap':>6}" if gap else ""
    print(f"\n{'quality (nats, test set)':<44} {head} {'IWAE':>8} {'epochs':>7} {'minutes':>8}  device")
    for r in rows:
        if r["kind"] == "quality":
            iwae = next((v for k, v in r.items() if k.startswith("test_iwae")), None)  # on iwae_images images
            iwae_s = "-" if iwae is None else f"{iwae:.2f}"
            nelbo = f"{r['test_nelbo']:8.2f}"
            if draws > 1:
                se = r.get("test_nelbo_mc_se")
                nelbo += " " + ("" if se is None else f"+-{se:.3f}").rjust(9)
            if gap:
                nelbo += " " + ("-" if "generalisation_gap" not in r else f"{r['generalisation_gap']:.2f}").rjust(6)
            budget = f"{r.get('epochs', 0):7.1f} {r.get('train_minutes', 0):8.1f}  {r.get('device', '-')}"
            print(f"{r['name']:<44} {nelbo} {iwae_s:>8} {budget}")
    print(f"\n{'speed (training)':<56} {'img/s':>8} {'GFLOP/s':>8} {'matmul':>8} {'MFU':>6}")
    for r in rows:
        if r["kind"] == "speed":
            label = f"{r['config']} / {r['implementation']} (B={r['batch']}, {r['threads']} thr)"
            speed = f"{r['images_per_s']:8.1f} {r['model_gflops']:8.1f} {r['matmul_gflops']:8.1f} {r['mfu']:6.1%}"
            print(f"{label:<56} {speed}")
    print()
    for t in tgts:
        ok = t["value"] is not None and (t["value"] <= t["target"] if t["op"] == "<=" else t["value"] >= t["target"])
        val = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        print(f"target: {t['name']}: {val} {t['op']} {t['target']} -> {'met' if ok else 'NOT met'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_draw", description=__doc__.splitlines()[0])
    parser.add_argument("--from-runs", nargs="*", default=[], help="finished run folders (with eval.json)")
    parser.add_argument("--json", default=None, help="write the results here (e.g. docs/results/draw.json)")
    parser.add_argument("--quick", action="store_true", help="fewer timing iterations (under a minute)")
    parser.add_argument("--batch", type=int, default=100, help="training batch size for the speed rows")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd step")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/")
    parser.add_argument(
        "--elbo-samples", type=int, default=1, help="re-estimate each run's -ELBO here with this many draws per image"
    )
    parser.add_argument(
        "--gap-images",
        type=int,
        default=0,
        help="also estimate each run's -ELBO on the first N training digits (binarised once): the generalisation gap",
    )
    parser.add_argument(
        "--threads", type=int, nargs="*", default=[], help="CPU thread counts to time (default: torch's)"
    )
    args = parser.parse_args(argv)
    configs = {"paper": preset("paper")} if args.quick else {n: preset(n) for n in ("paper", "fast", "cpu")}
    load_before = os.getloadavg()[0]
    rows = [pixel_baseline(args.data_dir), *run_rows(args.from_runs, args.elbo_samples, args.data_dir, args.gap_images)]
    for threads in args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        rows += [
            {**r, "threads": threads} for r in speed_rows(configs, args.batch, 2 if args.quick else 6, args.compile)
        ]
    tgts = targets(rows)
    print_table(rows, tgts)
    if args.json:
        result = {
            "rows": rows,
            "machine": machine_info(torch.device("cpu")),
            "budget": {
                "speed": f"median of {2 if args.quick else 6} training steps at batch {args.batch}, CPU, "
                f"threads {args.threads or [torch.get_num_threads()]}; 1-min load average {load_before:.2f} "
                f"before, {os.getloadavg()[0]:.2f} after (other jobs on the machine slow these rows)",
                "quality": "see each row: epochs, train_minutes, device (from the run's eval.json); -ELBO "
                + (
                    f"re-estimated on this CPU with {args.elbo_samples} posterior draws per test image (the run's "
                    "own one-draw figure in test_nelbo_run)"
                    if args.elbo_samples > 1
                    else "from one posterior draw per test image"
                )
                + (
                    f"; generalisation_gap = test_nelbo - train_nelbo, the latter on the first {args.gap_images} "
                    "training digits binarised once with the test seed, same draws"
                    if args.gap_images
                    else ""
                ),
            },
            "targets": tgts,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
