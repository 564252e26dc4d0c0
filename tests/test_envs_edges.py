"""The environments' edges: failed resets, overflowing actions and logits, unknown options (TypeError as Python
words it), max_episode_steps in the native vector env, and a ``step`` observation that frame stackers accept."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs
import pytest
import torch
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode
from paintrnn.envs.batched import parse_autoreset_mode
from paintrnn.envs.draw_env import LOGIT_LIMIT, DrawEnv, write_step
from paintrnn.envs.glimpse import GlimpseEnv, GlimpseVectorEnv
from paintrnn.envs.paint import PaintEnv, PaintVectorEnv
from paintrnn.envs.paint_grid import PaintGridEnv, PaintGridVectorEnv

IDS = paintrnn.envs.CANVAS_ENV_IDS
SMALL = {"height": 16, "width": 24, "max_steps": 4}
OPTIONS = {env_id: SMALL for env_id in IDS} | {
    "paintrnn/Glimpse-v0": {"data_source": "sample", "glimpses": 4},
    "paintrnn/Read-v0": {"data_source": "sample"},
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(env_id, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bundled-MNIST-sample notice
        return gym.make(env_id, **{**OPTIONS[env_id], **kwargs})


def make_vec(env_id, n, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make_vec(env_id, n, **{**OPTIONS[env_id], **kwargs})


def make_sync(env_id, n, autoreset="next_step", **kwargs):
    mode = parse_autoreset_mode(autoreset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = {**OPTIONS[env_id], **kwargs}
        return gym.make_vec(env_id, n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **options)


def assert_same(a, b, where):
    """Observations / infos of the native and sync vector envs: the same keys, dtypes, shapes and values."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif a is None:
        assert b is None, where
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), f"{where}: {a} != {b}"


# ---- 6a: a reset that raised leaves the env needing a successful one --------------------------------------


@pytest.mark.parametrize("env_id", paintrnn.envs.ENV_IDS)
def test_a_vector_env_whose_first_reset_raised_refuses_to_step(env_id):
    env = make_vec(env_id, 3)
    with pytest.raises(gym.error.Error, match="[Ss]eed"):
        env.reset(seed=-1)  # Gymnasium refuses negative seeds
    with pytest.raises(ResetNeeded, match="after a reset\\(\\) that raised"):
        env.step(env.action_space.sample())
    with pytest.raises(ResetNeeded, match="without reset_mask"):  # nor a partial reset of a never-reset env
        env.reset(options={"reset_mask": np.array([True, False, False])})
    obs, _ = env.reset(seed=0)
    env.step(env.action_space.sample())  # a successful reset makes it usable again
    if "step" in obs:
        assert obs["step"].tolist() == [[0]] * 3 and (obs["target"] > 0).any()  # real targets, not zeros


@pytest.mark.parametrize("env_id", paintrnn.envs.ENV_IDS)
def test_a_reset_that_raised_midway_invalidates_a_running_env(env_id, monkeypatch):
    for env in (make_vec(env_id, 2), make(env_id)):
        env.reset(seed=0)
        env.step(env.action_space.sample())
        sim = env.unwrapped.sim

        def broken(mask, rngs):
            raise OSError("target folder vanished")

        monkeypatch.setattr(sim, "reset_envs", broken)
        with pytest.raises(OSError, match="vanished"):
            env.reset(seed=1)
        with pytest.raises(ResetNeeded, match="raised"):
            env.step(env.action_space.sample())
        monkeypatch.undo()
        env.reset(seed=1)
        env.step(env.action_space.sample())


# ---- 6b: Draw-v0's logits stay finite ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [True, False])
def test_draw_logits_are_clipped_not_overflowed_by_huge_patches(raw):
    options = {"raw_actions": True} if raw else {"patch_scale": LOGIT_LIMIT}
    env = make("paintrnn/Draw-v0", n=5, max_steps=8, target=None, reward="none", **options).unwrapped
    env.reset(seed=0)
    action = np.zeros(5 + 25, np.float32)
    for sign in (1, 1, 1, 1, -1, -1):  # a few 3e38 writes overflowed float32 to inf (and then inf - inf = NaN)
        action[5:] = sign * (3e38 if raw else 1.0)
        obs, *_ = env.step(action)
        logits = env.sim.canvas_logits
        assert torch.isfinite(logits).all() and logits.abs().max() <= LOGIT_LIMIT
        assert sign < 0 or (obs["canvas"] == 255).any()
    if raw:  # the negative writes took the saturated pixels to the other end
        assert env.sim.canvas_logits.min() == -LOGIT_LIMIT and (obs["canvas"] == 0).any()


