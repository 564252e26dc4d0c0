"""Recurrent drawing agents (installed as ``paintrnn.agents``).

The model classes are importable from here (``from paintrnn.agents import DRAW, Painter``), ``load`` is
:func:`paintrnn.load` (a shipped name, a run folder or a checkpoint, dispatched on the checkpoint's kind) and
each family's module holds its loader ``load_model(path, device="cpu")``: ``paintrnn.agents.draw.load_model``,
``.vae``, ``.painter``, ``.texture``, ``.glimpse``. Classes and family modules are imported on first use, so
``import paintrnn.agents`` stays light (the ``paintrnn`` command's ``--help`` and ``--version`` need no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if __name__ != "paintrnn.agents":  # pragma: no cover - guard against `import agents` from the repo root
    raise ImportError(
        f"this folder is the package 'paintrnn.agents' and must not be imported as {__name__!r}; "
        "install paintrnn (pip install -e .) and use `import paintrnn.agents`."
    )

from paintrnn.hub import available_models, load

MODEL_MODULES = ("draw", "vae", "painter", "texture", "glimpse")
"""The model families' modules, each with its ``load_model`` (registered under ``paintrnn.models``)."""
_EXPORTS = {
    "DRAW": "draw",
    "DrawConfig": "draw",
    "VAE": "vae",
    "VAEConfig": "vae",
    "Painter": "painter",
    "PainterSpec": "painter",
    "TextureModel": "texture",
    "TextureModelConfig": "texture",
    "RAM": "glimpse",
    "Doodler": "doodler",
}
__all__ = [
    "available_models", "load", "DRAW", "DrawConfig", "VAE", "VAEConfig", "Painter", "PainterSpec",
    "TextureModel", "TextureModelConfig", "RAM", "Doodler",
]  # fmt: skip

if TYPE_CHECKING:
    from paintrnn.agents.draw import DRAW, DrawConfig
    from paintrnn.agents.glimpse import RAM
    from paintrnn.agents.painter import Painter, PainterSpec
    from paintrnn.agents.texture import TextureModel, TextureModelConfig
    from paintrnn.agents.vae import VAE, VAEConfig


def __getattr__(name: str) -> Any:
    """Import an exported class, or a family's module, on first access (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in MODEL_MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *MODEL_MODULES})
