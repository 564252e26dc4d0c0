"""Contract tests for paintrnn/Read-v0: both checkers, seeding, reading semantics and reward, the native vector env
against SyncVectorEnv, bad input, rendering."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401 - registers paintrnn/Read-v0
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from paintrnn.envs.read import ENV_ID, ReadEnv

from paintrnn.media import write_gif
from paintrnn.retina import glimpse
from paintrnn.scenes import END, symbol_string

SAMPLE = {"data_source": "sample"}
VARIANTS = [
    {},
    {"min_digits": 2, "max_digits": 2, "glimpses_per_read": 1, "scales": 2, "start": "random"},
    {"height": 40, "width": 100, "max_digits": 3, "clutter": 4, "context": 2, "glimpse_size": 6},
]
N_ACTIONS = 13


def emit(symbol: int, loc=(0.0, 0.0)) -> np.ndarray:
    a = np.zeros(N_ACTIONS, np.float32)
    a[:2] = loc
    a[2 + symbol] = 1.0
    return a


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
        sb3_check(ReadEnv(**SAMPLE, clutter=2), warn=True)


def test_reading_the_right_digits_then_end_is_rewarded():
    env = ReadEnv(**SAMPLE, glimpses_per_read=2)
    obs, _ = env.reset(seed=4)
    sim = env.unwrapped.sim
    assert np.allclose(obs["location"], 0.0) and obs["context"].shape == (8 * 32,)
    expected = glimpse(sim.images, sim.location(), 12, 3).flatten(1)[0].numpy()
    np.testing.assert_allclose(obs["glimpse"], expected, atol=1e-6)
    label = sim.labels()[0]
    assert 2 <= len(label) <= 5
    for k, digit in enumerate(label):
        obs, r, term, trunc, info = env.step(emit(END, (0.5, -2.0)))  # a non-reading step: the end is ignored
        assert info["symbol"] == -1 and not term and np.allclose(obs["location"], [0.5, -1.0])  # clipped
        obs, r, term, trunc, info = env.step(emit(int(digit)))
        assert info["symbol"] == int(digit) and symbol_string(info["read"]) == label[: k + 1] and r == 0.0 and not term
    env.step(emit(3))
    obs, r, term, trunc, info = env.step(emit(END))
    assert term and not trunc and r == 1.0 and info["symbol"] == END
    np.testing.assert_array_equal(info["read"], info["label"])
    assert symbol_string(info["label"]) == label and info["read"].dtype == np.int64
    with pytest.raises(gym.error.ResetNeeded):
        env.step(emit(END))


def test_a_wrong_digit_or_a_missing_end_is_not_rewarded():
    env = ReadEnv(**SAMPLE, glimpses_per_read=1, max_digits=3)
    env.reset(seed=1)
    label = env.unwrapped.sim.labels()[0]
    wrong = [(int(label[0]) + 1) % 10] + [int(d) for d in label[1:]]
    for d in wrong:
        assert env.step(emit(d))[1] == 0.0
    obs, r, term, _, info = env.step(emit(END))
    assert term and r == 0.0 and symbol_string(info["read"]) != symbol_string(info["label"])
    env.reset(seed=1)  # the same row: right digits, but no end symbol until the episode runs out of reads
    steps = 0
    term = False
    while not term:
        obs, r, term, _, info = env.step(emit(int(label[steps]) if steps < len(label) else 7))
        steps += 1
    assert steps == 3 + 1 and r == 0.0  # max_digits + 1 reads at most


def test_seeding_is_deterministic():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (12, N_ACTIONS)).astype(np.float32)

    def trace(env, seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            obs, r, term, _, _ = env.step(a)
            out.append(obs)
            if term:
                break
        return out

    opts = {**SAMPLE, "clutter": 3, "start": "random"}
    a, b, c = trace(ReadEnv(**opts), 11), trace(ReadEnv(**opts), 11), trace(ReadEnv(**opts), 12)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert not np.array_equal(a[0]["context"], c[0]["context"])


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_native_vector_equals_sync_vector(mode):
    n, opts = 3, {**SAMPLE, "glimpses_per_read": 1, "max_digits": 3, "start": "random", "clutter": 1}
    native = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", autoreset_mode=mode, **opts)
    sync = gym.vector.SyncVectorEnv([lambda: ReadEnv(**opts) for _ in range(n)], autoreset_mode=mode)
    o1, _ = native.reset(seed=5)
    o2, _ = sync.reset(seed=5)
    rng = np.random.default_rng(1)
    ended = 0
    for _ in range(14):  # random symbols: episodes of 1 to 4 steps, so every env crosses episode ends (autoreset)
        for k in o1:
            np.testing.assert_allclose(o1[k], o2[k], atol=1e-6)
        acts = rng.uniform(-1, 1, (n, N_ACTIONS)).astype(np.float32)
        o1, r1, t1, u1, i1 = native.step(acts)
        o2, r2, t2, u2, i2 = sync.step(acts)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(u1, u2)
        assert ("symbol" in i1) == ("symbol" in i2)
        if "symbol" in i1:  # absent when every env was reset in this step (NEXT_STEP autoreset)
            np.testing.assert_array_equal(i1["_symbol"], i2["_symbol"])
            np.testing.assert_array_equal(i1["symbol"][i1["_symbol"]], i2["symbol"][i2["_symbol"]])
        ended += int(t1.sum())
    assert ended >= 2 * n


def test_rewards_follow_the_labels_in_a_vector_env():
    vec = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", autoreset_mode="same_step",
                       **SAMPLE, glimpses_per_read=1)  # fmt: skip
    vec.reset(seed=0)
    labels = vec.unwrapped.sim.labels()
    rewards = np.zeros(4)
    for t in range(6):  # env i reads its label (env 3 spoils its first digit), then the end symbol
        acts = np.stack([emit(int(lab[t]) if t < len(lab) else END) for lab in labels])
        if t == 0:
            acts[3] = emit((int(labels[3][0]) + 1) % 10)
        _, r, term, _, info = vec.step(acts)
        rewards += r * (t == np.array([len(lab) for lab in labels]))
    assert rewards.tolist() == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "action,msg",
    [
        (np.zeros(12, np.float32), "shape"),
        (np.zeros(13, np.int64), "floating point"),
        (np.array([0.0] * 12 + [np.nan], np.float32), "'score_end'"),
    ],
)
def test_bad_actions_raise(action, msg):
    env = ReadEnv(**SAMPLE)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=msg):
        env.step(action)


@pytest.mark.parametrize("options,msg", [({"glimpses_per_read": 0}, "glimpses_per_read"), ({"width": 60}, "wide"),
                                         ({"context": 5}, "multiples"), ({"min_digits": 6}, "min_digits"),
                                         ({"start": "left"}, "start")])  # fmt: skip
def test_bad_options_raise(options, msg):
    with pytest.raises(ValueError, match=msg):
        ReadEnv(**SAMPLE, **options)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        ReadEnv(**SAMPLE, colour=True)


def test_render_shows_the_glimpse_moving_right_and_the_digits_read(tmp_path):
    env = ReadEnv(render_mode="rgb_array", **SAMPLE, glimpses_per_read=1, render_scale=2)
    env.reset(seed=0)
    frames = [env.render()]
    label = env.unwrapped.sim.labels()[0]
    for k, x in enumerate((-0.6, 0.6)):
        env.step(emit(int(label[k]), (x, 0.0)))
        frames.append(env.render())
    assert frames[0].shape[0] == 64 and frames[0].shape[1] > 256 and frames[0].dtype == np.uint8
    red = [np.argwhere((f[:, :256, 0] == 255) & (f[:, :256, 1] == 60)) for f in frames]  # the sharp patch's box
    assert red[1].mean(0)[1] < red[0].mean(0)[1] < red[2].mean(0)[1]  # it moves right
    panels = [f[:, 258:].astype(int).sum() for f in frames]
    assert panels[0] < panels[1] < panels[2]  # more digits written in the panel
    path = write_gif(tmp_path / "episode.gif", np.stack(frames))
    assert path.stat().st_size > 0
