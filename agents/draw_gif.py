"""Pictures of DRAW at work: the canvas over the T steps with the attention windows drawn as boxes.

:func:`reconstruction_frames` unrolls the model on test digits and draws, on each step's canvas, the read
window (green) and the write window (red) of that step; :func:`sample_frames` draws from the prior (write
windows only: generation does not read). Both return RGB frames ``(T + 1, H', W', 3)`` of a grid of images,
ready for :func:`paintrnn.media.write_gif`. :func:`render` writes the GIFs and PNG grids for a checkpoint;
``scripts/render_gif.py`` calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from paintrnn.agents.draw import DRAW, check_images, load_model
from torch import Tensor

from paintrnn.data import binarize_fixed, load_mnist
from paintrnn.media import draw_boxes, grid_frames, save_grid, to_uint8, upscale, write_gif

READ_COLOUR = (64, 220, 64)
WRITE_COLOUR = (255, 64, 64)


def _boxed(canvases: Tensor, boxes: list[tuple[Tensor | None, tuple[int, int, int]]], scale: int) -> np.ndarray:
    """Frames ``(T+1, N, H s, W s, 3)`` from canvas logits ``(T+1, N, 1, H, W)`` and per-step boxes ``(T, N, 4)``:
    frame ``t >= 1`` shows the canvas after step ``t`` with the windows step ``t`` used."""
    images = upscale(to_uint8(torch.sigmoid(canvases[:, :, 0]).cpu().numpy()), scale)  # (T+1, N, Hs, Ws)
    frames = np.repeat(images[..., None], 3, axis=-1)
    for t in range(1, frames.shape[0]):
        for i in range(frames.shape[1]):
            for box, colour in boxes:
                if box is not None:  # pixel centre p maps to p * s + (s - 1) / 2 in the enlarged image
                    b = box[t - 1, i].cpu().numpy() * scale + (scale - 1) / 2
                    frames[t, i] = draw_boxes(frames[t, i], b[None], [colour])
    return frames


@torch.no_grad()
def reconstruction_frames(
    model: DRAW, images: Tensor, scale: int = 4, nrow: int | None = None, seed: int = 0
) -> np.ndarray:
    """Grid frames ``(T + 1, H', W', 3)`` of the model redrawing ``images (N, 1, H, W)`` step by step."""
    cfg = model.config
    x = check_images(images, cfg.height, cfg.width).to(next(model.parameters()).device)
    generator = torch.Generator().manual_seed(seed)
    state = model.initial_state(x.shape[0], x.device)
    canvases, reads, writes = [state.canvas], [], []
    for _ in range(cfg.steps):
        eps = torch.randn(x.shape[0], cfg.z_size, generator=generator).to(x.device, x.dtype)
        state, out = model.step(x, state, eps)
        canvases.append(state.canvas)
        if cfg.attention:
            reads.append(model.windows(out.read_raw, cfg.read_n))
            writes.append(model.windows(out.write_raw, cfg.write_n))
    boxes = [(torch.stack(reads), READ_COLOUR), (torch.stack(writes), WRITE_COLOUR)] if cfg.attention else []
    return grid_frames(_boxed(torch.stack(canvases), boxes, scale).transpose(1, 0, 2, 3, 4), nrow)


@torch.no_grad()
def sample_frames(model: DRAW, n: int = 16, scale: int = 4, nrow: int | None = None, seed: int = 0) -> np.ndarray:
    """Grid frames ``(T + 1, H', W', 3)`` of ``n`` samples from the prior, with the write windows."""
    device = next(model.parameters()).device
    canvases, raw = model.sample(n, device, torch.Generator().manual_seed(seed))
    boxes = [(model.windows(raw, model.config.write_n), WRITE_COLOUR)] if raw is not None else []
    return grid_frames(_boxed(canvases, boxes, scale).transpose(1, 0, 2, 3, 4), nrow)


def render(
    checkpoint: str | Path,
    out: str | Path = "docs",
    prefix: str = "draw",
    n: int = 16,
    scale: int = 4,
    data_dir: str | None = None,
    seed: int = 0,
    duration_ms: float = 80,
) -> list[Path]:
    """Write ``{prefix}_samples.gif/png`` and ``{prefix}_reconstructions.gif/png`` for a DRAW checkpoint."""
    model = load_model(checkpoint)
    out = Path(out)
    test, _ = load_mnist("test", data_dir)
    x = binarize_fixed(torch.from_numpy(test[:n]).float().div(255)[:, None], seed)
    written = []
    for name, frames in (
        ("samples", sample_frames(model, n, scale, seed=seed)),
        ("reconstructions", reconstruction_frames(model, x, scale, seed=seed)),
    ):
        written.append(write_gif(out / f"{prefix}_{name}.gif", frames, duration_ms=duration_ms, hold_last_ms=1500))
        written.append(out / f"{prefix}_{name}.png")
        save_grid(written[-1], frames[-1][None], nrow=1)
    canvases, _ = model.sample(64, next(model.parameters()).device, torch.Generator().manual_seed(seed + 1))
    written.append(save_grid(out / f"{prefix}_samples64.png", torch.sigmoid(canvases[-1, :, 0]).cpu().numpy(), 8, 2))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``render_gif.py CHECKPOINT [--out docs] [--prefix draw] [--n 16]``."""
    parser = argparse.ArgumentParser(prog="render_gif", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint.pt written by scripts/train_draw.py")
    parser.add_argument("--out", default="docs", help="folder for the GIFs and PNGs (default: docs)")
    parser.add_argument("--prefix", default="draw", help="file name prefix (default: draw)")
    parser.add_argument("--n", type=int, default=16, help="images in the grid (default: 16)")
    parser.add_argument("--scale", type=int, default=4, help="pixel enlargement (default: 4)")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (for the reconstructions)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and noise (default: 0)")
    args = parser.parse_args(argv)
    for path in render(args.checkpoint, args.out, args.prefix, args.n, args.scale, args.data_dir, args.seed):
        print(path)
    return 0
