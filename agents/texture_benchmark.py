"""Benchmark the spatial LSTM texture model against a linear AR model and a small PixelCNN.

For every texture in `../shared/data/textures/` the models are trained on crops of the top 75% of the
image and scored in bits per pixel on the 64 x 64 crops of the held-out bottom 25%:

- **spatial LSTM**: `paintrnn.agents.texture` trained by `texture_train.train`;
- **linear AR**: a Gaussian whose mean is linear in the same causal neighbourhood, fitted in closed form
  (least squares) on the same crops and discretised exactly to the 256 values;
- **PixelCNN**: masked convolutions (van den Oord et al. 2016) with about as many parameters and the
  same logistic mixture output, trained on the same crops for the same number of steps.

It also times training steps of the wavefront against a naive raster loop at 64 x 64 and the
synthesis of a 256 x 256 texture, and writes the README pictures (`--docs`).

    python scripts/benchmark_texture.py --json docs/results/texture.json --docs docs
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.texture import (
    TextureModel,
    causal_offsets,
    inpaint,
    inpainting_frames,
    sample,
    sampling_frames,
    scale,
)
from paintrnn.agents.texture_train import (
    CropSampler,
    TrainConfig,
    eval_crops,
    inpainting_example,
    lr_at,
    split_rows,
    train,
)
from torch import Tensor, nn

from paintrnn.config import parse_config
from paintrnn.data import load_image, texture_path
from paintrnn.distributions import DiscretizedLogisticMixture
from paintrnn.media import save_png, side_by_side, write_gif
from paintrnn.training import machine_info, progress, seed_everything


def default_textures() -> str:
    """`../shared/data/textures` beside the checkout when present, else the bundled copies of the same images."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "textures"
    return str(shared if shared.is_dir() else texture_path("brick").parent)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Spatial LSTM vs linear AR vs PixelCNN on held-out texture crops, plus speed measurements."""

    textures: str | None = None
    """Folder of texture images, each split 75% / 25% by rows (default: ../shared/data/textures)."""
    iters: int = 6400
    """Optimiser steps for the spatial LSTM and the PixelCNN."""
    crop: int = 32
    """Training crop side."""
    batch_size: int = 16
    """Crops per training step."""
    hidden: int = 32
    """Spatial LSTM hidden units."""
    layers: int = 1
    """Spatial LSTM layers."""
    head_hidden: int = 80
    """Hidden units of the spatial LSTM model's per-pixel output MLP."""
    head_layers: int = 2
    """Hidden layers of that MLP."""
    radius: int = 3
    """Causal neighbourhood radius of the spatial LSTM and the linear AR (wavefront slope radius + 1)."""
    lr: float = 1e-2
    """Peak learning rate of the spatial LSTM (and the centre of the PixelCNN's sweep)."""
    grad_clip: float = 100.0
    """Gradient-norm clipping of both networks."""
    pixelcnn_lr_factors: tuple[float, ...] = (0.3, 1.0, 3.0)
    """The PixelCNN is trained at lr times each factor; the best on the held-out crops is reported (favouring
    the baseline)."""
    progress: bool = True
    """Show progress bars."""
    pixelcnn_channels: int = 32
    """PixelCNN feature maps (its depth is chosen to match the spatial LSTM's parameter count)."""
    eval_crop: int = 64
    """Side of the held-out evaluation crops."""
    sample_size: int = 256
    """Side of the timed synthesised texture."""
    quick: bool = False
    """A fast smoke run (few steps, small sizes): the same table in under a minute."""
    json: str | None = None
    """Write the results here."""
    docs: str | None = None
    """Write README pictures (samples, GIFs) into this folder."""
    seed: int = 0
    """Random seed."""

    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {"--steps": "--iters"}
    """Old command-line flags still accepted, with a deprecation message."""


def flips_for(name: str) -> str:
    """Augmentation the texture allows: brick has perspective (no up-down flip), the rest both."""
    return "h" if "brick" in name else "hv"


# --- baselines ----------------------------------------------------------------------------------------------


