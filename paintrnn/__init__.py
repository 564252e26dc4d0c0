"""paintrnn: recurrent networks that make images step by step.

The core package holds the shared building blocks (renderer, attention, data, media, spatial LSTM
layers, training utilities). Environments live in :mod:`paintrnn.envs`, learners in
:mod:`paintrnn.agents`. The core never imports either: :func:`load` finds each model family's loader
through the ``paintrnn.models`` entry points (see :mod:`paintrnn.hub`).

    >>> import paintrnn
    >>> paintrnn.available_models()
    ['draw', 'painter', 'painter-colour', 'texture', 'glimpse', 'doodler', 'digit-classifier']
    >>> model = paintrnn.load("draw")  # or a run folder, or a checkpoint.pt  # doctest: +SKIP
    >>> paintrnn.paint("photo.jpg", strokes=1000).save("painting/")  # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version

from paintrnn.hub import available_models, load

try:
    __version__ = _installed_version("paintrnn")  # the single source is pyproject.toml's [project] version
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Painting", "__version__", "available_models", "load", "paint"]


def __getattr__(name: str):  # paint and Painting on first use: importing them pulls in torch
    if name in ("paint", "Painting"):
        from paintrnn import painting

        return getattr(painting, name)
    raise AttributeError(f"module 'paintrnn' has no attribute {name!r}")
