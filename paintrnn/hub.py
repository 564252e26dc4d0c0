"""Load any paintrnn model by name or path: ``paintrnn.load("draw")``, ``paintrnn.load("runs/texture")``.

``name_or_path`` is a shipped model's name (:data:`SHIPPED`, the small checkpoints in
``paintrnn/assets/checkpoints/NAME.pt``), a run folder (its ``checkpoint.pt``) or a checkpoint file. A bare
word is always read as a name, so a run folder called ``draw`` in the working directory is ``./draw``.

Every checkpoint names its model family in its ``kind`` tag. The loader of each kind is found through the
entry-point group ``paintrnn.models`` (paintrnn's own are declared in its ``pyproject.toml``), so this core
module never imports the agents, and any installed package can add a model family::

    [project.entry-points."paintrnn.models"]
    mykind = "mypackage.mymodule:load_model"

A loader is ``load_model(path, device="cpu") -> torch.nn.Module`` and returns the model in eval mode. A kind
``FAMILY-MODE`` (say ``painter-ppo``) with no entry point of its own is loaded by ``FAMILY``'s loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import EntryPoint, distributions
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a model is loaded, not with the package
    import torch

ENTRY_POINT_GROUP = "paintrnn.models"
CHECKPOINTS = Path(__file__).parent / "assets" / "checkpoints"
SHIPPED: dict[str, str] = {
    "draw": "DRAW with attention (T = 10 steps) on binarised MNIST",
    "painter": "stroke painter trained by backprop through the renderer, redraws 64 px digits in 10 strokes",
    "painter-colour": "colour stroke painter, trained on synthetic and photo-like pictures, paints photos (agent)",
    "texture": "spatial LSTM texture model (RIDE) of grass",
    "glimpse": "recurrent attention model (RAM) classifying MNIST digits from 7 glimpses of 8x8 pixels",
    "doodler": "recurrent stroke painter as a generator (noise in, strokes out): doodles digits in 5 strokes",
    "digit-classifier": "small CNN on MNIST whose features give paintrnn.metrics' Frechet distance of digit images",
}
"""Shipped model name -> what it is; the checkpoint is ``paintrnn/assets/checkpoints/NAME.pt``."""

Loader = Callable[..., "torch.nn.Module"]


def available_models() -> list[str]:
    """Names of the models shipped with the package (for :func:`load`)."""
    return list(SHIPPED)


def checkpoint_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file meant by a shipped model name, a run folder or a checkpoint path."""
    if isinstance(name_or_path, str) and name_or_path in SHIPPED:
        return CHECKPOINTS / f"{name_or_path}.pt"
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"run folder {path} holds no checkpoint.pt")
        return path / "checkpoint.pt"
    if path.is_file():
        return path
    if isinstance(name_or_path, str) and _is_bare_word(name_or_path):
        raise ValueError(
            f"unknown model {name_or_path!r}: neither a shipped model ({', '.join(SHIPPED)}) "
            "nor an existing checkpoint file or run folder"
        )
    raise FileNotFoundError(f"no checkpoint at {path}")


def _is_bare_word(text: str) -> bool:
    """Whether ``text`` reads as a model name rather than a path (no folder separator, no file suffix)."""
    separators = {"/", os.sep, os.altsep} - {None}
    return not any(s in text for s in separators) and Path(text).suffix not in (".pt", ".pth")


def registered_loaders() -> dict[str, EntryPoint]:
    """Kind tag -> entry point of its loader, gathered over every installed distribution (where two register a
    kind, the first on ``sys.path`` wins). Every distribution is read, not one per name, so stale build metadata
    of paintrnn lying in the working directory cannot hide the installed entry points."""
    found: dict[str, EntryPoint] = {}
    for dist in distributions():
        for entry in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            found.setdefault(entry.name, entry)
    return found


def loader_for(kind: str) -> Loader:
    """The registered loader of ``kind``, or of its family (the part before the first ``-``)."""
    loaders = registered_loaders()
    entry = loaders.get(kind) or loaders.get(kind.split("-", 1)[0])
    if entry is None:
        raise ValueError(
            f"no loader is registered for models of kind {kind!r} (entry-point group {ENTRY_POINT_GROUP!r}; "
            f"registered kinds: {', '.join(sorted(loaders)) or 'none, is paintrnn installed?'})"
        )
    try:
        return entry.load()
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"the loader {entry.value!r} registered for kind {kind!r} cannot be imported: {exc}") from exc


def load(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model of a shipped name, a run folder or a checkpoint file, on ``device`` (``"auto"`` picks CUDA
    when there is one), in eval mode.

    Errors are one line: an unknown name (:class:`ValueError`, listing the names), a missing file
    (:class:`FileNotFoundError`), a file that is no paintrnn checkpoint (:class:`paintrnn.training.CheckpointError`),
    a kind no installed package can load (:class:`ValueError`)."""
    import torch

    from paintrnn.training import CheckpointError, load_checkpoint, resolve_device

    path = checkpoint_path(name_or_path)
    kind = load_checkpoint(path).get("kind")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"{path} is a paintrnn checkpoint without a kind tag: nothing says which model it holds")
    loader = loader_for(kind)
    model = loader(path, device if isinstance(device, torch.device) else resolve_device(device))
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the loader of kind {kind!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()
