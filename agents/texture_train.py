"""Train the spatial LSTM texture model on random crops of a texture.

    paintrnn train texture --texture grass --flips hv --run-dir runs/grass
    torchrun --nproc-per-node 2 -m paintrnn train texture --texture brick   # data-parallel (DDP)

The run folder (:mod:`paintrnn.run`) gets `config.json`, `metrics.jsonl`, `curves.png`, `checkpoint.pt`
(atomic; a rerun continues from it exactly, see `--resume`), `samples.png` (source crops beside synthesised
textures) and, with `--gifs`, `sampling.gif` and `inpainting.gif`. Load the trained model with
:func:`paintrnn.agents.texture.load_model`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from paintrnn.agents.texture import (
    KIND,
    TextureModel,
    TextureModelConfig,
    check_images,
    inpainting_frames,
    sample,
    sampling_frames,
)
from torch.nn.parallel import DistributedDataParallel

from paintrnn.config import parse_config
from paintrnn.data import IMAGE_SUFFIXES, DataError, load_image, texture_path
from paintrnn.media import image_grid, save_png, side_by_side, write_gif
from paintrnn.run import RunConfig, lr_schedule, start_run
from paintrnn.training import all_reduce_mean, plot_metrics


@dataclass(frozen=True)
class TrainConfig(TextureModelConfig, RunConfig):
    """Train a spatial LSTM texture model (the run options first, then the architecture, then training)."""

    run_dir: str = "runs/texture"
    """Run folder: config.json, metrics.jsonl, curves.png, checkpoint.pt, samples.png and the GIFs."""
    log_every: int = 25
    """Optimiser steps between metric lines."""
    checkpoint_every: int = 250
    """Optimiser steps between checkpoints (one is also written at the end)."""
    texture: str = "brick"
    """A bundled texture (brick, grass), an image file, or a folder of images."""
    crop: int = 32
    """Side of the square training crops."""
    batch_size: int = 16
    """Crops per step (per process under torchrun)."""
    iters: int = 3200
    """Optimiser steps (training iterations)."""
    lr: float = 1e-2
    """Peak Adam learning rate (cosine decay to 5% of it)."""
    warmup: int = 0
    """Steps of linear learning-rate warm-up before the cosine decay (0: none)."""
    grad_clip: float = 100.0
    """Gradient norm clipping (only against rare spikes: the mixture's sharp scales give norms of 10-500)."""
    flips: Literal["none", "h", "v", "hv"] = "h"
    """Augmentation: random left-right (h) and/or up-down (v) flips, where the texture allows."""
    holdout: float = 0.0
    """Fraction of every image's bottom rows kept out of training and used for held-out bits/pixel."""
    eval_every: int = 250
    """Steps between held-out evaluations (when holdout > 0)."""
    sample_size: int = 96
    """Side of the textures synthesised at the end of training."""
    gifs: bool = False
    """Also write sampling.gif and inpainting.gif at the end."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = RunConfig.RESUME_MAY_CHANGE | {"eval_every", "sample_size", "gifs"}
    """Also the held-out evaluation's spacing and the outputs written at the end: none alters training."""
    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {**RunConfig.DEPRECATED_FLAGS, "--steps": "--iters"}

    def __post_init__(self) -> None:
        TextureModelConfig.__post_init__(self)
        RunConfig.__post_init__(self)
        for name in ("crop", "batch_size", "iters", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup < self.iters:
            raise ValueError(f"--warmup must be in [0, iters), got {self.warmup}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"--holdout must be in [0, 1), got {self.holdout}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")

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


def lr_at(step: int, iters: int, lr: float, warmup: int = 0) -> float:
    """The learning rate of optimiser step ``step`` (from 0) of ``iters``: a linear warm-up over ``warmup`` steps
    that reaches ``lr`` at its last step, then a cosine decay from ``lr`` to 5% of it at ``iters``."""
    done = step + 1 if step < warmup else step  # the warm-up's k-th step runs at k / warmup of the peak
    return lr_schedule(done / iters, lr, 0.05 * lr, warmup / iters)


def train(cfg: TrainConfig) -> tuple[TextureModel, dict]:
    """Train (or resume, see ``--resume``) a texture model. Returns it (unwrapped, on its device, in eval mode)
    and a summary: ``iters``, ``resumed_from``, ``test_bits_per_pixel`` (with a holdout), ``minutes`` of
    training and ``summary_line``, the run's one summary line."""
    with start_run(cfg, kind=KIND) as run:
        info = run.info
        images = load_textures(cfg.texture, cfg.channels)
        parts = [split_rows(img, cfg.holdout) for img in images]
        # Rank 0 draws its crops from the run's generator (saved in checkpoints); other ranks need streams of
        # their own.
        crops = run.generator if info.rank == 0 else torch.Generator().manual_seed(cfg.seed + info.rank)
        sampler = CropSampler([p[0] for p in parts], cfg.crop, cfg.batch_size, cfg.flips, crops)
        held_out = None
        if cfg.holdout > 0:
            held_out = eval_crops([p[1] for p in parts], min(2 * cfg.crop, *(p[1].shape[0] for p in parts)))

        model = TextureModel(cfg.model_config()).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        if run.resume(model, opt) is not None and info.rank:  # the checkpoint holds rank 0's crop generator
            crops.manual_seed(cfg.seed + 1_000_003 * info.rank + run.start)
        net = DistributedDataParallel(model) if info.distributed else model

        bar = run.progress(range(run.start, cfg.iters), total=cfg.iters, desc=KIND, show=("bits_per_pixel",))
        for step in bar:
            lr = lr_at(step, cfg.iters, cfg.lr, cfg.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            batch = sampler().to(run.device)  # (B, S, S, C)
            params = net(batch)
            loss = -model.dist.log_prob(params, batch).mean() / (math.log(2) * cfg.channels)  # bits/pixel
            run.check_finite(loss, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.iters:
                metrics = {"train_bits_per_pixel": float(all_reduce_mean(loss.detach())), "lr": lr,
                           "grad_norm": grad_norm}
                if held_out is not None and (done % cfg.eval_every == 0 or done == cfg.iters):
                    with run.paused():
                        metrics["test_bits_per_pixel"] = evaluate_bits(model, held_out)
                run.log(done, **metrics)  # the bar shows the bits per pixel
            if done % cfg.checkpoint_every == 0 or done == cfg.iters:
                run.save(done, model, opt)
        bar.close()

        summary: dict = {"iters": cfg.iters, "resumed_from": run.start}
        if "train_bits_per_pixel" in run.last_metrics:
            summary["train_bits_per_pixel"] = float(run.last_metrics["train_bits_per_pixel"])
        with run.paused():
            if held_out is not None:
                summary["test_bits_per_pixel"] = evaluate_bits(model, held_out)
            if run.is_main:
                plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png")
                write_outputs(model, cfg, [p[0] for p in parts])
        summary["summary_line"] = run.summary(**summary)
        summary["minutes"] = run.elapsed / 60
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `paintrnn train texture --help`. Prints the run's summary line; returns 0."""
    cfg = parse_config(TrainConfig, argv, prog="paintrnn train texture")
    _, summary = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary["summary_line"])
    return 0
