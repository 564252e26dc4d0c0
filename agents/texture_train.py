"""Train the spatial LSTM texture model on random crops of a texture.

    python scripts/train_texture.py --texture grass --flips hv --run-dir runs/grass
    torchrun --nproc-per-node 2 scripts/train_texture.py --texture brick   # data-parallel (DDP)

The run directory gets `config.json`, `metrics.jsonl`, `curves.png`, `checkpoint.pt` (atomic, resumed
from automatically), `samples.png` (source crops beside synthesised textures) and, with `--gifs`,
`sampling.gif` and `inpainting.gif`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from paintrnn.agents.texture import (
    TextureModel,
    TextureModelConfig,
    check_images,
    inpainting_frames,
    sample,
    sampling_frames,
)
from torch.nn.parallel import DistributedDataParallel

from paintrnn.config import config_from_dict, parse_config
from paintrnn.data import IMAGE_SUFFIXES, DataError, load_image, texture_path
from paintrnn.media import image_grid, save_png, side_by_side, write_gif
from paintrnn.training import (
    CheckpointError,
    MetricsLogger,
    all_reduce_mean,
    check_finite,
    cleanup_distributed,
    load_checkpoint,
    plot_metrics,
    progress,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_distributed,
    write_config,
)

KIND = "texture"
OLDER_CHECKPOINTS = {"head_layers": 1, "up_right": False}
"""Architecture fields that checkpoints written before they existed lack, with the values those models had."""
RESUMABLE_CHANGES = frozenset({"progress", "gifs", "sample_size", "resume", "device", "threads"})
"""Config fields a resumed run may change (they do not alter the training trajectory)."""


@dataclass(frozen=True)
class TrainConfig(TextureModelConfig):
    """Train a spatial LSTM texture model (the architecture fields come first)."""

    texture: str = "brick"
    """A bundled texture (brick, grass), an image file, or a folder of images."""
    crop: int = 32
    """Side of the square training crops."""
    batch_size: int = 16
    """Crops per step (per process under torchrun)."""
    steps: int = 3200
    """Optimisation steps."""
    lr: float = 1e-2
    """Peak Adam learning rate (cosine decay to 5% of it)."""
    warmup: int = 0
    """Steps of linear learning-rate warm-up before the cosine decay."""
    grad_clip: float = 100.0
    """Gradient norm clipping (only against rare spikes: the mixture's sharp scales give norms of 10-500)."""
    flips: Literal["none", "h", "v", "hv"] = "h"
    """Augmentation: random left-right (h) and/or up-down (v) flips, where the texture allows."""
    holdout: float = 0.0
    """Fraction of every image's bottom rows kept out of training and used for held-out bits/pixel."""
    eval_every: int = 250
    """Steps between held-out evaluations (when holdout > 0)."""
    log_every: int = 25
    """Steps between metric lines."""
    checkpoint_every: int = 250
    """Steps between checkpoints."""
    sample_size: int = 96
    """Side of the textures synthesised at the end of training."""
    gifs: bool = False
    """Also write sampling.gif and inpainting.gif at the end."""
    run_dir: str = "runs/texture"
    """Output folder (checkpoint, metrics, plots, samples)."""
    resume: bool = True
    """Continue from run_dir/checkpoint.pt when it exists."""
    seed: int = 0
    """Random seed (crops, initialisation, samples)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    threads: int = 1
    """CPU threads for torch (the per-front ops are small: one thread is fastest on a shared CPU)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("crop", "batch_size", "steps", "eval_every", "log_every", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must be in [0, steps), got {self.warmup}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def model_config(self) -> TextureModelConfig:
        """The architecture part of this config."""
        return TextureModelConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TextureModelConfig)})


