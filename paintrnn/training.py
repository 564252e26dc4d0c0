"""Training utilities shared by every agent: seeding, devices, atomic checkpoints, metrics, DDP.

A run directory holds ``config.json``, ``metrics.jsonl``, ``curves.png`` and ``checkpoint.pt``.
Checkpoints are plain dicts of tensors and Python primitives (config beside the weights), written to a
temporary file and renamed into place, so a kill never leaves a half-written file; they are read back with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import hashlib
import json
import math
import os
import pickle
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

T = TypeVar("T")
CHECKPOINT_FORMAT = "paintrnn-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or of another kind."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` for data order and noise."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available; ``"cuda"`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    return device


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine a result was measured on (for results JSON files): platform, Python, torch, CPU count, torch
    threads, load average, device and GPU name."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = os.getloadavg()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS (process-wide).

    glibc maps every allocation above 32 MB (e.g. a batch of 256 RGB 128x128 canvases: 50 MB) afresh and
    returns it on free, so each such tensor is first-touched page by page again: on a small VM that costs
    ~16 ms per 50 MB, more than the renderer's own work. PyTorch's CPU tuning guide advises a caching
    allocator (jemalloc, tcmalloc) for the same reason; this is the in-process equivalent. Entry points
    (scripts) may call it; library code does not. Price: resident memory stays at its peak. Returns whether
    the setting took effect (False off glibc Linux).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file behind."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a resumed run needs to continue exactly (tensors and primitives only)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np.random.get_state()[1].tolist()),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": json.dumps(random.getstate()[1]),
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    keys = np.array(json.loads(state["numpy"]), dtype=np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(json.loads(state["python"])), None))
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tensor_digest(obj: Any) -> str:
    """SHA-256 over every tensor in a nested structure of dicts, lists and tuples (keys sorted; dtype, shape and
    bytes of each tensor): a checkpoint stores it, and :func:`load_checkpoint` verifies it, because
    ``torch.load`` does not check the zip's CRCs and a flipped bit would otherwise load as a changed weight."""
    digest = hashlib.sha256()

    def walk(node: Any, key: str) -> None:
        if torch.is_tensor(node):
            t = node.detach().cpu().contiguous()
            digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(node, dict):
            for k in sorted(node, key=str):
                walk(node[k], f"{key}/{k}")
        elif isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                walk(item, f"{key}/{i}")

    walk(obj, "")
    return "sha256:" + digest.hexdigest()


def _seal(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its tensors' checksum under ``checksum``."""
    payload["checksum"] = tensor_digest({k: v for k, v in payload.items() if k != "checksum"})
    return payload


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    config: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    generator: torch.Generator | None = None,
    extra: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
) -> None:
    """Write the model's weights with its config (a dataclass), optimiser, step and RNG state, atomically.
    ``run_config`` (the whole training config, see :mod:`paintrnn.run`) is what a resume is checked against."""
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "rng": rng_state(generator),
        "extra": extra or {},
    }
    if run_config is not None:
        payload["run_config"] = run_config
    atomic_torch_save(_seal(payload), path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", kind: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``); a missing, corrupt or foreign file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"cannot read {path}: permission denied") from exc
    except pickle.UnpicklingError as exc:  # objects other than tensors and plain values: refused, never run
        raise CheckpointError(
            f"{path} is not a paintrnn checkpoint: it holds Python objects other than tensors and plain values, "
            "which are refused (loading them could run code)"
        ) from exc
    except Exception as exc:  # truncated zip, bad records...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable paintrnn checkpoint (corrupt or truncated?): {first}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a paintrnn checkpoint (format tag missing)")
    if "checksum" in ckpt:  # checkpoints written before checksums existed have none
        actual = tensor_digest({k: v for k, v in ckpt.items() if k != "checksum"})
        if actual != ckpt["checksum"]:
            raise CheckpointError(f"{path} is corrupt: its tensors do not match the checksum stored with them")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    for key in ckpt.get("half_keys", ()):  # weights stored in float16 by export_weights: back to float32
        ckpt["model"][key] = ckpt["model"][key].float()
    return ckpt


def inference_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The weights to run from a loaded checkpoint: the :class:`EMA` average when the run kept one, else the model's."""
    return ckpt.get("extra", {}).get("ema") or ckpt["model"]


def _holds_tensor(value: Any) -> bool:
    if torch.is_tensor(value):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return False


def export_weights(
    src: str | os.PathLike, dst: str | os.PathLike, half: bool | None = None, half_above_mb: float = 4.0
) -> dict[str, Any]:
    """Write a small inference-only copy of a checkpoint: format, kind, config, weights (the averaged ones when
    the run kept an :class:`EMA` under ``extra["ema"]``), step and the non-tensor ``extra`` entries (no
    optimiser, no RNG state).

    ``half=True`` stores the float32 weights as float16 (listed under ``half_keys``; :func:`load_checkpoint`
    casts them back to float32); ``half=None`` does so when the float32 weights exceed ``half_above_mb``.
    Returns the written payload.
    """
    ckpt = load_checkpoint(src)
    weights = dict(inference_weights(ckpt))
    size_mb = sum(v.numel() * v.element_size() for v in weights.values()) / 1e6
    if half is None:
        half = size_mb > half_above_mb
    half_keys = [k for k, v in weights.items() if half and v.dtype == torch.float32]
    for key in half_keys:
        if not torch.isfinite(weights[key].half()).all():
            raise ValueError(f"weight {key!r} of {src} overflows float16; export it with half=False")
        weights[key] = weights[key].half()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": ckpt["kind"],
        "config": ckpt["config"],
        "model": weights,
        "step": ckpt.get("step", 0),
        "extra": {k: v for k, v in ckpt.get("extra", {}).items() if not _holds_tensor(v)},  # not ema, rng, ...
        "half_keys": half_keys,
    }
    atomic_torch_save(_seal(payload), dst)
    return payload