def test_draw_clip_leaves_ordinary_logits_alone():
    env = make("paintrnn/Draw-v0", max_steps=4, raw_actions=True, target=None, reward="none").unwrapped
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(5 + 25, generator=gen) * 3
    raw[5:] *= 20  # logits of a few hundred: far beyond saturation, far inside the clip
    before = env.sim.canvas_logits.clone()
    env.step(raw.numpy())
    assert torch.equal(env.sim.canvas_logits, write_step(before, raw[None], 5))


@pytest.mark.parametrize("bad", [{"patch_scale": 1e38}, {"canvas_init": 1e5}])
def test_draw_options_beyond_the_logit_clip_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make("paintrnn/Draw-v0", **bad)


# ---- 6c: float64 actions beyond float32's range --------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["paintrnn/Draw-v0", "paintrnn/Paint-v0"])
def test_float64_actions_beyond_float32_range_get_a_clear_error(env_id):
    options = {"raw_actions": True} if env_id == "paintrnn/Draw-v0" else {}
    env = make(env_id, **options).unwrapped
    env.reset(seed=0)
    before = env.sim.canvas.clone()
    action = np.zeros(env.action_space.shape, np.float64)
    action[3] = -1e39  # finite in float64, -inf in float32
    with pytest.raises(ValueError, match=r"action component 3 .*1e\+39, outside float32's range"):
        env.step(action)
    assert torch.equal(env.sim.canvas, before)
    action[3], action[4] = 0.0, np.inf
    with pytest.raises(ValueError, match="NaN or inf in action component 4"):
        env.step(action)
    env.step(np.clip(action, -1, 1).astype(np.float64) * 0)  # in-range float64 actions are fine
    vec = make_vec(env_id, 2, **options)
    vec.reset(seed=0)
    actions = np.zeros(vec.action_space.shape, np.float64)
    actions[1, 0] = 4e38
    with pytest.raises(ValueError, match="actions: action component 0 .*float32's range"):
        vec.step(actions)


# ---- 6d: unknown reset options --------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", paintrnn.envs.ENV_IDS)
def test_unknown_reset_options_are_named_with_the_known_ones(env_id):
    env = make(env_id)
    message = r"unknown option\(s\) \['colour', 'target_index'\]; known reset options: none"
    with pytest.raises(ValueError, match=message):
        env.reset(seed=0, options={"target_index": 3, "colour": 1})
    env.reset(seed=0, options={})  # what SyncVectorEnv passes once it has taken out reset_mask
    vec = make_vec(env_id, 2)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['mask'\]; known reset options: \['reset_mask'\]"):
        vec.reset(seed=0, options={"mask": np.array([True, False])})


# ---- 12: unknown keyword arguments: TypeError with Python's own text -----------------------------------------


FACADES = [PaintEnv, PaintGridEnv, DrawEnv, GlimpseEnv]
VECTORS = [PaintVectorEnv, PaintGridVectorEnv, paintrnn.envs.draw_env.DrawVectorEnv, GlimpseVectorEnv]


@pytest.mark.parametrize("index", range(4))
def test_unknown_keyword_arguments_raise_type_error_with_pythons_text(index):
    env_id = paintrnn.envs.ENV_IDS[index]
    single, vector = FACADES[index], VECTORS[index]
    assert gym.spec(env_id).entry_point.endswith(single.__name__)
    expected = {
        "single": f"{single.__name__}.__init__() got an unexpected keyword argument 'frameskip'",
        "vector": f"{vector.__name__}.__init__() got an unexpected keyword argument 'frameskip'",
    }
    for kind, build in [
        ("single", lambda: single(frameskip=4)),
        ("single", lambda: make(env_id, frameskip=4)),
        ("vector", lambda: vector(num_envs=2, frameskip=4)),
        ("vector", lambda: make_vec(env_id, 2, frameskip=4)),
    ]:
        with pytest.raises(TypeError) as err:
            build()
        assert str(err.value).startswith(expected[kind]), str(err.value)
        assert "valid keyword arguments: render_mode" in str(err.value) or kind == "vector"
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):  # sync mode: the single env's
        make_sync(env_id, 2, frameskip=4)


