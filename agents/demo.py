"""The front door: one GIF per model family from any checkpoint, and the demo page.

:func:`load_any` is :func:`paintrnn.load` (a shipped model's name, a run folder or a checkpoint) plus the
checkpoint's ``kind`` tag and config, which the pictures need; :func:`gif_frames`
turns it into animation frames (DRAW drawing from its prior with the write windows, the painter redrawing
test digits stroke by stroke, a texture appearing front by front, glimpses moving over digits) and
:func:`sample_grid` into one PNG grid. :func:`run_demo` does this for the small checkpoints shipped in
``paintrnn/assets/checkpoints/`` (or for tiny models trained on the spot, :func:`train_tiny`) and writes
``index.html``, a self-contained page showing the GIFs with their captions.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import paintrnn
from paintrnn.config import config_from_dict
from paintrnn.data import load_mnist
from paintrnn.hub import checkpoint_path
from paintrnn.media import image_grid, to_uint8, write_gif
from paintrnn.training import load_checkpoint, resolve_device

FAMILIES = ("draw", "painter", "doodler", "texture", "glimpse")
"""The model families of the demo page, each shipped under its own name (:func:`paintrnn.available_models`)."""
CAPTIONS = {
    "draw": "DRAW (Gregor et al. 2015) drawing 16 digits from its prior in T steps; red boxes are the write "
    "attention windows of each step.",
    "painter": "The stroke painter (trained by backpropagation through the soft renderer) redrawing 8 test "
    "digits stroke by stroke; each canvas is shown beside its target.",
    "doodler": "The doodler (the recurrent stroke painter as a generator, trained by backpropagation through the "
    "soft renderer) drawing 16 digits from noise, stroke by stroke.",
    "texture": "A spatial LSTM (RIDE, Theis & Bethge 2015) synthesising two 64x64 grass textures, one "
    "anti-diagonal front of pixels at a time.",
    "glimpse": "The recurrent attention model (RAM, Mnih et al. 2014) reading 4 test digits through 8x8 "
    "glimpses: the box moves, the dots trace its path, the last frame shows the predicted class.",
}


@dataclass(frozen=True)
class Loaded:
    """A model loaded by :func:`paintrnn.load`, with its checkpoint's kind tag and config."""

    kind: str
    model: nn.Module
    config: dict[str, Any]

    @property
    def family(self) -> str:
        """The model family: the kind tag up to its first ``-`` (a ``painter-ppo`` checkpoint is a painter)."""
        return self.kind.split("-", 1)[0]


