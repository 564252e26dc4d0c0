"""Contract tests for paintrnn/Glimpse-v0: checkers, seeding, native vector env, bad input, rendering."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs.glimpse  # noqa: F401 - registers paintrnn/Glimpse-v0
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from paintrnn.envs.glimpse import ENV_ID, GlimpseEnv

from paintrnn.media import write_gif
from paintrnn.retina import glimpse

SAMPLE = {"data_source": "sample"}
VARIANTS = [
    {},
    {"canvas": 60, "glimpses": 4, "glimpse_size": 12, "scales": 3, "start": "random"},
    {"canvas": 40, "clutter": 3, "glimpses": 3},
]


@pytest.mark.parametrize("options", VARIANTS)
def test_gymnasium_check_env_clean(options):
    env = gym.make(ENV_ID, render_mode="rgb_array", **SAMPLE, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


def test_sb3_check_env_clean():
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check(GlimpseEnv(**SAMPLE, canvas=60, scales=2), warn=True)


def run_episode(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    trace, total = [obs], 0.0
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        trace.append(obs)
        total += r
    return trace, total, term, info


def test_episode_semantics_and_reward():
    env = GlimpseEnv(**SAMPLE, glimpses=3, glimpse_size=6, scales=2)
    obs, _ = env.reset(seed=3)
    sim = env.unwrapped.sim
    assert np.allclose(obs["location"], 0.0)
    expected = glimpse(sim.images, sim.location(), 6, 2).flatten(1)[0].numpy()
    np.testing.assert_allclose(obs["glimpse"], expected, atol=1e-6)
    a = np.zeros(12, np.float32)
    a[:2] = [0.5, -2.0]  # the location is clipped to [-1, 1]
    obs, r, term, trunc, info = env.step(a)
    assert np.allclose(obs["location"], [0.5, -1.0]) and r == 0.0 and not term and info["prediction"] == -1
    env.step(np.zeros(12, np.float32))
    label = int(sim.labels[0])
    right = np.zeros(12, np.float32)
    right[2 + label] = 1.0
    obs, r, term, trunc, info = env.step(right)
    assert term and not trunc and r == 1.0 and info["prediction"] == label == info["label"]
    with pytest.raises(gym.error.ResetNeeded):
        env.step(right)
    env.reset(seed=3)  # same digit again
    env.step(a), env.step(a)
    wrong = np.zeros(12, np.float32)
    wrong[2 + (label + 1) % 10] = 1.0
    assert env.step(wrong)[1] == 0.0


def test_seeding_is_deterministic():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (7, 12)).astype(np.float32)
    env = GlimpseEnv(**SAMPLE, canvas=50, clutter=2, start="random")
    a, ra, _, _ = run_episode(env, 11, actions)
    b, rb, _, _ = run_episode(GlimpseEnv(**SAMPLE, canvas=50, clutter=2, start="random"), 11, actions)
    c, _, _, _ = run_episode(env, 12, actions)
    assert ra == rb
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["glimpse"], y["glimpse"])
        np.testing.assert_array_equal(x["location"], y["location"])
    assert any(not np.array_equal(x["glimpse"], y["glimpse"]) for x, y in zip(a, c))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_native_vector_equals_sync_vector(mode):
    n, opts = 3, {**SAMPLE, "glimpses": 3, "canvas": 40, "start": "random"}
    native = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", autoreset_mode=mode, **opts)
    sync = gym.vector.SyncVectorEnv([lambda: GlimpseEnv(**opts) for _ in range(n)], autoreset_mode=mode)
    o1, _ = native.reset(seed=5)
    o2, _ = sync.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(8):  # crosses episode ends (autoreset)
        for k in o1:
            np.testing.assert_allclose(o1[k], o2[k], atol=1e-6)
        acts = rng.uniform(-1, 1, (n, 12)).astype(np.float32)
        o1, r1, t1, u1, _ = native.step(acts)
        o2, r2, t2, u2, _ = sync.step(acts)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(u1, u2)


@pytest.mark.parametrize(
    "action,msg",
    [
        (np.zeros(11, np.float32), "shape"),
        (np.zeros(12, np.int64), "floating point"),
        (np.array([np.nan] + [0.0] * 11, np.float32), "'x'"),
        (np.array(["a"] * 12), "numeric"),
    ],
)
def test_bad_actions_raise(action, msg):
    env = GlimpseEnv(**SAMPLE)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=msg):
        env.step(action)


@pytest.mark.parametrize("options,msg", [({"glimpses": 0}, "glimpses"), ({"canvas": 20}, "canvas"),
                                         ({"clutter": 2}, "clutter"), ({"start": "left"}, "start")])  # fmt: skip
def test_bad_options_raise(options, msg):
    with pytest.raises(ValueError, match=msg):
        GlimpseEnv(**SAMPLE, **options)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        GlimpseEnv(**SAMPLE, colour=True)


def test_render_frames_show_the_moving_glimpse(tmp_path):
    env = GlimpseEnv(render_mode="rgb_array", **SAMPLE, glimpses=3, render_scale=2)
    env.reset(seed=0)
    frames = [env.render()]
    for loc in ([-0.6, -0.6], [0.6, 0.6]):
        env.step(np.array(loc + [0.0] * 10, np.float32))
        frames.append(env.render())
    assert frames[0].shape == (56, 56, 3) and frames[0].dtype == np.uint8
    red = [np.argwhere((f[..., 0] == 255) & (f[..., 1] == 60)) for f in frames]  # the sharp patch's box
    assert all(len(r) for r in red)
    assert red[1].mean(0)[0] < red[0].mean(0)[0] < red[2].mean(0)[0]  # it moves down the image
    path = write_gif(tmp_path / "episode.gif", np.stack(frames))
    assert path.stat().st_size > 0
