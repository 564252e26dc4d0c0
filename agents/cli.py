"""``paintrnn``: one command for the whole package (also ``python -m paintrnn``).

    paintrnn demo [--out paintrnn-demo] [--train] [--device cpu]   # GIFs of every model family + index.html
    paintrnn paint IMAGE [--strokes 4000] [--size 512] [--out DIR]  # a picture in strokes: PNG, GIF, SVG, JSON
    paintrnn render DIR/strokes.json [--size 4096] [--out big.png]  # the strokes again, at any size
    paintrnn train {draw,painter,texture,glimpse} [options]         # the trainers
    paintrnn gif MODEL [--out FILE.gif | FOLDER]                    # animation of any model
    paintrnn sample MODEL [--out FILE.png]                          # PNG grid of results
    paintrnn bench {draw,painter,texture,glimpse,envs,render} [options]
    paintrnn --version
    paintrnn --debug COMMAND ...                                    # errors with their Python traceback

MODEL is what ``paintrnn.load`` takes: a shipped model's name (draw, painter, painter-colour, texture,
glimpse), a run folder or a checkpoint file.

A mistake (a missing or foreign file, an unwritable output, a bad value) is reported as one line on stderr
with a non-zero exit status; ``--debug`` (or the environment variable PAINTRNN_DEBUG=1) shows the traceback.
``paintrnn train X --help`` and ``paintrnn bench X --help`` list each trainer's and benchmark's options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paintrnn
from paintrnn.config import bounded
from paintrnn.data import DataError
from paintrnn.run import RunLockedError
from paintrnn.training import CheckpointError, NonFiniteLossError

TRAIN = {
    "draw": ("paintrnn.agents.draw_train", "DRAW on binarised MNIST"),
    "painter": ("paintrnn.agents.painter_train", "stroke painter: backprop, ppo, ddpg or gan mode (MODE first)"),
    "texture": ("paintrnn.agents.texture_train", "spatial LSTM texture model"),
    "glimpse": ("paintrnn.agents.glimpse_train", "glimpse classifier RAM or baselines"),
    "reading": ("paintrnn.agents.dram", "multi-digit reader (DRAM) or its CNN baseline"),
    "doodle": ("paintrnn.agents.doodle_train", "doodler: the painter as a generator, by backprop"),
    "classifier": ("paintrnn.agents.digit_classifier_train", "digit classifier of paintrnn.metrics"),
}
BENCH = {
    "draw": ("paintrnn.agents.draw_bench", "DRAW likelihoods and speed"),
    "painter": ("paintrnn.agents.painter_benchmark", "painter modes"),
    "texture": ("paintrnn.agents.texture_benchmark", "texture models"),
    "glimpse": ("paintrnn.agents.glimpse_benchmark", "glimpse models"),
    "reading": ("paintrnn.agents.reading_benchmark", "cluttered and multi-digit reading"),
    "doodle": ("paintrnn.agents.doodle_benchmark", "doodle quality (Frechet distance)"),
    "envs": ("paintrnn.envs.benchmark", "environment steps per second"),
    "render": (None, "stroke renderer speed (needs a source checkout of paintrnn)"),
}
THREADS_HELP = "torch CPU threads, 0 = torch's default (one is fastest for these small models on a busy CPU)"
USER_ERRORS = (OSError, ValueError, CheckpointError, DataError, RunLockedError, NonFiniteLossError)
"""What a user's mistake raises (a missing, foreign or unwritable file, a bad value, a busy run folder, a diverged
run): reported as one line on stderr, without a traceback unless ``--debug`` or ``PAINTRNN_DEBUG=1``."""


def _listing(group: str, table: dict[str, tuple[str | None, str]]) -> str:
    rows = "\n".join(f"  {name:<9} {about}" for name, (_, about) in table.items())
    return (
        f"usage: paintrnn {group} {{{','.join(table)}}} [options]\n\n{rows}\n\n"
        f"`paintrnn {group} NAME --help` lists NAME's options with their defaults."
    )


def _render_benchmark(argv: list[str]) -> int:
    """Run ``scripts/benchmark_render.py``: it is a script of the source checkout, not a library module."""
    import paintrnn

    script = Path(paintrnn.__file__).resolve().parents[1] / "scripts" / "benchmark_render.py"
    if not script.is_file():
        raise SystemExit(
            "paintrnn bench render runs scripts/benchmark_render.py from a source checkout of paintrnn "
            f"(not found at {script}); clone the repository and run `python scripts/benchmark_render.py`."
        )
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return 0


def _delegate(group: str, table: dict[str, tuple[str | None, str]], argv: list[str]) -> int:
    """``paintrnn train|bench NAME ...``: call NAME's ``main(argv)`` with the remaining options."""
    if not argv or argv[0] in ("-h", "--help"):
        print(_listing(group, table))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in table:
        print(_listing(group, table), file=sys.stderr)
        print(f"paintrnn {group}: unknown name {name!r}", file=sys.stderr)
        return 2
    module = table[name][0]
    if module is None:
        return _render_benchmark(rest)
    saved, sys.argv[0] = sys.argv[0], f"paintrnn {group} {name}"  # argparse's default prog: its usage lines say so
    try:
        result = importlib.import_module(module).main(rest)
    finally:
        sys.argv[0] = saved
    return result if isinstance(result, int) else 0


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: torch's default), restoring the previous number afterwards."""
    import torch

    before = torch.get_num_threads()
    if n < 0:
        raise ValueError(f"--threads must be >= 0, got {n}")
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def writable_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) and check that files can be written into it, before any work is done:
    an unwritable output is one clear ``OSError``, not a traceback after minutes of work."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(f"cannot write into {folder}: {blocking} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into the output folder {folder}: permission denied")
    return folder


