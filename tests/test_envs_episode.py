"""Episode export: GIF, SVG, re-rendering the stroke list at any resolution, and the render_episode command."""

import warnings
import xml.etree.ElementTree as ET

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import paintrnn.envs  # noqa: F401 - registers the ids
import pytest
from paintrnn.envs.episode import episode_frames, greedy_paint_policy, main, play_episode, random_policy, rerender

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(env_id, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", ["paintrnn/Paint-v0", "paintrnn/PaintGrid-v0"])
def test_rerendering_the_stroke_list_reproduces_the_canvas_and_scales_up(env_id):
    env = make(env_id, height=24, width=32, max_steps=6, channels=3, background=0.2)
    episode = play_episode(env, random_policy(env, 0), seed=0)
    assert episode.frames.shape == (7, 24, 32, 3) and len(episode.rewards) == 6
    same = rerender(episode, 24, 32)
    assert np.abs(same.astype(int) - episode.frames[-1]).max() <= 3  # one call vs. step by step: curve sampling
    assert np.abs(same.astype(int) - episode.frames[-1]).mean() < 0.05
    big = rerender(episode, 96, 128).astype(float)  # 4x: pool back down and compare
    pooled = big.reshape(24, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(pooled - episode.frames[-1]).mean() < 3.0
    assert big.std() > 0


def test_gif_shows_canvas_beside_target_and_draw_boxes():
    env = make("paintrnn/Draw-v0", height=16, width=16, max_steps=3)
    episode = play_episode(env, random_policy(env, 0), seed=0)
    assert episode.strokes is None and len(episode.boxes) == 3
    frames = episode_frames(episode, scale=2)
    assert frames.shape == (4, 32, 32 + 4 + 32, 3)
    assert np.array_equal(frames[0, :, -32:, 0], np.repeat(np.repeat(episode.target[..., 0], 2, 0), 2, 1))
    assert (frames[1:, :, :32] == [255, 64, 64]).all(-1).any()  # the red window box is drawn
    with pytest.raises(ValueError, match="no strokes"):
        rerender(episode, 32, 32)


def test_greedy_policy_beats_random_policy():
    env = make("paintrnn/Paint-v0", height=32, width=32, max_steps=8)
    greedy = play_episode(env, greedy_paint_policy(env, 0, candidates=32), seed=3)
    random = play_episode(env, random_policy(env, 0), seed=3)
    assert sum(greedy.rewards) > 0.3 and sum(greedy.rewards) > sum(random.rewards) + 0.3


def test_render_episode_command_writes_gif_svg_and_png(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = main(
            [
                "--out-dir",
                str(tmp_path),
                "--name",
                "ep",
                "--height",
                "32",
                "--width",
                "48",
                "--max-steps",
                "5",
                "--rerender-scale",
                "2",
                "--scale",
                "1",
            ]
        )
    gif = iio.imread(written["gif"], index=None)
    assert gif.shape[1:] == (32, 48 + 2 + 48, 3)
    svg = ET.parse(written["svg"]).getroot()
    assert svg.get("viewBox") == "0 0 48 32" and len(svg.findall("{http://www.w3.org/2000/svg}path")) >= 1
    assert iio.imread(written["png"]).shape[:2] == (64, 96)


def test_render_episode_accepts_an_external_policy_loader(tmp_path):
    written = main(
        [
            "--env",
            "paintrnn/PaintGrid-v0",
            "--out-dir",
            str(tmp_path),
            "--target",
            "none",
            "--max-steps",
            "3",
            "--policy",
            f"{__name__}:always_draw",
            "--checkpoint",
            "x",
            "--scale",
            "1",
        ]
    )
    strokes = [p for p in ET.parse(written["svg"]).getroot() if p.tag.endswith("path")]
    assert len(strokes) == 3  # the loaded policy draws every step


def always_draw(env, checkpoint):
    assert checkpoint == "x"
    return lambda obs: np.array([5, 60, 1, 9, 5, 9])


def test_unknown_policy_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="module:function"):
        main(["--policy", "bogus", "--out-dir", str(tmp_path), "--target", "none"])