def load_textures(spec: str, channels: int) -> list[np.ndarray]:
    """The training images named by `spec` (bundled name, file or folder): uint8 `(H, W, channels)` each."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return [load_image(p, channels) for p in files]
    return [load_image(texture_path(spec), channels)]


def split_rows(image: np.ndarray, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """Top `1 - holdout` of the rows for training, the bottom `holdout` for evaluation."""
    cut = image.shape[0] - int(round(image.shape[0] * holdout))
    return image[:cut], image[cut:]


class CropSampler:
    """Batches of random square crops `(B, S, S, C)` (int64) with flips, from a torch generator."""

    def __init__(self, images: Sequence[np.ndarray], crop: int, batch_size: int, flips: str,
                 generator: torch.Generator) -> None:
        for k, img in enumerate(images):
            if img.shape[0] < crop or img.shape[1] < crop:
                raise ValueError(f"training image {k} is {img.shape[0]}x{img.shape[1]} pixels, smaller than "
                                 f"the {crop}x{crop} crop: use a larger image or a smaller --crop")
        self.images = [torch.from_numpy(np.array(img)).long() for img in images]
        self.crop, self.batch_size, self.flips, self.generator = crop, batch_size, flips, generator

    def __call__(self) -> torch.Tensor:
        g, s = self.generator, self.crop
        out = []
        for k in torch.randint(len(self.images), (self.batch_size,), generator=g).tolist():
            img = self.images[k]
            y = int(torch.randint(img.shape[0] - s + 1, (), generator=g))
            x = int(torch.randint(img.shape[1] - s + 1, (), generator=g))
            crop = img[y : y + s, x : x + s]
            flip_h, flip_v = (torch.rand(2, generator=g) < 0.5).tolist()
            if "h" in self.flips and flip_h:
                crop = crop.flip(1)
            if "v" in self.flips and flip_v:
                crop = crop.flip(0)
            out.append(crop)
        return torch.stack(out)


def eval_crops(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """All non-overlapping `size x size` crops on a grid over the images: `(N, size, size, C)`."""
    crops = [img[y : y + size, x : x + size]
             for img in images
             for y in range(0, img.shape[0] - size + 1, size)
             for x in range(0, img.shape[1] - size + 1, size)]
    if not crops:
        raise ValueError(f"held-out images are smaller than the {size}x{size} evaluation crop")
    return torch.from_numpy(np.stack(crops)).long()


@torch.no_grad()
def evaluate_bits(model: TextureModel, crops: torch.Tensor, batch_size: int = 16) -> float:
    """Mean bits per pixel (and channel) of `model` on integer crops `(N, H, W, C)`."""
    model.eval()
    total = sum(float(model.bits_per_dim(crops[i : i + batch_size].to(next(model.parameters()).device)))
                * len(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size))
    model.train()
    return total / len(crops)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> TextureModel:
    """A trained `TextureModel` from a checkpoint written by `train`."""
    ckpt = load_checkpoint(path, map_location, kind=KIND)
    fields = {f.name for f in dataclasses.fields(TextureModelConfig)}
    values = {**OLDER_CHECKPOINTS, **{k: v for k, v in ckpt["config"].items() if k in fields}}
    model = TextureModel(config_from_dict(TextureModelConfig, values))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def lr_at(step: int, steps: int, lr: float, warmup: int = 0) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `lr` to 5% of it at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / (steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def train(cfg: TrainConfig) -> tuple[TextureModel, dict]:
    """Train (or resume) a texture model; returns it (unwrapped, on its device) and a summary dict."""
    info = setup_distributed(cfg.device)
    torch.set_num_threads(cfg.threads)
    generator = seed_everything(cfg.seed + info.rank)
    images = load_textures(cfg.texture, cfg.channels)
    parts = [split_rows(img, cfg.holdout) for img in images]
    sampler = CropSampler([p[0] for p in parts], cfg.crop, cfg.batch_size, cfg.flips, generator)
    held_out = None
    if cfg.holdout > 0:
        held_out = eval_crops([p[1] for p in parts], min(2 * cfg.crop, *(p[1].shape[0] for p in parts)))

    run = Path(cfg.run_dir)
    model = TextureModel(cfg.model_config()).to(info.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, ckpt_path = 0, run / "checkpoint.pt"
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, info.device, kind=KIND)
        changed = sorted(k for k, v in dataclasses.asdict(cfg).items()
                         if k not in RESUMABLE_CHANGES and ckpt["config"].get(k) != v)
        if changed:
            raise CheckpointError(f"{ckpt_path} was written with a different config (fields {changed}); "
                                  "use another --run-dir or --no-resume")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"], generator)
        start = ckpt["step"]
        if info.rank:  # the checkpoint holds rank 0's crop generator; other ranks need their own stream
            generator.manual_seed(cfg.seed + 1_000_003 * info.rank + start)
    if info.is_main:
        write_config(run / "config.json", cfg)
    logger = MetricsLogger(run / "metrics.jsonl", resume_step=start if start else None, enabled=info.is_main)
    net = DistributedDataParallel(model) if info.distributed else model

    def save(step: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, kind=KIND, config=cfg, model=model, optimizer=opt, step=step,
                            generator=generator)

    t0 = time.perf_counter()
    for step in progress(range(start, cfg.steps), enabled=info.is_main and cfg.progress, initial=start,
                         total=cfg.steps, desc="texture"):
        lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = sampler().to(info.device)  # (B, S, S, C)
        params = net(batch)
        loss = -model.dist.log_prob(params, batch).mean() / (math.log(2) * cfg.channels)  # bits/pixel
        check_finite(loss, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            metrics = {"train_bits_per_pixel": all_reduce_mean(loss.detach()), "lr": lr, "grad_norm": grad_norm,
                       "seconds": time.perf_counter() - t0}
            if held_out is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
                metrics["test_bits_per_pixel"] = evaluate_bits(model, held_out)
            logger.log(done, **metrics)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save(done)
    seconds = time.perf_counter() - t0
    summary = {"steps": cfg.steps, "resumed_from": start, "train_seconds": seconds}
    if held_out is not None:
        summary["test_bits_per_pixel"] = evaluate_bits(model, held_out)
    if info.is_main:
        plot_metrics(run / "metrics.jsonl", run / "curves.png")
        write_outputs(model, cfg, [p[0] for p in parts])
    cleanup_distributed()
    return model.eval(), summary


def write_outputs(model: TextureModel, cfg: TrainConfig, images: Sequence[np.ndarray]) -> None:
    """`samples.png`: a source crop beside synthesised textures; with `cfg.gifs` the two GIFs too."""
    run, s = Path(cfg.run_dir), cfg.sample_size
    model.eval()
    source = images[0][: min(s, images[0].shape[0]), : min(s, images[0].shape[1])]
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(cfg.seed)  # random numbers are drawn on the model's device
    synth = sample(model, 3, s, s, generator=generator, device=device).cpu().numpy()
    save_png(run / "samples.png", side_by_side(image_grid(source[None], 1), image_grid(synth, 3)))
    if cfg.gifs:
        write_gif(run / "sampling.gif", sampling_frames(model, 64, 64, num=3, generator=generator), scale=2)
        image, missing = inpainting_example(images[0], min(64, *images[0].shape[:2]))
        frames = inpainting_frames(model, image.to(device), missing.to(device), refine_steps=10, generator=generator)
        write_gif(run / "inpainting.gif", frames, scale=2)


def inpainting_example(image: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-left `size x size` crop of `image` with a centred square hole of half its side."""
    crop = torch.from_numpy(np.ascontiguousarray(image[:size, :size]))[None].long()  # (1, S, S, C)
    check_images(crop, image.shape[-1], "image")
    missing = torch.zeros(crop.shape[:3], dtype=torch.bool)
    missing[:, size // 4 : size // 4 + size // 2, size // 4 : size // 4 + size // 2] = True
    return crop, missing


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `python scripts/train_texture.py --help`."""
    cfg = parse_config(TrainConfig, argv, prog="train_texture")
    _, summary = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
