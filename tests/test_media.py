import numpy as np
import pytest
from PIL import Image

from paintrnn.media import draw_boxes, grid_frames, image_grid, save_grid, side_by_side, to_uint8, write_gif


def _gif_info(path):
    with Image.open(path) as im:
        durations, frames = [], []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("L")))
        return durations, frames, im.info.get("loop")


def test_gif_timing_loop_and_merged_identical_frames(tmp_path):
    frames = np.zeros((6, 16, 20), np.uint8)
    frames[1:, 4:8, 4:8] = 255  # frames 1..5 identical: Pillow merges them
    path = write_gif(tmp_path / "a.gif", frames, duration_ms=50, hold_last_ms=500)
    durations, out, loop = _gif_info(path)
    assert loop == 0
    assert sum(durations) == 6 * 50 + 500  # total play time is kept even though frames were merged
    assert out[0].max() == 0 and out[-1][5, 5] == 255


def test_rgb_gif_and_float_frames(tmp_path):
    frames = np.random.default_rng(0).random((3, 8, 8, 3))
    path = write_gif(tmp_path / "b.gif", frames, duration_ms=33, scale=2)
    durations, out, _ = _gif_info(path)
    assert durations[0] == 30 and out[0].shape == (16, 16)


def test_bad_frames_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_gif(tmp_path / "c.gif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.full((2, 2), np.nan))


def test_grid_places_each_image(tmp_path):
    imgs = np.stack([np.full((4, 5), 10 * k, np.uint8) for k in range(5)])
    grid = image_grid(imgs, nrow=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 6 + 1)
    assert grid[1, 1] == 0 and grid[1, 1 + 6] == 10 and grid[1 + 5, 1 + 6] == 40
    save_grid(tmp_path / "g.png", imgs, nrow=3)
    assert Image.open(tmp_path / "g.png").size == (3 * 7 + 2, 2 * 6 + 2)
    assert grid_frames(np.zeros((4, 3, 4, 5), np.uint8), nrow=2).shape[0] == 3


def test_boxes_and_side_by_side():
    out = draw_boxes(np.zeros((10, 10), np.uint8), np.array([[2, 2, 7, 7]]), colours=[(255, 0, 0)])
    assert out.shape == (10, 10, 3) and tuple(out[2, 4]) == (255, 0, 0) and out[4, 4].sum() == 0
    both = side_by_side(np.zeros((5, 5), np.uint8), np.zeros((5, 6, 3), np.uint8), pad=1)
    assert both.shape == (5, 12, 3)
