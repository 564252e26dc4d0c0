"""Shared fixtures: the read-only data folder beside the checkout (``../shared/data``), when present."""

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"needs the full MNIST files in {SHARED_DATA / 'mnist'} (absent on this machine)")
    return SHARED_DATA


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
