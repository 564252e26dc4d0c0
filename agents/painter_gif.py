"""Pictures of the painter at work: stroke-by-stroke GIFs, the final PNG grid and the SVG of the strokes.

:func:`episode_frames` paints a grid of episodes stroke by stroke (each canvas beside its target for
conditional painters; from a blank canvas for unconditional doodlers) and returns frames ready for
:func:`paintrnn.media.write_gif`. :func:`render` writes ``{prefix}_episodes.gif``, ``{prefix}_final.png``
and ``{prefix}_strokes.svg`` for a checkpoint of any painter mode (any of
:data:`paintrnn.agents.painter.KINDS`); ``paintrnn gif CHECKPOINT --out FOLDER`` calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from paintrnn.agents.painter import Painter, load_model, paint, prepare_images
from torch import Tensor

from paintrnn.data import load_mnist
from paintrnn.media import grid_frames, save_grid, side_by_side, write_gif
from paintrnn.svg import strokes_to_svg


@torch.no_grad()
def episode_frames(
    painter: Painter,
    targets: Tensor | None,
    steps: int,
    n: int = 16,
    size: int = 64,
    nrow: int | None = None,
    scale: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Frames ``(1 + steps * k, H', W'[, 3])`` uint8 of ``n`` episodes painted stroke by stroke, in a grid.

    ``targets`` ``(N, C, H, W)`` (conditional painters; each canvas is shown beside its target) or ``None``
    (unconditional painters: ``n`` episodes on ``size x size`` canvases, actions sampled with ``seed``).
    """
    if painter.spec.conditional:
        if targets is None:
            raise ValueError("a conditional painter needs targets to paint")
        targets = prepare_images(targets.to(next(painter.parameters()).device), painter.spec.channels, None)
    sampled = None if painter.spec.conditional else torch.Generator().manual_seed(seed)
    canvases, _ = paint(painter, targets, steps, size, size, batch=n, generator=sampled)  # (N, T, C, H, W)
    canvases = torch.cat([torch.zeros_like(canvases[:, :1]), canvases], 1)
    clips = canvases.permute(0, 1, 3, 4, 2).cpu().numpy()  # (N, T+1, H, W, C)
    clips = clips[..., 0] if clips.shape[-1] == 1 else clips
    if targets is not None and painter.spec.conditional:
        tgt = targets.permute(0, 2, 3, 1).cpu().numpy()
        tgt = tgt[..., 0] if tgt.shape[-1] == 1 else tgt
        clips = np.stack([np.stack([side_by_side(f, tgt[i]) for f in clips[i]]) for i in range(len(clips))])
    frames = grid_frames(clips, nrow)
    return frames.repeat(scale, 1).repeat(scale, 2) if scale > 1 else frames


def episode_svg(painter: Painter, target: Tensor | None, steps: int, size: int = 64) -> str:
    """SVG of the strokes of one episode (``target`` ``(1, C, H, W)``, or ``None`` when unconditional)."""
    sampled = None if painter.spec.conditional else torch.Generator().manual_seed(0)
    _, strokes = paint(painter, target, steps, size, size, generator=sampled)
    return strokes_to_svg(strokes[0].cpu(), size, size)


def render(
    checkpoint: str | Path,
    out: str | Path = "docs",
    prefix: str = "painter",
    n: int = 16,
    scale: int = 2,
    data_dir: str | None = None,
    size: int = 64,
    duration_ms: float = 120,
) -> list[Path]:
    """Write the episode GIF, the final-canvas PNG grid and one episode's SVG for a painter checkpoint."""
    painter = load_model(checkpoint)
    steps = painter.episode_steps
    targets = None
    if painter.spec.conditional:
        images, _ = load_mnist("test", data_dir)
        targets = torch.from_numpy(np.ascontiguousarray(images[:n]))[:, None].float().div(255)
        targets = torch.nn.functional.interpolate(targets, size=(size, size), mode="bilinear", antialias=True)
    frames = episode_frames(painter, targets, steps, n, size, scale=scale)
    out = Path(out)
    written = [write_gif(out / f"{prefix}_episodes.gif", frames, duration_ms=duration_ms, hold_last_ms=1500)]
    written.append(save_grid(out / f"{prefix}_final.png", frames[-1][None], nrow=1))
    svg = out / f"{prefix}_strokes.svg"
    svg.write_text(episode_svg(painter, None if targets is None else targets[:1], steps, size))
    written.append(svg)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``render_gif.py CHECKPOINT [--out docs] [--prefix painter] [--n 16]``."""
    parser = argparse.ArgumentParser(prog="render_gif", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint.pt written by scripts/train_painter.py")
    parser.add_argument("--out", default="docs", help="folder for the GIF, PNG and SVG (default: docs)")
    parser.add_argument("--prefix", default="painter", help="file name prefix (default: painter)")
    parser.add_argument("--n", type=int, default=16, help="episodes in the grid (default: 16)")
    parser.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (targets of conditional painters)")
    args = parser.parse_args(argv)
    for path in render(args.checkpoint, args.out, args.prefix, args.n, args.scale, args.data_dir):
        print(path)
    return 0
