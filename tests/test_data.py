import gzip
import hashlib
import json

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


def _fake_mnist(folder, n_train=30, n_test=10, train_shape=(28, 28)):
    """Four small IDX files in MNIST's layout (``folder/mnist``), the training images of ``train_shape``."""
    rng = np.random.default_rng(0)
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        shape = train_shape if prefix == "train" else (28, 28)
        images = rng.integers(0, 256, (n, *shape), np.uint8)
        _write_idx(folder / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images, True)
        _write_idx(folder / "mnist" / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, np.uint8), False)
    return folder


@pytest.fixture
def no_default_mnist(tmp_path, monkeypatch):
    """No MNIST in $PAINTRNN_DATA or the cache, and the fallback not yet announced in this process."""
    monkeypatch.setenv("PAINTRNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "_announced", set())


def test_missing_full_mnist_says_what_to_do(tmp_path, no_default_mnist):
    with pytest.raises(DataError, match="download_mnist"):
        data.load_mnist("train", source="full")


@pytest.mark.parametrize("call", ["load_mnist", "find_mnist", "mnist_description"])
def test_an_explicit_data_dir_without_mnist_is_an_error_not_the_sample(tmp_path, call, no_default_mnist, capsys):
    typo = tmp_path / "dta"
    with pytest.raises(DataError) as info:
        getattr(data, call)(root=typo)
    message = str(info.value)
    assert "\n" not in message and str(typo) in message and "t10k-images-idx3-ubyte" in message
    assert f"download_mnist({str(typo)!r})" in message and "docs/data.md" in message
    assert capsys.readouterr().err == ""  # nothing announced: no fallback happened


def test_a_data_dir_missing_one_file_names_it(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"MNIST file\(s\) t10k-labels-idx1-ubyte \(raw or .gz\) not found in"):
        data.load_mnist("train", root=tmp_path)


def test_fallback_to_the_sample_only_without_a_path_announced_once_and_described(no_default_mnist, capsys):
    images, labels = data.load_mnist("test")
    assert images.shape == (500, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (500,) and set(np.unique(labels)) == set(range(10))
    data.load_mnist("train")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no --data-dir given" in err[0] and "2,000-digit sample" in err[0]
    assert "download_mnist()" in err[0]
    assert data.mnist_description() == "mnist-sample (2000 digits)"
    data.load_mnist("train", source="sample")  # asked for: nothing to announce
    assert capsys.readouterr().err == ""


def test_full_files_are_described_by_their_training_count(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, n_train=30)
    assert data.mnist_description(tmp_path) == "mnist (30 digits)"
    monkeypatch.setenv("PAINTRNN_DATA", str(tmp_path))
    assert data.mnist_description() == "mnist (30 digits)"
    assert data.load_mnist("train")[0].shape == (30, 28, 28)
    assert data.mnist_description(tmp_path, source="sample") == "mnist-sample (2000 digits)"


def test_idx_shapes_are_checked(tmp_path):
    bad = _fake_mnist(tmp_path / "a", train_shape=(56, 14))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz holds uint8 images of shape \(30, 56, 14\)"):
        data.load_mnist("train", root=bad)
    assert data.load_mnist("test", root=bad)[0].shape == (10, 28, 28)  # the other split is fine
    short = _fake_mnist(tmp_path / "b")
    _write_idx(short / "mnist" / "train-labels-idx1-ubyte", np.zeros(29, np.uint8), False)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte holds uint8 labels of shape \(29,\).*the 30 images"):
        data.load_mnist("train", root=short)
    wide = _fake_mnist(tmp_path / "c")
    _write_idx(wide / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(10, np.int32), False)
    with pytest.raises(DataError, match="int32 labels"):
        data.load_mnist("test", root=wide)


def test_trainers_refuse_a_mistyped_data_dir_and_record_the_data(tmp_path, no_default_mnist, capsys):
    from paintrnn.agents.cli import main

    typo = str(tmp_path / "mnsit")
    for argv in (["train", "glimpse", "--epochs", "1"], ["train", "draw", "--epochs", "1"],
                 ["train", "painter", "backprop", "--iters", "1"]):  # fmt: skip
        assert main([*argv, "--data-dir", typo, "--run-dir", str(tmp_path / "run")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"data dir {typo}:" in err and "Traceback" not in err
    run = tmp_path / "glimpse"
    glimpse = ["train", "glimpse", "--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--hidden", "16",
               "--glimpses", "2", "--no-gif", "--no-progress", "--run-dir", str(run)]  # fmt: skip
    assert main(glimpse) == 0
    assert "2,000-digit sample" in capsys.readouterr().err
    assert json.loads((run / "result.json").read_text())["data"] == "mnist-sample (2000 digits)"
    full = _fake_mnist(tmp_path / "data", n_train=64, n_test=32)
    assert main([*glimpse[:-1], str(tmp_path / "glimpse-full"), "--data-dir", str(full)]) == 0
    assert json.loads((tmp_path / "glimpse-full" / "result.json").read_text())["data"] == "mnist (64 digits)"
    draw = ["train", "draw", "--preset", "tiny", "--epochs", "1", "--train-images", "40", "--test-images", "20",
            "--batch-size", "20", "--iwae-k", "2", "--no-progress", "--threads", "1", "--run-dir", str(tmp_path / "d"),
            "--data-dir", str(full)]  # fmt: skip
    assert main(draw) == 0
    assert json.loads((tmp_path / "d" / "eval.json").read_text())["data"] == "mnist (64 digits)"
    backprop = ["train", "painter", "backprop", "--iters", "2", "--canvas-size", "16", "--hidden", "16", "--width",
                "4", "--batch-size", "4", "--eval-size", "4", "--no-progress", "--run-dir",
                str(tmp_path / "p")]  # fmt: skip
    assert main(backprop) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].count("data=mnist-sample (2000 digits)") == 1


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