def load_any(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> Loaded:
    """:func:`paintrnn.load` of a shipped model's name, a run folder or a checkpoint, with its kind and config."""
    path = checkpoint_path(name_or_path)
    ckpt = load_checkpoint(path)
    return Loaded(ckpt["kind"], paintrnn.load(path, device), ckpt["config"])


def mnist_test_digits(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The first ``n`` test digits of the MNIST sample bundled with the package: float ``(n, 1, 28, 28)``."""
    images, _ = load_mnist("test", source="sample")
    return torch.from_numpy(images[:n].astype(np.float32) / 255.0)[:, None].to(device)


def painter_targets(painter: nn.Module, n: int) -> torch.Tensor | None:
    """What a painter paints in the pictures: the first ``n`` test digits at 64 px ``(n, C, 64, 64)`` in the
    painter's colour channels, or None for an unconditional painter (GAN mode), which doodles on a blank canvas."""
    if not painter.spec.conditional:
        return None
    digits = mnist_test_digits(n, next(painter.parameters()).device)
    digits = torch.nn.functional.interpolate(digits, size=(64, 64), mode="bilinear")  # (n, 1, 64, 64)
    return digits.repeat(1, painter.spec.channels, 1, 1)


@torch.no_grad()
def gif_frames(loaded: Loaded, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, float]:
    """Animation frames ``(T, H, W[, 3])`` uint8 of the model at work, and the frame duration in ms."""
    if n is not None and n < 1:
        raise ValueError(f"n (images in the GIF) must be >= 1, got {n}")
    model, cfg = loaded.model, loaded.config
    device = next(model.parameters()).device
    if loaded.family == "draw":
        from paintrnn.agents.draw_gif import sample_frames

        return sample_frames(model, n or 16, scale=3, seed=seed), 150.0
    if loaded.family == "painter":
        from paintrnn.agents.painter_gif import episode_frames

        n = n or 8
        return episode_frames(model, painter_targets(model, n), int(cfg.get("steps", 2)), n, 64, nrow=2, scale=2), 200.0
    if loaded.family == "doodler":
        from paintrnn.agents.doodler import doodle_frames

        return doodle_frames(model, n or 16, 64, seed=seed, scale=2), 150.0
    if loaded.family == "texture":
        from paintrnn.agents.texture import sampling_frames

        generator = torch.Generator(device).manual_seed(seed)
        frames = sampling_frames(model, 64, 64, num=n or 2, frames=40, generator=generator)
        return frames.repeat(3, 1).repeat(3, 2), 60.0
    if loaded.family == "glimpse":
        from paintrnn.agents.glimpse import RAM, episode_frames
        from paintrnn.agents.glimpse_train import Config, make_scenes, start_locations

        if not isinstance(model, RAM):
            raise ValueError(f"no GIF for the whole-image {cfg['model']!r} baseline: it takes no glimpses")
        gcfg = config_from_dict(Config, cfg)
        generator = torch.Generator(device).manual_seed(seed)
        images = make_scenes(mnist_test_digits(n or 4, device), gcfg, generator)
        start = start_locations(len(images), gcfg, generator, device)
        out = model(
            images, gcfg.glimpses, start, generator, deterministic=True, random_locations=gcfg.model == "random"
        )
        scale = 4 if images.shape[-1] <= 32 else 2
        frames = episode_frames(images, out.locations, out.logits.argmax(-1), gcfg.glimpse_size, gcfg.scales, scale)
        return frames, 500.0
    raise ValueError(f"no GIF for models of kind {loaded.kind!r}")


@torch.no_grad()
def sample_grid(loaded: Loaded, n: int = 64, seed: int = 0) -> np.ndarray:
    """One PNG-ready uint8 grid of ``n`` final results, about as wide as high: DRAW prior samples, painted digits
    (each beside its target), doodles or 64 x 64 texture samples."""
    if n < 1:
        raise ValueError(f"n (images in the grid) must be >= 1, got {n}")
    model = loaded.model
    device = next(model.parameters()).device
    nrow = int(np.ceil(np.sqrt(n)))  # images per row of a square grid
    if loaded.family == "draw":
        canvases, _ = model.sample(n, device, torch.Generator().manual_seed(seed))
        return image_grid(to_uint8(torch.sigmoid(canvases[-1, :, 0]).cpu().numpy()), nrow, 2)
    if loaded.family == "painter":
        from paintrnn.agents.painter_gif import episode_frames

        if model.spec.conditional:
            nrow = int(np.ceil(np.sqrt(n / 2)))  # each cell is a canvas beside its target: twice as wide as high
        steps = int(loaded.config.get("steps", 2))
        return episode_frames(model, painter_targets(model, n), steps, n, 64, nrow=nrow, scale=1, seed=seed)[-1]
    if loaded.family == "doodler":
        doodles = model.sample(n, 64, torch.Generator().manual_seed(seed))[:, 0]  # (n, 64, 64)
        return image_grid(to_uint8(doodles.cpu().numpy()), nrow, 2)
    if loaded.family == "texture":
        from paintrnn.agents.texture import sample

        generator = torch.Generator(device).manual_seed(seed)
        return image_grid(sample(model, n, 64, 64, generator=generator, device=device).cpu().numpy(), nrow, 2)
    raise ValueError(f"no sample grid for models of kind {loaded.kind!r} (a classifier: use `paintrnn gif`)")


TINY = {
    "draw": ("draw", "--preset small --epochs 8 --batch-size 50 --lr 3e-3 --data-source sample --test-images 200 "
             "--iwae-k 0 --eval-every 8 --threads 1 --resume never --run-dir"),
    "painter": ("painter backprop", "--canvas-size 32 --iters 300 --batch-size 32 --hidden 128 --data-source sample "
                "--eval-size 64 --run-dir"),
    "doodler": ("doodle", "--steps 1 --iters 200 --batch-size 32 --z-size 16 --hidden 128 --lr 1e-3 --betas 0.9 0.999 "
                "--adversarial 0 --teacher painter --prior-components 10 --prior-fit-size 2000 --data-source sample "
                "--checkpoint-every 200 --no-quality --no-gifs --run-dir"),
    "texture": ("texture", "--texture grass --flips hv --hidden 16 --head-hidden 16 --iters 120 --crop 16 "
                "--batch-size 8 --sample-size 32 --resume never --run-dir"),
    "glimpse": ("glimpse", "--epochs 8 --hidden 128 --lr 3e-3 --data-source sample --eval-every 8 --no-gif --run-dir"),
}  # fmt: skip
"""``paintrnn train NAME OPTIONS RUN_DIR`` of the tiny models ``paintrnn demo --train`` makes (bundled data)."""


def train_tiny(kind: str, run_dir: Path, device: str = "cpu") -> Path:
    """Train a tiny model of ``kind`` from scratch on the bundled data (about a minute on a laptop CPU) through
    ``paintrnn train`` (:data:`TINY`); returns its checkpoint."""
    from paintrnn.agents.cli import main

    if kind not in TINY:
        raise ValueError(f"kind must be one of {FAMILIES}, got {kind!r}")
    name, options = TINY[kind]
    if main(["train", *name.split(), *options.split(), str(run_dir), "--device", device]) != 0:
        raise RuntimeError(f"training the tiny {kind} model failed (see the messages above)")
    return run_dir / "checkpoint.pt"


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>paintrnn demo</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
figure {{ display: inline-block; vertical-align: top; margin: 1em; max-width: 500px; }}
img {{ image-rendering: pixelated; max-width: 100%; border: 1px solid #ccc; }}
figcaption {{ font-size: 0.9em; margin-top: 0.4em; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
</style>
</head>
<body data-loaded="pending">
<h1>paintrnn: recurrent networks that make images step by step</h1>
<p>{source} Made by <code>{command}</code> in {seconds:.1f} s.</p>
{figures}
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (im) {{ return im.complete && im.naturalWidth > 0; }}).length;
  document.body.dataset.loaded = ok + "/" + images.length;
}});
</script>
</body>
</html>
"""


def write_page(out: Path, gifs: dict[str, Path], source: str, command: str, seconds: float) -> Path:
    """``index.html`` in ``out`` showing the GIFs (relative paths, no external resources) with captions."""
    figures = "\n".join(
        f'<figure><img src="{html.escape(path.relative_to(out).as_posix())}" alt="{kind}">'
        f"<figcaption><b>{kind}</b>: {html.escape(CAPTIONS[kind])}</figcaption></figure>"
        for kind, path in gifs.items()
    )
    page = PAGE.format(source=html.escape(source), command=html.escape(command), seconds=seconds, figures=figures)
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def run_demo(
    out: str | Path = "paintrnn-demo", train: bool = False, device: str = "cpu", progress: bool = True
) -> dict[str, Path]:
    """Write one GIF per family (``draw.gif``, ``painter.gif``, ``doodler.gif``, ``texture.gif``, ``glimpse.gif``)
    and ``index.html`` into ``out`` from the shipped checkpoints (or from tiny models trained first when ``train``);
    returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    device = str(resolve_device(device))
    checkpoints: dict[str, str | Path] = {kind: kind for kind in FAMILIES}  # the shipped models, by name
    if train:
        for kind in tqdm(FAMILIES, desc="training tiny models", disable=not progress, dynamic_ncols=True):
            checkpoints[kind] = train_tiny(kind, out / "runs" / kind, device)
    written: dict[str, Path] = {}
    for kind in tqdm(FAMILIES, desc="rendering GIFs", disable=not progress, dynamic_ncols=True):
        frames, duration = gif_frames(load_any(checkpoints[kind], device))
        written[kind] = write_gif(out / f"{kind}.gif", frames, duration_ms=duration, hold_last_ms=1500)
    source = (
        "Tiny models trained from scratch just now on the bundled MNIST sample and textures."
        if train
        else "Small pretrained checkpoints shipped with the package (paintrnn/assets/checkpoints)."
    )
    command = "paintrnn demo" + (" --train" if train else "")
    written["index"] = write_page(out, dict(written), source, command, time.perf_counter() - start)
    return written
