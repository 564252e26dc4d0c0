"""Native vector envs: make_vec, equality with SyncVectorEnv (both autoreset modes), partial resets, devices, async."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs
import pytest
import torch
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode
from paintrnn.envs.batched import NativeVectorEnv, parse_autoreset_mode

IDS = paintrnn.envs.CANVAS_ENV_IDS
SMALL = {"height": 16, "width": 24, "max_steps": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_vec(env_id, n, mode=None, autoreset="next_step", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "sync":
            return gym.make_vec(
                env_id,
                n,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": parse_autoreset_mode(autoreset)},
                **kwargs,
            )
        return gym.make_vec(env_id, n, autoreset_mode=autoreset, **kwargs)


def assert_same_tree(a, b, path="info"):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif a is None:
        assert b is None, path
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert np.array_equal(a, b), f"{path}: {a} != {b}"


def test_make_vec_uses_the_native_vector_env_with_autoreset_metadata():
    env = make_vec("paintrnn/Paint-v0", 4, **SMALL)
    assert isinstance(env.unwrapped, NativeVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.observation_space["canvas"].shape == (4, 16, 24, 1)
    assert make_vec("paintrnn/Paint-v0", 2, autoreset="same_step", **SMALL).metadata["autoreset_mode"] == (
        AutoresetMode.SAME_STEP
    )
    with pytest.raises(ValueError, match="autoreset_mode"):
        make_vec("paintrnn/Paint-v0", 2, autoreset="sometimes", **SMALL)


@pytest.mark.parametrize("autoreset", ["next_step", "same_step"])
@pytest.mark.parametrize("env_id", IDS)
def test_native_vector_env_equals_sync_vector_env_of_single_envs(env_id, autoreset):
    n = 5
    native = make_vec(env_id, n, autoreset=autoreset, **SMALL)
    sync = make_vec(env_id, n, mode="sync", autoreset=autoreset, **SMALL)
    out_native, out_sync = native.reset(seed=11), sync.reset(seed=11)
    assert_same_tree(out_native[0], out_sync[0], "obs")
    assert_same_tree(out_native[1], out_sync[1])
    native.action_space.seed(0)
    ends = 0
    for t in range(8):  # crosses two episode ends
        actions = native.action_space.sample()
        a, b = native.step(actions), sync.step(actions)
        assert_same_tree(a[0], b[0], f"obs at step {t}")
        for x, y in zip(a[1:4], b[1:4]):
            assert x.dtype == y.dtype and np.array_equal(x, y), (t, x, y)
        assert_same_tree(a[4], b[4], f"info at step {t}")
        ends += int("final_obs" in a[4])
    assert ends == (2 if autoreset == "same_step" else 0)


def test_same_step_autoreset_reports_the_final_observation_and_info():
    env = make_vec("paintrnn/Paint-v0", 3, autoreset="same_step", **SMALL)
    env.reset(seed=0)
    for _ in range(2):
        _, _, terminated, _, info = env.step(env.action_space.sample())
        assert not terminated.any() and "final_obs" not in info
    obs, reward, terminated, _, info = env.step(env.action_space.sample())
    assert terminated.all() and info["_final_obs"].all() and info["_final_info"].all()
    assert (obs["step"] == 0).all() and all(f["step"] == 3 for f in info["final_obs"])
    assert (info["final_info"]["strokes"] == 3).all() and (info["strokes"] == 0).all()
    assert not np.array_equal(info["final_obs"][0]["canvas"], obs["canvas"][0])


def test_next_step_autoreset_ignores_the_action_of_ended_envs():
    env = make_vec("paintrnn/Paint-v0", 2, **SMALL)
    env.reset(seed=0)
    for _ in range(3):
        _, _, terminated, _, _ = env.step(env.action_space.sample())
    assert terminated.all()
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert (obs["step"] == 0).all() and (obs["canvas"] == 0).all() and (reward == 0).all()
    assert not terminated.any() and not truncated.any() and (info["strokes"] == 0).all()


@pytest.mark.parametrize("env_id", IDS)
def test_partial_reset_with_reset_mask_matches_sync(env_id):
    native, sync = make_vec(env_id, 4, autoreset="disabled", **SMALL), make_vec(env_id, 4, "sync", "disabled", **SMALL)
    native.reset(seed=3), sync.reset(seed=3)
    for _ in range(3):
        actions = native.action_space.sample()
        _, _, terminated, _, _ = native.step(actions)
        sync.step(actions)
    assert terminated.all()
    with pytest.raises(ResetNeeded, match="autoreset is disabled"):
        native.step(native.action_space.sample())
    mask = np.array([True, False, True, True])
    a, b = (
        native.reset(seed=[20, None, 21, None], options={"reset_mask": mask}),
        sync.reset(seed=[20, None, 21, None], options={"reset_mask": mask}),
    )
    assert_same_tree(a[0], b[0], "obs")
    assert_same_tree(a[1], b[1])
    assert a[0]["step"].tolist() == [[0], [3], [0], [0]] and a[1]["_strokes"].tolist() == mask.tolist()


def test_vector_env_validates_batched_actions_and_order():
    env = make_vec("paintrnn/PaintGrid-v0", 3, **SMALL)
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    good = env.action_space.sample()
    with pytest.raises(ValueError, match=r"shape \(3, 6\)"):
        env.step(good[:2])
    with pytest.raises(ValueError, match="integers"):
        env.step(good.astype(np.float64))
    bad = good.copy()
    bad[2, 2] = 2
    with pytest.raises(ValueError, match="'flag'.*\\[0, 2\\)"):
        env.step(bad)
    box = make_vec("paintrnn/Draw-v0", 2, **SMALL)
    box.reset(seed=0)
    actions = box.action_space.sample()
    actions[1, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf.*log_delta"):
        box.step(actions)


def test_vector_env_takes_torch_actions_and_renders_every_canvas():
    env = make_vec("paintrnn/Paint-v0", 3, render_mode="rgb_array", **SMALL)
    env.reset(seed=0)
    actions = torch.rand(3, 11) * 2 - 1
    obs, *_ = env.step(actions)
    frames = env.render()
    assert len(frames) == 3 and all(f.shape == (16, 24, 3) and f.dtype == np.uint8 for f in frames)
    assert all((f == o).all() for f, o in zip(frames, obs["canvas"]))
    with pytest.raises(ValueError, match="floating point"):
        env.step(torch.ones(3, 11, dtype=torch.int32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("env_id", IDS)
def test_cuda_vector_env_matches_cpu(env_id):
    cpu, cuda = make_vec(env_id, 4, **SMALL), make_vec(env_id, 4, device="cuda", **SMALL)
    a, b = cpu.reset(seed=0), cuda.reset(seed=0)
    assert cuda.unwrapped.sim.canvas.is_cuda
    for _ in range(4):
        actions = cpu.action_space.sample()
        a, b = cpu.step(actions), cuda.step(torch.as_tensor(actions, device="cuda"))
        assert np.abs(a[0]["canvas"].astype(int) - b[0]["canvas"]).max() <= 1
        np.testing.assert_allclose(a[1], b[1], atol=1e-4)


def test_async_vector_env_works_under_spawn():
    kwargs = {**SMALL, "target": None, "reward": "none"}
    env = gym.make_vec("paintrnn/Paint-v0", 2, vectorization_mode="async", vector_kwargs={"context": "spawn"}, **kwargs)
    try:
        obs, _ = env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(2)]
        for a in actions:
            obs, reward, terminated, *_ = env.step(a)
    finally:
        env.close()
    native = make_vec("paintrnn/Paint-v0", 2, **kwargs)
    native.reset(seed=0)
    for a in actions:
        expected, *_ = native.step(a)
    assert np.array_equal(obs["canvas"], expected["canvas"]) and obs["canvas"].max() > 0