def test_type_error_names_every_unknown_argument_and_suggests_a_close_one():
    with pytest.raises(TypeError) as err:
        make("paintrnn/PaintGrid-v0", colour_bin=3, frameskip=4)
    text = str(err.value)
    first = "PaintGridEnv.__init__() got an unexpected keyword argument 'colour_bin' (and 'frameskip')"
    assert text.startswith(first), text
    assert "did you mean 'colour_bins'?" in text and "pressure_bins" in text


# ---- 13: max_episode_steps in the native vector env ----------------------------------------------------


@pytest.mark.parametrize("autoreset", ["next_step", "same_step"])
@pytest.mark.parametrize("env_id,limit", [("paintrnn/Paint-v0", 3), ("paintrnn/PaintGrid-v0", 4),
                                          ("paintrnn/Draw-v0", 2), ("paintrnn/Glimpse-v0", 2)])  # fmt: skip
def test_max_episode_steps_truncates_the_native_env_as_time_limit_does_in_sync_mode(env_id, limit, autoreset):
    n = 3
    native = make_vec(env_id, n, max_episode_steps=limit, autoreset_mode=autoreset)
    sync = make_sync(env_id, n, autoreset=autoreset, max_episode_steps=limit)
    assert native.unwrapped.max_episode_steps == limit
    a, b = native.reset(seed=5), sync.reset(seed=5)
    assert_same(a[0], b[0], "obs")
    native.action_space.seed(0)
    truncations = 0
    for t in range(10):
        actions = native.action_space.sample()
        a, b = native.step(actions), sync.step(actions)
        assert_same(a[0], b[0], f"obs at step {t}")
        for x, y, name in zip(a[1:4], b[1:4], ("reward", "terminated", "truncated")):
            assert x.dtype == y.dtype and np.array_equal(x, y), (t, name, x, y)
        assert_same(a[4], b[4], f"info at step {t}")
        truncations += int(a[3].any())
    assert truncations >= 2  # the limit was hit (more than once: it restarts with each episode)


def test_max_episode_steps_with_disabled_autoreset_needs_a_partial_reset():
    env = make_vec("paintrnn/Paint-v0", 2, max_episode_steps=2, autoreset_mode="disabled")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert truncated.all() and not terminated.any()
    with pytest.raises(ResetNeeded, match="autoreset is disabled"):
        env.step(env.action_space.sample())
    env.reset(options={"reset_mask": np.array([True, True])})
    _, _, _, truncated, _ = env.step(env.action_space.sample())
    assert not truncated.any()  # the count restarted with the episode


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_max_episode_steps_are_refused(bad):
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_vec("paintrnn/Paint-v0", 2, max_episode_steps=bad)


# ---- 14: the step observation is a bounded integer Box ----------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_step_observation_is_a_bounded_integer_box_of_shape_one(env_id):
    env = make(env_id)
    space = env.observation_space["step"]
    assert isinstance(space, gym.spaces.Box) and space.shape == (1,) and space.dtype == np.int64
    assert space.low.tolist() == [0] and space.high.tolist() == [SMALL["max_steps"]]
    obs, _ = env.reset(seed=0)
    for t in range(1, SMALL["max_steps"] + 1):
        assert obs["step"].tolist() == [t - 1] and obs in env.observation_space
        obs, *_ = env.step(env.action_space.sample())
    assert obs["step"].tolist() == [SMALL["max_steps"]] and obs in env.observation_space
    vec = make_vec(env_id, 3, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = vec.reset(seed=0)
    assert obs["step"].shape == (3, 1) and obs in vec.observation_space


@pytest.mark.parametrize("env_id", IDS)
def test_stable_baselines3_frame_stacking_takes_the_step_observation(env_id):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    stacked = VecFrameStack(DummyVecEnv([lambda: make(env_id), lambda: make(env_id)]), n_stack=3)
    obs = stacked.reset()
    assert obs["step"].shape == (2, 3) and obs["canvas"].shape == (2, 16, 24, 3)
    for _ in range(2):
        obs, *_ = stacked.step(np.stack([stacked.action_space.sample() for _ in range(2)]))
    assert obs["step"].tolist() == [[0, 1, 2]] * 2  # the last three step counts, oldest first
