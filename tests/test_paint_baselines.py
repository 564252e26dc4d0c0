"""Image metrics (PSNR, SSIM) and the photo-painting baselines (mosaic, hill climbing, random optimisation)."""

import math
import time

import numpy as np
import pytest
import torch

from paintrnn import photo_baselines
from paintrnn.image_metrics import psnr, ssim
from paintrnn.photo_baselines import hill_climb, mosaic, mosaic_grid, optimize_random
from paintrnn.tiles import render_tiled


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _target(h: int = 40, w: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([x, y, 0.5 + 0.4 * torch.sin(8 * x * y)])
    img[:, h // 4 : h // 2, w // 3 : 2 * w // 3] = torch.tensor([0.9, 0.1, 0.2])[:, None, None]
    return img


def test_psnr_known_values():
    a = torch.zeros(3, 10, 10)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same"):
        psnr(a, torch.zeros(3, 10, 11))


def test_ssim_is_one_for_identical_pictures_and_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 32, 40, generator=g)
    assert ssim(x, x) == pytest.approx(1.0)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert 0 < ssim(x, noisier) < ssim(x, noisy) < 1
    assert ssim(torch.zeros(3, 1, 1), torch.zeros(3, 1, 1)) == pytest.approx(1.0)  # 1 px: a 1x1 window
    assert ssim(x, 1 - x) < 0.1


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((37, 53, 3))
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1)
    ref = metrics.structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_mosaic_has_the_asked_number_of_square_cells():
    assert mosaic_grid(4000, 512, 512) == (63, 63)  # 3969 square cells rather than 50 x 80 oblong ones
    assert mosaic_grid(1000, 256, 256) == (32, 32)
    rows, cols = mosaic_grid(12, 300, 400)
    assert rows * cols == 12 and (rows, cols) == (3, 4)
    flat = torch.full((3, 20, 30), 0.25)
    pic, cells = mosaic(flat, 6)
    assert cells == 6 and torch.allclose(pic, flat)
    t = _target()
    few, many = psnr(mosaic(t, 4)[0], t), psnr(mosaic(t, 200)[0], t)
    assert many > few + 3


def test_hill_climbing_places_every_stroke_and_lowers_the_error():
    t = _target()
    strokes, pic = hill_climb(t, 30, candidates=16, rounds=2, seed=0)
    assert strokes.shape == (30, 13)
    background = t.mean((1, 2))[:, None, None].expand_as(t)
    assert psnr(pic, t) > psnr(background, t) + 3
    again = torch.from_numpy(render_tiled(strokes, 40, 48, t.mean((1, 2)))).permute(2, 0, 1)
    assert float((again - pic).abs().max()) < 1e-4  # its canvas is the hard render of its strokes
    more = hill_climb(t, 30, candidates=16, rounds=6, seed=0)[1]
    assert psnr(more, t) > psnr(pic, t)  # more mutation rounds climb higher


def test_hill_climbing_keeps_to_a_small_time_budget_with_many_strokes():
    t = _target(96, 128)
    flat = t.mean((1, 2))[:, None, None].expand_as(t)
    start = time.perf_counter()
    strokes, pic = hill_climb(t, 300, seconds=1.5, seed=0)
    took = time.perf_counter() - start
    assert strokes.shape == (300, 13)
    assert took <= 3 * 1.5 + 1.0  # it scored 32 candidates per stroke at least, whatever the budget (546 s for 30)
    assert psnr(pic, t) > psnr(flat, t) + 3


class _FakeClock:
    """A clock that only moves when candidates are scored: 1 ms per candidate plus 0.5 ms per batch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now, self.scored = 0.0, 0
        best = photo_baselines._best

        def scored(geo, canvas, target):
            self.now += 0.0005 + 0.001 * len(geo)
            self.scored += len(geo)
            return best(geo, canvas, target)

        monkeypatch.setattr(photo_baselines, "_clock", lambda: self.now)
        monkeypatch.setattr(photo_baselines, "_best", scored)


def test_hill_climbing_fits_its_candidates_to_the_budget_and_uses_a_large_one(monkeypatch):
    t, n = _target(), 200
    clock = _FakeClock(monkeypatch)
    small = hill_climb(t, n, seconds=1.0, seed=0)[1]  # 5 ms a stroke: about 4 candidates each
    assert clock.now <= 1.1
    assert clock.scored >= 4 * n  # every stroke still scored min_candidates (4)
    clock.now, clock.scored = 0.0, 0
    large = hill_climb(t, n, seconds=20.0, seed=0)[1]  # 100 ms a stroke: 32 candidates and 2 mutation rounds
    assert 16.0 <= clock.now <= 20.5  # it uses the time it is given
    assert clock.scored >= 80 * n
    assert psnr(large, t) > psnr(small, t)


def test_random_optimisation_runs_to_its_time_budget():
    t = _target(32, 32)
    strokes, pic = optimize_random(t, 20, seconds=60.0, max_iters=15)
    assert strokes.shape == (20, 13) and pic.shape == (3, 32, 32)
    start = optimize_random(t, 20, seconds=60.0, max_iters=0)[1]
    assert psnr(pic, t) > psnr(start, t) + 1
    again = torch.from_numpy(render_tiled(strokes, 32, 32, t.mean((1, 2)))).permute(2, 0, 1)
    assert torch.allclose(again, pic)


def test_random_optimisation_works_on_patches_in_bounded_memory(monkeypatch):
    """Random strokes go to the patches of the pyramid's finest grid, optimised a batch of patches at a time:
    each Adam call renders far fewer stroke-pixels than all strokes on one picture-sized canvas would."""
    t, n = _target(64, 64), 200
    calls = []
    optimise = photo_baselines.optimise_strokes

    def recorded(params, theta, canvas, *args, **kwargs):
        calls.append((tuple(theta.shape), tuple(canvas.shape)))
        return optimise(params, theta, canvas, *args, **kwargs)

    monkeypatch.setattr(photo_baselines, "optimise_strokes", recorded)
    strokes, pic = optimize_random(t, n, seconds=60.0, max_iters=2)
    assert strokes.shape == (n, 13)
    assert len(calls) == 4  # the four parity classes of a 4 x 4 grid of 16-px patches
    for (B, K, _), (_, _, h, w) in calls:
        assert B * K * h * w <= n * 64 * 64 / 3  # one canvas: n * 64 * 64
    again = torch.from_numpy(render_tiled(strokes, 64, 64, t.mean((1, 2)))).permute(2, 0, 1)
    assert torch.allclose(again, pic, atol=1e-5)  # the strokes, in order, paint the picture