def _gif(args: argparse.Namespace) -> int:
    from paintrnn.agents.demo import gif_frames, load_any

    from paintrnn.hub import checkpoint_path
    from paintrnn.media import write_gif
    from paintrnn.training import resolve_device

    if args.out is not None:
        writable_folder(Path(args.out) if Path(args.out).suffix.lower() != ".gif" else Path(args.out).parent)
    loaded = load_any(args.model, resolve_device(args.device))
    out = Path(args.out or f"{loaded.family}.gif")
    if out.suffix.lower() != ".gif" and loaded.family in ("draw", "painter"):  # a folder: the agent's full set
        module = importlib.import_module(f"paintrnn.agents.{loaded.family}_gif")
        written = module.render(checkpoint_path(args.model), out, n=args.n or 16, data_dir=args.data_dir)
    else:
        if out.suffix.lower() != ".gif":
            out = out / f"{loaded.family}.gif"
        frames, duration = gif_frames(loaded, args.n, args.seed)
        written = [write_gif(out, frames, duration_ms=duration, hold_last_ms=1500)]
    for path in written:
        print(path)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from paintrnn.agents.demo import load_any, sample_grid

    from paintrnn.media import save_png
    from paintrnn.training import resolve_device

    if args.out is not None:
        writable_folder(Path(args.out).parent)
    loaded = load_any(args.model, resolve_device(args.device))
    out = Path(args.out or f"{loaded.family}_samples.png")
    print(save_png(out, sample_grid(loaded, args.n, args.seed)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from paintrnn.agents.demo import run_demo

    start = time.perf_counter()
    written = run_demo(args.out, train=args.train, device=args.device, progress=args.progress)
    seconds = time.perf_counter() - start
    print(f"\npaintrnn demo: wrote {len(written)} files in {seconds:.1f} s")
    for path in written.values():
        print(f"  {path}  ({path.stat().st_size / 1024:.0f} KiB)")
    print(f"open {Path(written['index']).resolve().as_uri()} in a browser to see them with captions.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (``train`` and ``bench`` are dispatched before it, see :func:`main`)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="paintrnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"paintrnn {paintrnn.__version__}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error (also: "
                        "PAINTRNN_DEBUG=1); without it a mistake is one line on stderr")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="{demo,paint,render,train,gif,sample,bench}", required=True)

    about = "Write draw.gif, painter.gif, texture.gif, glimpse.gif and index.html."
    demo = sub.add_parser(
        "demo", help="GIFs of every model family and index.html", description=about, formatter_class=fmt
    )
    demo.add_argument("--out", default="paintrnn-demo", help="output folder")
    demo.add_argument("--train", action="store_true", help="train tiny models from scratch first (a few minutes)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    demo.add_argument("--threads", type=bounded(int, "threads", THREADS_HELP), default=1, help=THREADS_HELP)
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    demo.set_defaults(func=_demo)

    sub.add_parser("paint", help="paint a picture with strokes: PNG, GIF, SVG and strokes.json", add_help=False)
    sub.add_parser("render", help="re-render a strokes.json at any size", add_help=False)
    sub.add_parser("train", help="train a model: " + ", ".join(TRAIN), add_help=False)
    sub.add_parser("bench", help="run a benchmark: " + ", ".join(BENCH), add_help=False)

    for name, func, about in (
        ("gif", _gif, "animated GIF of any model (dispatches on its checkpoint's kind)"),
        ("sample", _sample, "PNG grid of results of a generative checkpoint (draw, painter, texture)"),
    ):
        p = sub.add_parser(name, help=about, description=about, formatter_class=fmt)
        p.add_argument("model", help=f"a shipped model ({', '.join(paintrnn.available_models())}), a run folder "
                       "of `paintrnn train` or a checkpoint file")  # fmt: skip
        p.add_argument("--seed", type=int, default=0, help="seed of samples and noise")
        p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
        p.add_argument("--threads", type=bounded(int, "threads", THREADS_HELP), default=1, help=THREADS_HELP)
        p.set_defaults(func=func)
    gif, sample = sub.choices["gif"], sub.choices["sample"]
    gif.add_argument("--out", default=None, help="FILE.gif, or a FOLDER (for draw and painter: their full set of "
                     "GIFs, PNG grids and SVG); None means KIND.gif")  # fmt: skip
    gif.add_argument("--n", type=bounded(int, "n"), default=None, help="images in the GIF; None means 16 DRAW "
                     "samples, 8 painter digits, 2 textures, 4 glimpse digits")  # fmt: skip
    gif.add_argument("--data-dir", default=None, help="folder holding mnist/ (for the full set written to a FOLDER)")
    sample.add_argument("--out", default=None, help="PNG file; None means KIND_samples.png")
    sample.add_argument("--n", type=bounded(int, "n"), default=64, help="images in the grid (a square-ish grid)")
    return parser


def debugging() -> bool:
    """Whether errors show their traceback: the environment variable ``PAINTRNN_DEBUG`` is set (not to 0)."""
    return os.environ.get("PAINTRNN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _run(argv: list[str]) -> int:
    if argv and argv[0] == "train":
        return _delegate("train", TRAIN, argv[1:])
    if argv and argv[0] == "bench":
        return _delegate("bench", BENCH, argv[1:])
    if argv and argv[0] in ("paint", "render"):
        from paintrnn.agents.paint_cli import paint_main, render_main

        return (paint_main if argv[0] == "paint" else render_main)(argv[1:])
    args = build_parser().parse_args(argv)
    with torch_threads(args.threads):
        return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``paintrnn`` console command. A user's mistake (:data:`USER_ERRORS`) is one line on
    stderr and exit status 1; with ``--debug`` first (or ``PAINTRNN_DEBUG=1``) it raises with its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debugging()
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    command = " ".join(argv[:2] if argv and argv[0] in ("train", "bench") else argv[:1])
    try:
        return _run(argv)
    except USER_ERRORS as exc:
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"paintrnn {command}: error: {message} (paintrnn --debug ... shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"paintrnn {command}: interrupted", file=sys.stderr)
        return 130


def command(*prefix: str) -> Callable[[], int]:
    """A console script that runs ``paintrnn PREFIX ...`` with its own arguments: its mistakes are one line, as
    the ``paintrnn`` command's (``pyproject.toml`` points the ``paintrnn-train-*`` and ``paintrnn-benchmark-*``
    scripts here, not at the trainers' own ``main``)."""

    def entry() -> int:
        return main([*prefix, *sys.argv[1:]])

    entry.__doc__ = f"``paintrnn {' '.join(prefix)}``"
    return entry


train_texture, train_glimpse, train_reading = (command("train", k) for k in ("texture", "glimpse", "reading"))
bench_texture, bench_glimpse, bench_reading, bench_envs = (
    command("bench", k) for k in ("texture", "glimpse", "reading", "envs")
)


def gif_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/render_gif.py``: the same as ``paintrnn gif``."""
    return main(["gif", *(sys.argv[1:] if argv is None else argv)])