class LinearAR:
    """`x_p ~ N(w . neighbourhood_p + b, s^2)`, discretised to the 256 values with open outer bins."""

    def __init__(self, radius: int, slope: int) -> None:
        self.offsets = causal_offsets(radius, slope)
        self.radius = radius

    def features(self, values: Tensor) -> Tensor:
        """`(B, H, W, 1)` integers -> `(B*H*W, K + 1)` neighbourhoods (scaled, zero-padded) and a 1."""
        xs = scale(values).double()
        r, (_, h, w, _) = self.radius, values.shape
        padded = F.pad(xs, (0, 0, r, r, r, 0))
        cols = [padded[:, r + di : r + di + h, r + dj : r + dj + w, 0] for di, dj in self.offsets]
        return torch.stack([*cols, torch.ones_like(xs[..., 0])], -1).reshape(-1, len(cols) + 1)

    def fit(self, batches: Sequence[Tensor]) -> None:
        """Least squares (the Gaussian maximum likelihood) on all pixels of the given batches."""
        gram, cross, sq, n = 0.0, 0.0, 0.0, 0
        for values in batches:
            a, y = self.features(values), scale(values).double().reshape(-1)
            gram, cross, sq, n = gram + a.T @ a, cross + a.T @ y, sq + y @ y, n + len(y)
        self.weights = torch.linalg.solve(gram + 1e-6 * torch.eye(len(gram), dtype=gram.dtype), cross)
        self.sigma = math.sqrt(max((sq - cross @ self.weights) / n, 1e-12))

    def bits_per_pixel(self, values: Tensor) -> float:
        mean = self.features(values) @ self.weights
        x = scale(values).double().reshape(-1)
        upper = torch.where(x >= 1, 1.0, torch.special.ndtr((x + 1 / 255 - mean) / self.sigma))
        lower = torch.where(x <= -1, 0.0, torch.special.ndtr((x - 1 / 255 - mean) / self.sigma))
        return float(-torch.log((upper - lower).clamp_min(1e-300)).mean() / math.log(2))


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only pixels before the centre in raster order (type "A") or also it ("B")."""

    def __init__(self, c_in: int, c_out: int, kernel: int, kind: str) -> None:
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, kernel // 2, kernel // 2 + (kind == "B") :] = 0
        mask[:, :, kernel // 2 + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """A small PixelCNN: a 7x7 type-A masked conv, residual 3x3 type-B blocks, a logistic mixture head."""

    def __init__(self, channels: int, blocks: int, components: int) -> None:
        super().__init__()
        self.dist = DiscretizedLogisticMixture(1, components)
        self.first = MaskedConv2d(1, channels, 7, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B") for _ in range(blocks))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                 nn.Conv2d(channels, self.dist.num_params, 1))

    def forward(self, values: Tensor) -> Tensor:
        h = self.first(scale(values).permute(0, 3, 1, 2))  # (B, C, H, W)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.out(h).permute(0, 2, 3, 1)  # (B, H, W, P)

    def bits_per_dim(self, values: Tensor) -> Tensor:
        return -self.dist.log_prob(self(values), values).mean() / math.log(2)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_pixelcnn(target: int, channels: int, components: int) -> PixelCNN:
    """The PixelCNN whose parameter count is closest to `target`."""
    return min((PixelCNN(channels, b, components) for b in range(1, 16)), key=lambda m: abs(num_params(m) - target))


def train_pixelcnn(model: PixelCNN, sampler: CropSampler, steps: int, lr: float, grad_clip: float,
                   bar: bool = True) -> float:
    """Adam with the same schedule and clipping as the spatial LSTM; returns seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for step in progress(range(steps), enabled=bar, desc="pixelcnn", leave=False):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        loss = model.bits_per_dim(sampler())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def mean_bits(model: nn.Module, crops: Tensor, batch: int = 8) -> float:
    model.eval()
    return sum(float(model.bits_per_dim(crops[i : i + batch])) * len(crops[i : i + batch])
               for i in range(0, len(crops), batch)) / len(crops)


# --- speed --------------------------------------------------------------------------------------------------


def raster_forward(model: TextureModel, values: Tensor) -> Tensor:
    """The texture model's forward with every spatial LSTM run as a naive loop, one cell per pixel."""
    feat = model.neighbourhood(scale(values))
    h = feat
    for layer in model.layers:
        b, height, width, _ = h.shape
        zero = torch.zeros(b, layer.hidden_size)
        gates, states = layer.input(h), {}
        for i in range(height):
            for j in range(width):
                up, left, up_right = (states.get(k, (zero, zero)) for k in ((i - 1, j), (i, j - 1), (i - 1, j + 1)))
                states[i, j] = layer.cell(gates[:, i, j], up, left, up_right)
        h = torch.stack([torch.stack([states[i, j][0] for j in range(width)], 1) for i in range(height)], 1)
    return model.head_params(h, feat)


