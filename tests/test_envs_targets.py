"""Target sources: MNIST, texture crops, image folders, arrays; sizes, channels, seeding, bad specs."""

import warnings

import numpy as np
import pytest
from paintrnn.envs import targets
from paintrnn.envs.targets import make_target_source
from PIL import Image

from paintrnn.data import load_image, texture_path


def sample(spec, h=20, w=30, c=1, seed=0, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = make_target_source(spec, h, w, c, **kwargs)
    return source, source.sample(np.random.default_rng(seed))


def test_mnist_digits_are_resized_to_the_canvas_and_drawn_by_the_generator():
    source, image = sample("mnist", 64, 48, 1)
    assert image.shape == (64, 48, 1) and image.dtype == np.uint8 and image.max() > 200
    assert np.array_equal(image, source.sample(np.random.default_rng(0)))
    assert not np.array_equal(image, source.sample(np.random.default_rng(1)))
    _, rgb = sample("mnist:test", 28, 28, 3)
    assert rgb.shape == (28, 28, 3) and (rgb[..., 0] == rgb[..., 2]).all()


def test_resized_targets_are_cached_and_callers_cannot_corrupt_the_cache(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (3, 7, 9, 1), dtype=np.uint8)
    source, first = sample(images, 20, 30, 1, seed=4)
    assert source._cached.sum() == 1  # resized once, kept
    expected = first.copy()
    first[:] = 0  # the caller owns what it gets
    again = source.sample(np.random.default_rng(4))
    assert np.array_equal(again, expected) and np.array_equal(again, np.asarray(
        Image.fromarray(images[int(np.random.default_rng(4).integers(3)), ..., 0]).resize((30, 20), Image.BILINEAR)
    )[..., None])  # fmt: skip
    monkeypatch.setattr(targets, "CACHE_BYTES", 3 * 20 * 30 - 1)
    small, image = sample(images, 20, 30, 1, seed=4)
    assert small._cache is None and np.array_equal(image, expected)  # over the budget: resized per sample


def test_full_mnist_from_data_dir(shared_data):
    source, image = sample("mnist", 28, 28, 1, data_dir=shared_data)
    assert len(source) == 60000 and image.shape == (28, 28, 1)


def test_texture_targets_are_canvas_sized_crops_of_the_texture():
    source, crop = sample("texture:brick", 16, 24, 3, seed=5)
    texture = load_image(texture_path("brick"), 3)
    assert crop.shape == (16, 24, 3)
    found = any(
        np.array_equal(texture[y : y + 16, x : x + 24], c)
        for c in (crop, crop[:, ::-1])
        for y in range(texture.shape[0] - 15)
        for x in range(texture.shape[1] - 23)
        if texture[y, x, 0] == c[0, 0, 0]
    )
    assert found
    assert not np.array_equal(crop, source.sample(np.random.default_rng(6)))
    _, grey = sample("texture:grass", 8, 8, 1)
    assert grey.shape == (8, 8, 1)


def test_folder_and_array_targets(tmp_path):
    for k in range(3):
        Image.fromarray(np.full((10, 12, 3), 80 * k, np.uint8)).save(tmp_path / f"im{k}.png")
    source, image = sample(f"folder:{tmp_path}", 5, 6, 1)
    assert len(source) == 3 and image.shape == (5, 6, 1) and len(np.unique(image)) == 1
    assert len(make_target_source(str(tmp_path), 5, 6, 3)) == 3  # a bare directory path works too
    floats = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4)
    source, image = sample(floats, 8, 8, 1)
    assert image.shape == (8, 8, 1) and image.dtype == np.uint8
    assert make_target_source(None, 8, 8, 1) is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nowhere", "unknown target"),
        (np.zeros((3, 4, 4, 2), np.uint8), "shape"),
        (np.full((1, 4, 4), 2.0), "within \\[0, 1\\]"),
        (np.zeros((1, 4, 4), np.int32), "uint8 or float"),
        (42, "string, a path, an array"),
    ],
)
def test_bad_target_specs_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        make_target_source(spec, 8, 8, 1)
