"""Shared fixtures: the read-only data folder beside the checkout (``../shared/data``), when present."""

import os
from pathlib import Path

import pytest
import torch

from paintrnn.data import DataError, find_mnist

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The folder holding the full MNIST files: ``../shared/data`` beside the checkout, else ``$PAINTRNN_DATA``."""
    candidates = [SHARED_DATA] + ([Path(os.environ["PAINTRNN_DATA"])] if os.environ.get("PAINTRNN_DATA") else [])
    for root in candidates:
        try:
            if find_mnist(root) is not None:
                return root
        except DataError:  # an explicit folder without the files is an error in the library; here: try the next
            continue
    pytest.skip(f"needs the full MNIST files in {SHARED_DATA / 'mnist'} or $PAINTRNN_DATA (absent on this machine)")


@pytest.fixture
def textures_dir() -> Path:
    if not (SHARED_DATA / "textures" / "brick.png").is_file():
        pytest.skip(f"needs the textures in {SHARED_DATA / 'textures'} (absent on this machine)")
    return SHARED_DATA / "textures"


@pytest.fixture
def one_torch_thread():
    """Small tensors: one thread is fastest, and immune to oversubscription when test workers share cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def killed_after_checkpoints():
    """``with killed_after_checkpoints(n): train(cfg)``: the run is killed (KeyboardInterrupt) right after its n-th
    checkpoint written by ``paintrnn.run.Run.save``; the block expects that kill, and ``Run.save`` is restored."""
    import contextlib

    from paintrnn.run import Run

    @contextlib.contextmanager
    def killed(n: int):
        real, calls = Run.save, []

        def save_then_die(self, *args, **kwargs):
            real(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt

        Run.save = save_then_die
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            Run.save = real

    return killed
