import gzip
import hashlib

import numpy as np
import pytest
import torch

from paintrnn import data
from paintrnn.data import DataError


def _write_idx(path, arr: np.ndarray, gz: bool):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return raw


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_raw_and_gzip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("x.idx.gz" if gz else "x.idx")
    _write_idx(p, arr, gz)
    np.testing.assert_array_equal(data.read_idx(p), arr)
    arr32 = np.array([1, -2, 70000], dtype=np.int32)
    _write_idx(tmp_path / "y", arr32, False)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "y"), arr32)


def test_truncated_and_corrupt_files_are_clear_errors(tmp_path):
    raw = _write_idx(tmp_path / "ok", np.zeros((5, 4, 4), np.uint8), False)
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DataError, match="magic"):
        data.read_idx(tmp_path / "junk")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:-10])
    with pytest.raises(DataError, match="cannot read"):
        data.read_idx(tmp_path / "bad.gz")


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTRNN_DATA", str(tmp_path / "env"))
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.data_dir() == tmp_path / "env"
    monkeypatch.delenv("PAINTRNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_dir() == tmp_path / "cache" / "paintrnn"


def test_missing_full_mnist_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="download_mnist"):
        data.load_mnist("train", root=tmp_path, source="full")
    with pytest.warns(UserWarning, match="sample"):
        images, labels = data.load_mnist("test", root=tmp_path, source="auto")
    assert images.shape == (500, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (500,) and set(np.unique(labels)) == set(range(10))


def test_bundled_sample_is_the_start_of_real_mnist(shared_data):
    images, labels = data.load_mnist("train", root=shared_data, source="full")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    sample = data.mnist_sample()
    np.testing.assert_array_equal(sample["train_images"], images[:2000])
    np.testing.assert_array_equal(sample["train_labels"], labels[:2000])
    raw = gzip.decompress((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == data.MNIST_FILES["t10k-labels-idx1-ubyte"]


def test_download_verifies_checksums(tmp_path, monkeypatch):
    payload = gzip.compress(b"not mnist")

    class Resp:
        def __init__(self, *a, **k):
            pass

        def read(self):
            return payload

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(data.urllib.request, "urlopen", Resp)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.download_mnist(tmp_path, progress=False)
    assert not list((tmp_path / "mnist").glob("*.gz"))  # nothing half-written left behind


def test_binarisation():
    x = torch.full((4000,), 0.3)
    a = data.binarize_dynamic(x, torch.Generator().manual_seed(1))
    b = data.binarize_dynamic(x, torch.Generator().manual_seed(2))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.03 and not torch.equal(a, b)
    assert torch.equal(data.binarize_fixed(x, 7), data.binarize_fixed(x, 7))


def test_images_textures_and_crops(tmp_path):
    assert data.list_textures() == ["brick", "grass"]
    img = data.load_image(data.texture_path("brick"))
    assert img.shape == (512, 512, 1) and img.dtype == np.uint8
    assert data.load_image(data.texture_path("grass"), channels=3).shape == (512, 512, 3)
    (tmp_path / "note.png").write_text("not an image")
    with pytest.raises(DataError, match="not a readable image"):
        data.load_image(tmp_path / "note.png")
    with pytest.raises(ValueError, match="unknown texture"):
        data.texture_path("marble")
    rng = np.random.default_rng(0)
    crops = data.random_crops(img, 32, 10, rng)
    assert crops.shape == (10, 32, 32, 1)
    with pytest.raises(ValueError, match="smaller than"):
        data.random_crops(img[:20], 32, 1, rng)
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    for k in range(3):
        Image.fromarray(np.full((40, 30, 3), 50 * k, np.uint8)).save(folder / f"{k}.png")
    stack = data.load_image_folder(folder, (16, 12), channels=3)
    assert stack.shape == (3, 16, 12, 3) and stack[2, 0, 0, 0] == 100
