"""Property-based fuzzing: random and extreme action sequences keep every canvas finite, in range and uint8."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OPTIONS = {"height": 12, "width": 20, "max_steps": 3, "target": "texture:brick"}
EXTREMES = [-1e30, -1.0, -0.999, -1e-30, 0.0, 1e-30, 0.5, 1.0, 1e30, 3.4e38, -3.4e38]
FLOATS = st.one_of(st.sampled_from(EXTREMES), st.floats(-2, 2, width=32))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(env_id, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id, **OPTIONS, **kwargs).unwrapped


def action_lists(space, raw=False):
    if isinstance(space, gym.spaces.MultiDiscrete):
        component = [st.sampled_from([0, int(k) - 1]) | st.integers(0, int(k) - 1) for k in space.nvec]
        action = st.tuples(*component).map(lambda a: np.array(a, dtype=np.int64))
    else:
        values = st.floats(-30, 30, width=32) | st.sampled_from([-200.0, -30.0, 0.0, 30.0, 200.0]) if raw else FLOATS
        action = st.lists(values, min_size=space.shape[0], max_size=space.shape[0]).map(
            lambda a: np.array(a, dtype=np.float32)
        )
    return st.lists(action, min_size=1, max_size=7)


def check_observation(env, obs):
    assert env.observation_space.contains(obs)
    assert obs["canvas"].dtype == np.uint8
    canvas = env.sim.canvas
    assert torch.isfinite(canvas).all() and canvas.min() >= 0 and canvas.max() <= 1
    if hasattr(env.sim, "canvas_logits"):
        assert torch.isfinite(env.sim.canvas_logits).all()


@pytest.mark.parametrize(
    "env_id, options",
    [
        ("paintrnn/Paint-v0", {"channels": 3, "strokes_per_step": 2}),
        ("paintrnn/PaintGrid-v0", {"grid": 4}),
        ("paintrnn/Draw-v0", {"n": 3}),
        ("paintrnn/Draw-v0", {"n": 2, "raw_actions": True}),
    ],
)
def test_random_and_extreme_actions_keep_canvases_finite_and_in_range(env_id, options):
    env = make(env_id, **options)
    raw = options.get("raw_actions", False)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(actions=action_lists(env.action_space, raw), seed=st.integers(0, 2**16))
    def run(actions, seed):
        obs, info = env.reset(seed=seed)
        check_observation(env, obs)
        for action in actions:
            try:
                obs, reward, terminated, truncated, info = env.step(action)
            except ValueError as err:  # only raw DRAW parameters may be refused, and then nothing changes
                assert raw and "non-finite" in str(err)
                before = env.sim.canvas_logits.clone()
                with pytest.raises(ValueError):
                    env.step(action)
                assert torch.equal(env.sim.canvas_logits, before)
                continue
            check_observation(env, obs)
            assert np.isfinite(reward) and np.isfinite(info["l2"]) and 0 <= info["l2"] <= 1
            if terminated:
                obs, info = env.reset()

    run()
