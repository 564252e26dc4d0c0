"""``paintrnn paint`` and ``paintrnn render``: paint any picture with strokes, re-render the strokes at any size.

    paintrnn paint IMAGE [--strokes 4000] [--size 512] [--method agent+optimize] [--brush round] [--out painting/]
        -> painting/painting.png, painting.gif (coarse to fine), painting.svg, strokes.json
    paintrnn render painting/strokes.json [--size 4096] [--out big.png]

Brushes (--brush): round (the default), marker, tapered, watercolor, and bristle, an oil brush whose strokes
carry streaks of paint along them and thin out towards their end, in the PNG, the GIF and the SVG alike
(paintrnn.brushes). strokes.json records the brush; paintrnn render re-renders with it.

Bad input (a missing or unreadable file, --strokes 0, an unknown brush or method) is reported as one line
on stderr with exit status 2, without a traceback. The methods agent and agent+optimize need the learned
colour painter shipped as the model ``painter-colour`` (``paintrnn.load``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from paintrnn.config import build_parser
from paintrnn.painting import PaintConfig, PaintError, Painting, paint

THREADS_HELP = "torch CPU threads; 0 = torch's default (all cores); 1 is far faster on a busy CPU (no oversubscription)"


def _fail(command: str, err: BaseException) -> int:
    print(f"paintrnn {command}: error: {err}", file=sys.stderr)
    return 2


def _threads(n: int) -> None:
    import torch

    if n < 0:
        raise PaintError(f"--threads must be >= 0, got {n}")
    if n:
        torch.set_num_threads(n)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def paint_parser() -> argparse.ArgumentParser:
    parser = build_parser(PaintConfig, description=__doc__, prog="paintrnn paint")
    parser.add_argument("image", help="picture to paint: any file Pillow opens (PNG, JPEG, TIFF, WebP, BMP, GIF ...)")
    parser.add_argument("--out", default="painting", help="output folder (default: 'painting')")
    parser.add_argument("--gif-size", type=int, default=512, help="longer side of the GIF (default: 512)")
    parser.add_argument("--threads", type=int, default=1, help=f"{THREADS_HELP} (default: 1)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    return parser


def paint_main(argv: Sequence[str] | None = None) -> int:
    """``paintrnn paint IMAGE [options]``: writes painting.png, .gif, .svg and strokes.json into ``--out``."""
    args = vars(paint_parser().parse_args(list(sys.argv[1:] if argv is None else argv)))
    image, out, gif_size = args.pop("image"), Path(args.pop("out")), args.pop("gif_size")
    threads, show = args.pop("threads"), args.pop("progress")
    try:
        _threads(threads)
        cfg = PaintConfig(**args)
        if gif_size < 1:
            raise PaintError(f"--gif-size must be >= 1, got {gif_size}")
        painting = paint(image, config=cfg, progress=show)
        written = painting.save(out, gif_size=gif_size)
    except (PaintError, OSError) as err:
        return _fail("paint", err)
    info = painting.info
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in written.values())
    print(
        f"paintrnn paint: {len(painting)} strokes ({cfg.method}, {cfg.brush}), {painting.width}x{painting.height} px, "
        f"PSNR {info['psnr']:.2f} dB, SSIM {info['ssim']:.3f}, {info['seconds']:.1f} s -> {out}/ ({sizes})"
    )
    return 0


def render_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="paintrnn render", description="Render a strokes.json at any size (tile by tile).", formatter_class=fmt
    )
    parser.add_argument("strokes", help="strokes.json written by `paintrnn paint`")
    parser.add_argument("--size", type=int, default=4096, help="longer side of the picture in pixels")
    parser.add_argument("--out", default=None, help="PNG file; default: painting_SIZE.png beside the strokes file")
    parser.add_argument("--svg", default=None, help="also write the strokes as this SVG file")
    parser.add_argument("--threads", type=int, default=1, help=f"{THREADS_HELP} (default: 1)")
    return parser


def render_main(argv: Sequence[str] | None = None) -> int:
    """``paintrnn render STROKES_JSON [--size 4096] [--out big.png]``."""
    args = render_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    try:
        _threads(args.threads)
        if args.size < 1:
            raise PaintError(f"--size must be >= 1, got {args.size}")
        painting = Painting.load(args.strokes)
        out = Path(args.out) if args.out else Path(args.strokes).parent / f"painting_{args.size}.png"
        painting.save_png(out, size=args.size)
        if args.svg:
            painting.save_svg(args.svg)
    except (PaintError, OSError) as err:
        return _fail("render", err)
    H, W = painting.size_at(args.size)
    print(
        f"paintrnn render: {len(painting)} strokes -> {out} ({W}x{H} px, {time.perf_counter() - start:.1f} s, "
        f"peak memory {_peak_mib():.0f} MiB)"
    )
    return 0


__all__ = ["paint_main", "paint_parser", "render_main", "render_parser"]