def steps_per_second(model: TextureModel, forward, batch: Tensor, repeats: int) -> float:
    """Full training steps (forward, backward, Adam) per second."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    for _ in range(repeats):
        loss = -model.dist.log_prob(forward(batch), batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return repeats / (time.perf_counter() - t0)


# --- the benchmark ------------------------------------------------------------------------------------------


def texture_row(cfg: BenchmarkConfig, path: Path, docs: Path | None) -> dict:
    name = path.stem
    image = load_image(path, 1)
    top, bottom = split_rows(image, 0.25)
    test = eval_crops([bottom], cfg.eval_crop)
    run = Path("runs") / "benchmark_texture" / name
    tcfg = TrainConfig(texture=str(path), hidden=cfg.hidden, layers=cfg.layers, head_hidden=cfg.head_hidden,
                       head_layers=cfg.head_layers, radius=cfg.radius, slope=cfg.radius + 1, lr=cfg.lr,
                       grad_clip=cfg.grad_clip, progress=cfg.progress, crop=cfg.crop,
                       batch_size=cfg.batch_size, iters=cfg.iters, flips=flips_for(name), holdout=0.25,
                       eval_every=max(cfg.iters // 4, 1), checkpoint_every=cfg.iters, run_dir=str(run),
                       resume="never", seed=cfg.seed, device="cpu", sample_size=64 if cfg.quick else 96)
    model, summary = train(tcfg)
    slstm_bits = mean_bits(model, test)

    # Baselines see exactly the crops the spatial LSTM saw: the same sampler with the same seed.
    def same_crops() -> CropSampler:
        return CropSampler([top], cfg.crop, cfg.batch_size, tcfg.flips, seed_everything(cfg.seed))

    crops = same_crops()
    linear = LinearAR(tcfg.radius, tcfg.slope)
    t0 = time.perf_counter()
    linear.fit([crops() for _ in range(cfg.iters)])
    linear_seconds = time.perf_counter() - t0
    sweep = []  # (bits, lr, seconds, model) per learning rate
    for factor in cfg.pixelcnn_lr_factors:
        seed_everything(cfg.seed)
        pixelcnn = matched_pixelcnn(num_params(model), cfg.pixelcnn_channels, tcfg.components)
        seconds = train_pixelcnn(pixelcnn, same_crops(), cfg.iters, cfg.lr * factor, cfg.grad_clip, cfg.progress)
        sweep.append((mean_bits(pixelcnn, test), cfg.lr * factor, seconds, pixelcnn))
    pixelcnn_bits, pixelcnn_lr, pixelcnn_seconds, pixelcnn = min(sweep, key=lambda x: x[0])

    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    synth = sample(model, 1, cfg.sample_size, cfg.sample_size, generator=gen)
    sample_seconds = time.perf_counter() - t0
    if docs is not None:
        write_pictures(docs, name, model, image, synth, gen, cfg.quick)
    return {
        "texture": name,
        "slstm_bits_per_pixel": slstm_bits,
        "linear_ar_bits_per_pixel": linear.bits_per_pixel(test),
        "pixelcnn_bits_per_pixel": pixelcnn_bits,
        "pixelcnn_lr": pixelcnn_lr,
        "pixelcnn_bits_by_lr": {f"{lr:g}": bits for bits, lr, _, _ in sweep},
        "slstm_params": num_params(model),
        "pixelcnn_params": num_params(pixelcnn),
        "linear_ar_params": len(linear.weights) + 1,
        "slstm_train_seconds": summary["minutes"] * 60,  # evaluation excluded
        "pixelcnn_train_seconds": pixelcnn_seconds,
        "linear_ar_fit_seconds": linear_seconds,
        "sample_seconds": sample_seconds,
        "sample_size": cfg.sample_size,
        "_model": model,
    }


def write_pictures(docs: Path, name: str, model: TextureModel, image: np.ndarray, synth: Tensor,
                   gen: torch.Generator, quick: bool) -> None:
    """Source beside synthesis, the sampling GIF and the inpainting example (on held-out rows)."""
    s = synth.shape[1]
    source = image[:s, :s, 0]
    save_png(docs / f"texture_{name}_samples.png", side_by_side(source, synth[0, ..., 0].numpy()))
    size = 48 if quick else 96
    write_gif(docs / f"texture_{name}_sampling.gif",
              sampling_frames(model, size, size, num=3, frames=50, generator=gen), duration_ms=60, scale=2)
    crop, missing = inpainting_example(image[-size:], size)  # from the held-out rows
    refine = 3 if quick else 20
    frames = inpainting_frames(model, crop, missing, frames=50 + refine, refine_steps=refine, generator=gen)
    write_gif(docs / f"texture_{name}_inpainting.gif", frames, duration_ms=60, scale=2)
    filled = inpaint(model, crop, missing, refine_steps=refine, generator=gen)[0, ..., 0].numpy()
    holed = crop[0, ..., 0].masked_fill(missing[0], 0).numpy().astype(np.uint8)
    save_png(docs / f"texture_{name}_inpainting.png",
             side_by_side(crop[0, ..., 0].numpy().astype(np.uint8), holed, filled), scale=2)


def speed_row(model: TextureModel, quick: bool) -> dict:
    """Training steps per second at 64 x 64, wavefront vs raster loop, same model, batch of 4."""
    size = 16 if quick else 64
    batch = torch.randint(0, 256, (4, size, size, 1), generator=torch.Generator().manual_seed(0))
    model = replace_model(model)
    wave = steps_per_second(model, model, batch, 2 if quick else 5)
    raster = steps_per_second(model, lambda v: raster_forward(model, v), batch, 1)
    return {"size": size, "wavefront_steps_per_second": wave, "raster_steps_per_second": raster,
            "speedup": wave / raster}


def replace_model(model: TextureModel) -> TextureModel:
    """A fresh copy (the speed test takes optimiser steps)."""
    copy = TextureModel(model.config)
    copy.load_state_dict(model.state_dict())
    return copy


def run(cfg: BenchmarkConfig) -> dict:
    torch.set_num_threads(1)
    if cfg.quick:
        cfg = replace(cfg, iters=min(cfg.iters, 15), crop=16, batch_size=4, hidden=16, head_hidden=16, eval_crop=32,
                      sample_size=32)
    folder = Path(cfg.textures or default_textures())
    paths = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"no textures (*.png) in {folder}: pass --textures FOLDER")
    docs = Path(cfg.docs) if cfg.docs else None
    rows = [texture_row(cfg, p, docs) for p in paths]
    speed = speed_row(rows[0]["_model"], cfg.quick)
    for row in rows:
        del row["_model"]
    targets = []
    for row in rows:
        t = row["texture"]
        targets += [
            {"name": f"{t}: linear AR minus spatial LSTM (bits/px)", "op": ">=", "target": 0.3,
             "value": row["linear_ar_bits_per_pixel"] - row["slstm_bits_per_pixel"]},
            {"name": f"{t}: PixelCNN minus spatial LSTM (bits/px)", "op": ">=", "target": 0.0,
             "value": row["pixelcnn_bits_per_pixel"] - row["slstm_bits_per_pixel"]},
            {"name": f"{t}: seconds to sample {row['sample_size']}x{row['sample_size']}", "op": "<=",
             "target": 60.0, "value": row["sample_seconds"]},
        ]
    targets.append({"name": f"wavefront / raster training steps per second at {speed['size']}x{speed['size']}",
                    "op": ">=", "target": 10.0, "value": speed["speedup"]})
    for t in targets:
        t["met"] = bool(t["value"] >= t["target"] if t["op"] == ">=" else t["value"] <= t["target"])
    return {
        "rows": rows,
        "speed": speed,
        "targets": targets,
        "budget": {"iters": cfg.iters, "batch_size": cfg.batch_size, "crop": cfg.crop, "hidden": cfg.hidden,
                   "threads": 1, "note": "per texture: the spatial LSTM and the PixelCNN get the same steps, crops and "
                   "schedule (the PixelCNN at each learning rate of its sweep, best reported); the linear AR is "
                   "fitted in closed form on those crops"},
        "config": asdict(cfg),
        "machine": machine_info(torch.device("cpu")),
    }


def print_table(result: dict) -> None:
    head = f"{'texture':<8} {'SLSTM':>7} {'linearAR':>9} {'PixelCNN':>9} {'(its lr)':>9} {'params S/P':>13} " \
           f"{'train s S/P':>13} {'sample s':>9}"
    print("bits per pixel on held-out crops (lower is better)")
    print(head)
    for r in result["rows"]:
        print(f"{r['texture']:<8} {r['slstm_bits_per_pixel']:>7.3f} {r['linear_ar_bits_per_pixel']:>9.3f} "
              f"{r['pixelcnn_bits_per_pixel']:>9.3f} {r['pixelcnn_lr']:>9.2g} "
              f"{r['slstm_params']:>6}/{r['pixelcnn_params']:<6} "
              f"{r['slstm_train_seconds']:>6.0f}/{r['pixelcnn_train_seconds']:<6.0f} {r['sample_seconds']:>9.1f}")
    s = result["speed"]
    print(f"training steps/s at {s['size']}x{s['size']}: wavefront {s['wavefront_steps_per_second']:.3f}, "
          f"raster loop {s['raster_steps_per_second']:.4f}, speedup {s['speedup']:.1f}x")
    for t in result["targets"]:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['name']}: {t['value']:.3f} {t['op']} {t['target']}")


def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse_config(BenchmarkConfig, argv, prog="benchmark_texture")
    result = run(cfg)
    print_table(result)
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(result, indent=2) + "\n")
