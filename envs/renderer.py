"""How the stroke environments call the renderer: eager at once, compiled when it pays, and no step waits.

Paint-v0 and PaintGrid-v0 paint with :func:`paintrnn.render.render_strokes`. Its ``torch.compile``-d kernels
are several times faster on big batches, but compiling them costs seconds to a minute of CPU, and Inductor's
on-disk cache (which persists across processes) shortens only part of it: the graph tracing is redone in
every process (about 7 s of CPU on a 2-core machine even with a warm cache). The env option
``render_backend`` says when to pay:

* ``"auto"`` (default): every step renders eagerly at first. An env whose steps render at least
  ``COMPILE_PIXELS`` stroke x canvas pixels (e.g. 64 envs x 1 stroke x 64 x 64 px) and that has rendered
  ``COMPILE_AFTER_PIXELS`` of them eagerly (256 such steps, 1-2 s on a 2-core CPU; counted in pixels, not
  seconds, so that the switch does not depend on the machine's load) starts the compile in a background
  thread, announced by one line on stderr. Steps go on eagerly meanwhile, slower (they share the interpreter
  lock with the compiler: typically 0.1-1 s a step during the 7-25 s the compile takes on a 2-core CPU), and
  use the compiled kernels from the first step after they are ready: no step waits for the compiler, small
  batches (single envs, most tests) never compile, and short runs end before it starts. A process that exits
  while the compile runs waits for it to finish (a compile cut short at exit can abort the interpreter).
* ``"eager"``: never compiles.
* ``"compiled"``: compiles at the first step, in the foreground, announced on stderr.

Reproducibility: the compiled kernels agree with the eager ones to float rounding (about 1e-6 on a few pixels
in a hundred; the uint8 observations almost never differ), not bit for bit, and under ``"auto"`` the step at
which a big batch switches depends on how long the compile took. Two ``"auto"`` runs with the same seeds
therefore agree to rounding only once they compile; ``"eager"`` or ``"compiled"`` give bit-for-bit repeatable
runs (small batches never compile, so they are repeatable under ``"auto"`` too).

Both the warm-up and the env's own calls render under ``torch.no_grad()`` (environments need no gradients,
and ``torch.compile`` guards on the grad mode: a caller's ``no_grad`` must not trigger a recompile).
"""

from __future__ import annotations

import sys
import threading
import time

import torch
from torch import Tensor

from paintrnn.render import render_strokes

BACKENDS = ("auto", "eager", "compiled")
COMPILE_PIXELS = 1 << 18
"""Stroke x canvas pixels per step from which ``"auto"`` compiles (the renderer's own "auto" threshold)."""
COMPILE_AFTER_PIXELS = 1 << 26
"""Stroke x canvas pixels rendered eagerly (in calls of at least ``COMPILE_PIXELS``) after which ``"auto"`` starts
the background compile."""

_LOCK = threading.Lock()
_COMPILES: dict[tuple, BackgroundCompile] = {}  # one per call signature and process
_ANNOUNCED: set[tuple] = set()


def _signature(strokes: Tensor, canvas: Tensor) -> tuple:
    return tuple(strokes.shape), tuple(canvas.shape), strokes.dtype, strokes.device


def _describe(strokes: Tensor, canvas: Tensor) -> str:
    b, k = strokes.shape[:2]
    c, h, w = canvas.shape[1:]
    return f"{b} canvas(es) of {c}x{h}x{w} px, {k} stroke(s) each, on {canvas.device}"