class EMA:
    """Exponential moving average of a model's parameters (Polyak averaging), kept in a frozen copy.

    After each optimiser step, ``update(model, step)`` moves every averaged parameter towards the model's by
    ``1 - d`` with ``d = min(decay, (1 + step) / (10 + step))``: early on, when the weights move fast, the
    average follows closely (TensorFlow's ``num_updates`` rule). ``model`` is the average, ready to evaluate."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(getattr(model, "module", model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        source = getattr(model, "module", model).parameters()
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in source], 1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def synced_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once ``device`` has run the work queued on it. CUDA runs asynchronously: a plain
    clock read charges the queued training steps to whatever waits on them next (an evaluation that is kept out
    of the training time, say), which makes training look faster than it is."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def check_finite(loss: torch.Tensor, step: int) -> None:
    """Stop training with a clear message when the loss is NaN or infinite."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"loss became {loss.detach().float().mean().item()} at step {step}; training stopped and the "
            "last good checkpoint was kept (try a lower learning rate or stronger gradient clipping)"
        )


class MetricsLogger:
    """Append-only JSONL metrics. On resume, lines after ``resume_step`` are dropped (they will be redone)."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [ln for ln in _whole_lines(self.path) if json.loads(ln)["step"] <= resume_step]
            atomic_write_bytes(self.path, "".join(ln + "\n" for ln in kept).encode())

    def log(self, step: int, **metrics: float) -> None:
        if not self.enabled:
            return
        row = {
            "step": int(step),
            **{
                k: (float(v) if isinstance(v, (int, float, np.floating)) or torch.is_tensor(v) else v)
                for k, v in metrics.items()
            },
        }
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def _whole_lines(path: Path) -> list[str]:
    """The non-empty lines of a JSONL file, without a torn final line (a kill in the middle of a write)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if lines:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return lines


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` (a torn final line, from a kill during a write, is skipped)."""
    return [json.loads(ln) for ln in _whole_lines(Path(path))]


def plot_metrics(jsonl_path: str | os.PathLike, png_path: str | os.PathLike, keys: Iterable[str] | None = None) -> None:
    """One panel per metric against step (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(jsonl_path)
    if keys is None:
        keys = sorted({k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))})
    keys = list(keys)
    if not rows or not keys:
        return
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.2 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def write_config(path: str | os.PathLike, config: Any) -> None:
    atomic_write_bytes(path, (json.dumps(dataclasses.asdict(config), indent=2) + "\n").encode())


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) distributed run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if launched by it (gloo on CPU, NCCL on CUDA); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over all processes (identity in a single process)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def progress(iterable: Iterable[T], enabled: bool = True, **kwargs: Any) -> Iterator[T]:
    """A tqdm progress bar (disabled on non-main ranks or when ``enabled`` is False)."""
    return iter(tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs))