class BackgroundCompile:
    """A thread that compiles the renderer's kernels by rendering one copy of a real call with them."""

    def __init__(self, strokes: Tensor, canvas: Tensor) -> None:
        self.ready = threading.Event()
        """Set when the thread has finished (successfully or not)."""
        self.error: BaseException | None = None
        self.seconds: float | None = None
        """How long the compile took."""
        self._start = time.perf_counter()
        args = (strokes.detach().clone(), canvas.detach().clone())  # the env goes on changing its own tensors
        # Not a daemon: the interpreter waits for it at exit instead of killing it inside the compiler.
        self._thread = threading.Thread(target=self._run, args=args, name="paintrnn-renderer-compile")
        self._thread.start()

    def _run(self, strokes: Tensor, canvas: Tensor) -> None:
        try:
            with torch.no_grad():
                render_strokes(strokes, canvas, mode="hard", backend="compiled")
        except BaseException as err:  # the env stays eager; render.py itself falls back on compiler failures
            self.error = err
        finally:
            self.seconds = time.perf_counter() - self._start
            self.ready.set()

    @property
    def succeeded(self) -> bool:
        return self.ready.is_set() and self.error is None


def background_compile(strokes: Tensor, canvas: Tensor) -> BackgroundCompile:
    """The background compile for calls shaped like ``strokes``, ``canvas``: started now (announced on stderr)
    unless this process already has one."""
    key = _signature(strokes, canvas)
    with _LOCK:
        job = _COMPILES.get(key)
        if job is None:
            print(
                f"paintrnn.envs: compiling the stroke renderer in the background for {_describe(strokes, canvas)} "
                "(torch.compile: seconds to a minute of CPU, once per process); steps stay eager until it is ready "
                "(render_backend='eager' skips this)",
                file=sys.stderr,
                flush=True,
            )
            job = _COMPILES[key] = BackgroundCompile(strokes, canvas)
    return job


class StrokeRenderer:
    """An env's renderer calls (hard mode, no gradients) with the ``render_backend`` policy of the module docstring."""

    def __init__(self, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"render_backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.eager_pixels = 0
        """Stroke x canvas pixels rendered eagerly in calls big enough to compile (``"auto"``)."""
        self.compile: BackgroundCompile | None = None
        """The background compile this env waits for (``"auto"``), once started."""
        self._big: bool | None = None  # whether the last call was big enough to compile (None: no call yet)

    @property
    def settled(self) -> bool:
        """Whether the kernels now in use are final: no background compile is running or still to start."""
        if self.backend != "auto" or self.compiled:
            return True
        return self.compile.ready.is_set() if self.compile is not None else self._big is False

    @property
    def compiled(self) -> bool:
        """Whether the next step renders with the compiled kernels."""
        return self.backend == "compiled" or (self.compile is not None and self.compile.succeeded)

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for a started background compile (at most ``timeout`` s); return :attr:`compiled`."""
        if self.compile is not None:
            self.compile.ready.wait(timeout)
        return self.compiled

    def __call__(self, strokes: Tensor, canvas: Tensor) -> Tensor:
        """``strokes (B, K, 10 + C)`` painted onto ``canvas (B, C, H, W)``: a new canvas."""
        with torch.no_grad():
            if self.compiled:
                if self.backend == "compiled":
                    self._announce(strokes, canvas)
                return render_strokes(strokes, canvas, mode="hard", backend="compiled")
            out = render_strokes(strokes, canvas, mode="hard", backend="eager")
        pixels = strokes[..., 0].numel() * canvas[0, 0].numel()  # B K H W
        self._big = pixels >= COMPILE_PIXELS
        if self.backend == "auto" and self.compile is None and self._big:
            self.eager_pixels += pixels
            if self.eager_pixels >= COMPILE_AFTER_PIXELS:
                self.compile = background_compile(strokes, canvas)
        return out

    @staticmethod
    def _announce(strokes: Tensor, canvas: Tensor) -> None:
        key = _signature(strokes, canvas)
        with _LOCK:
            if key in _ANNOUNCED or (key in _COMPILES and _COMPILES[key].succeeded):
                return
            _ANNOUNCED.add(key)
        print(
            f"paintrnn.envs: compiling the stroke renderer for {_describe(strokes, canvas)} "
            "(render_backend='compiled'; torch.compile: this step takes seconds to a minute)",
            file=sys.stderr,
            flush=True,
        )
