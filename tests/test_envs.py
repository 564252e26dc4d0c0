"""Single environments: Gymnasium/SB3 contracts, registration, seeding, rendering, bad input, rewards, actions."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs
import pytest
import torch
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from paintrnn.envs.draw_env import draw_actions_to_raw, write_step
from paintrnn.envs.paint import actions_to_strokes

from paintrnn.attention import filterbank, window_from_raw, write
from paintrnn.render import render_strokes

IDS = paintrnn.envs.CANVAS_ENV_IDS
SMALL = {"height": 16, "width": 24, "max_steps": 4}  # small, non-square: fast tests where SB3 is not involved


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(env_id, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bundled-MNIST-sample notice
        return gym.make(env_id, **kwargs).unwrapped


def rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in actions:
        out.append(env.step(a))
    return out


def test_every_id_is_registered():
    assert set(IDS) == {"paintrnn/Paint-v0", "paintrnn/PaintGrid-v0", "paintrnn/Draw-v0"}
    assert set(paintrnn.envs.ENV_IDS) == set(IDS) | {"paintrnn/Glimpse-v0", "paintrnn/Read-v0"}
    for env_id in paintrnn.envs.ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.entry_point and spec.vector_entry_point


def test_make_in_a_fresh_process_without_prior_import():
    code = (
        "import warnings, gymnasium as gym; warnings.simplefilter('ignore');"
        "env = gym.make('paintrnn.envs:paintrnn/Paint-v0'); obs, _ = env.reset(seed=0);"
        "print(type(env.unwrapped).__name__, obs['canvas'].shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PaintEnv", "(64,", "64,", "1)"]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize(
    "options", [{}, {**SMALL, "channels": 3, "reward": "final_l2"}, {**SMALL, "target": None, "reward": "none"}]
)
def test_gymnasium_check_env_passes_with_warnings_as_errors(env_id, options):
    env = make(env_id, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


@pytest.mark.parametrize("env_id", IDS)
def test_stable_baselines3_check_env_passes_with_warnings_as_errors(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env)
    obs, _ = env.reset(seed=0)
    assert obs["canvas"].shape == (64, 64, 1) and obs["canvas"].dtype == np.uint8  # SB3's image defaults
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    if env_id != "paintrnn/PaintGrid-v0":
        box = env.action_space
        assert box.dtype == np.float32 and (box.low == -1).all() and (box.high == 1).all()


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_and_actions_give_byte_identical_trajectories(env_id):
    env_a, env_b = make(env_id, **SMALL), make(env_id, **SMALL)
    env_a.action_space.seed(3)
    actions = [env_a.action_space.sample() for _ in range(SMALL["max_steps"])]
    run_a, run_b = rollout(env_a, 7, actions), rollout(env_b, 7, actions)
    for step_a, step_b in zip(run_a, run_b):
        for obs_a, obs_b in zip(step_a[0].values(), step_b[0].values()):
            assert np.asarray(obs_a).tobytes() == np.asarray(obs_b).tobytes()
        assert repr(step_a[1:]) == repr(step_b[1:])
    other = rollout(env_b, 8, actions)
    assert not np.array_equal(other[0][0]["target"], run_a[0][0]["target"])
    assert other[-1][4]["l2"] != run_a[-1][4]["l2"]


@pytest.mark.parametrize("env_id", IDS)
def test_rgb_array_render_and_metadata(env_id):
    env = make(env_id, **SMALL, channels=1, render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["rgb_array"] and env.metadata["render_fps"] > 0
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (16, 24, 3)
    assert (frame == obs["canvas"]).all()  # grey canvas in all three channels
    assert make(env_id, **SMALL).render() is None
    with pytest.raises(ValueError, match="render_mode"):
        type(env)(render_mode="human")


@pytest.mark.parametrize("env_id", IDS)
def test_step_before_reset_and_after_the_end_raise_reset_needed(env_id):
    env = make(env_id, **SMALL)
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(env.action_space.sample())
    with pytest.raises(ResetNeeded):  # the wrapped env too (OrderEnforcing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gym.make(env_id, **SMALL).step(env.action_space.sample())
    env.reset(seed=0)
    for t in range(SMALL["max_steps"]):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated == (t == SMALL["max_steps"] - 1) and not truncated
    with pytest.raises(ResetNeeded, match="ended"):
        env.step(env.action_space.sample())
    obs, _ = env.reset()
    assert obs["step"] == 0


def bad_actions(env):
    space = env.action_space
    good = space.sample()
    cases = [(good[:-1], "shape"), (np.stack([good, good]), "shape"), ("paint", "numeric")]
    if isinstance(space, gym.spaces.Box):
        nan, inf = good.copy(), good.copy()
        nan[2], inf[-1] = np.nan, -np.inf
        cases += [(nan, "NaN or inf"), (inf, "NaN or inf"), (good.astype(np.int64), "floating point")]
        cases += [(good > 0, "floating point")]
    else:
        high = good.copy()
        high[1] = space.nvec[1]
        cases += [(good.astype(np.float32), "integers"), (high, "out of range.*'end'"), (good - 100, "out of range")]
    return cases


@pytest.mark.parametrize("env_id", IDS)
def test_bad_actions_raise_clear_errors_and_leave_the_canvas_untouched(env_id):
    env = make(env_id, **SMALL)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    before = env.sim.canvas.clone()
    for action, message in bad_actions(env):
        with pytest.raises(ValueError, match=message):
            env.step(action)
    assert torch.equal(env.sim.canvas, before)
    obs, *_ = env.step(env.action_space.sample())  # still usable
    assert obs["step"] == 2


def test_nan_error_names_the_field():
    env = make("paintrnn/Paint-v0", **SMALL)
    env.reset(seed=0)
    action = np.zeros(11, np.float32)
    action[7] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in action component 7 .*r2'"):
        env.step(action)


@pytest.mark.parametrize(
    "bad",
    [
        {"channels": 2},
        {"height": 0},
        {"reward": "l1"},
        {"reward": "l2_delta", "target": None},
        {"target": "nowhere"},
    ],
)
def test_bad_options_raise_value_errors(bad):
    with pytest.raises(ValueError):
        make("paintrnn/Paint-v0", **bad)


def test_unknown_option_error_lists_the_valid_ones():
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'.*strokes_per_step"):
        make("paintrnn/Paint-v0", colour=3)


@pytest.mark.parametrize("env_id", IDS)
def test_l2_delta_returns_telescope_and_info_l2_is_the_distance(env_id):
    env = make(env_id, **SMALL)
    _, info = env.reset(seed=1)
    d0, total = info["l2"], 0.0
    for _ in range(SMALL["max_steps"]):
        _, reward, _, _, info = env.step(env.action_space.sample())
        total += reward
        exact = float(((env.sim.canvas - env.sim.target) ** 2).mean())
        assert info["l2"] == pytest.approx(exact, rel=1e-5)
    assert total == pytest.approx(1 - info["l2"] / d0, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("env_id", IDS)
def test_final_l2_rewards_only_at_the_end_and_none_rewards_nothing(env_id):
    env = make(env_id, **SMALL, reward="final_l2")
    env.reset(seed=1)
    rewards = [env.step(env.action_space.sample())[1:] for _ in range(SMALL["max_steps"])]
    assert all(r == 0.0 for r, *_ in rewards[:-1])
    reward, terminated, _, info = rewards[-1]
    assert terminated and reward == pytest.approx(-info["l2"]) and reward < 0
    free = make(env_id, **SMALL, target=None, reward="none")
    obs, info = free.reset(seed=1)
    assert set(obs) == {"canvas", "step"} and "l2" not in info
    assert free.step(free.action_space.sample())[1] == 0.0


def test_paint_action_map_covers_the_documented_ranges():
    a = torch.tensor([[-1.0] * 11 + [1.0] * 11 + [0.0] * 11])  # three strokes, grey
    s = actions_to_strokes(a, 1, radius_range=(0.02, 0.2), opacity_range=(0.5, 1.0))
    assert s.shape == (1, 3, 11)
    expected_low = [0.0] * 6 + [0.02, 0.02, 0.5, 0.5, 0.0]
    expected_high = [1.0] * 6 + [0.2, 0.2, 1.0, 1.0, 1.0]
    expected_mid = [0.5] * 6 + [0.11, 0.11, 0.75, 0.75, 0.5]
    torch.testing.assert_close(s[0], torch.tensor([expected_low, expected_high, expected_mid]))
    assert torch.equal(actions_to_strokes(a * 5, 1), actions_to_strokes(a, 1))  # clipped
    x = torch.rand(2, 26, dtype=torch.float64, requires_grad=True) * 1.8 - 0.9
    assert torch.autograd.gradcheck(lambda t: actions_to_strokes(t, 3), (x.detach().requires_grad_(),))


def test_paint_canvas_equals_the_renderer_on_the_mapped_strokes():
    env = make("paintrnn/Paint-v0", **SMALL, channels=3, strokes_per_step=2, background=0.25)
    assert env.action_space.shape == (26,)
    env.reset(seed=0)
    env.action_space.seed(0)
    canvas = torch.full((1, 3, 16, 24), 0.25)
    for _ in range(3):
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        strokes = actions_to_strokes(torch.from_numpy(action)[None], 3)
        canvas = render_strokes(strokes, canvas)
        assert torch.equal(env.sim.canvas, canvas)
    assert np.array_equal(obs["canvas"], np.floor(canvas[0].permute(1, 2, 0).numpy() * 255 + 0.5))
    assert env.sim.stroke_history(0).shape[0] <= 6


def test_paint_grid_move_lifts_the_pen_and_keeps_x_across_and_y_down():
    g = 8
    env = make("paintrnn/PaintGrid-v0", height=32, width=64, max_steps=4, grid=g, target=None, reward="none")
    env.reset(seed=0)
    col, row = 6, 1  # right of centre, near the top
    move = np.array([0, row * g + col, 0, 9, 9, 9])
    obs, _, _, _, info = env.step(move)
    assert obs["canvas"].max() == 0 and info["strokes"] == 0  # a move paints nothing
    x, y = (col + 0.5) / g, (row + 0.5) / g
    torch.testing.assert_close(env.sim.pen[0], torch.tensor([x, y]))
    end_row, end_col = 6, 6  # straight down from the pen: a vertical stroke
    draw = np.array([end_row // 2 * g + end_col, end_row * g + end_col, 1, 9, 0, 9])
    obs, _, _, _, info = env.step(draw)
    assert info["strokes"] == 1
    (stroke,) = env.sim.stroke_history(0)
    torch.testing.assert_close(stroke[:2], torch.tensor([x, y]))  # starts where the move ended
    painted_cols = np.flatnonzero(obs["canvas"][..., 0].max(0))
    painted_rows = np.flatnonzero(obs["canvas"][..., 0].max(1))
    assert abs(painted_cols.mean() + 0.5 - x * 64) < 1.0  # a thin vertical line at x
    assert painted_rows.min() < y * 32 + 2 and painted_rows.max() > (end_row + 0.5) / g * 32 - 2


def test_draw_canvas_is_drawn_writes_added_in_logit_space():
    n, h, w = 3, 16, 24
    env = make("paintrnn/Draw-v0", height=h, width=w, max_steps=4, n=n, canvas_init=-1.0, channels=3)
    env.reset(seed=0)
    env.action_space.seed(0)
    logits = torch.full((1, 3, h, w), -1.0)
    for _ in range(3):
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        raw = draw_actions_to_raw(torch.from_numpy(action)[None], patch_scale=8.0)
        # Slow reference: explicit Gaussian filters, one patch value at a time.
        window = window_from_raw(raw[:, :5], h, w, n)
        patch = raw[0, 5:].reshape(3, n, n)
        update = torch.zeros(3, h, w)
        ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
        for i in range(n):
            for j in range(n):
                mu_y = window.gy[0] + (i - (n - 1) / 2) * window.delta[0]
                mu_x = window.gx[0] + (j - (n - 1) / 2) * window.delta[0]
                # normalised in the log domain: narrow filters between pixel centres underflow otherwise
                fy = torch.softmax(-((ys - mu_y) ** 2) / (2 * window.sigma2[0]), 0)
                fx = torch.softmax(-((xs - mu_x) ** 2) / (2 * window.sigma2[0]), 0)
                update += patch[:, i, j, None, None] * torch.outer(fy, fx)
        logits = logits + update / window.gamma[0]
        torch.testing.assert_close(env.sim.canvas_logits, logits, atol=1e-4, rtol=1e-4)
    expected = np.floor(torch.sigmoid(logits)[0].permute(1, 2, 0).numpy() * 255 + 0.5)
    assert np.abs(obs["canvas"].astype(int) - expected).max() <= 1


def test_draw_raw_actions_replay_a_draw_decoder_exactly_and_reject_non_finite_writes():
    n, h, w = 5, 28, 28
    env = make("paintrnn/Draw-v0", height=h, width=w, n=n, max_steps=3, raw_actions=True, target=None, reward="none")
    assert np.isinf(env.action_space.high).all()
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    canvas = torch.zeros(1, 1, h, w)  # what a DRAW decoder accumulates: c_t = c_{t-1} + write(h_dec)
    for _ in range(2):
        raw = torch.randn(1, 5 + n * n, generator=gen) * 3
        env.step(raw[0].numpy())
        params = window_from_raw(raw[:, :5], h, w, n)
        fx, fy = filterbank(params, n, h, w)
        canvas = canvas + write(raw[:, 5:].view(1, 1, n, n), fx, fy, params.gamma)  # agents/draw.py's decoder
        assert torch.equal(env.sim.canvas_logits, canvas)
        assert torch.equal(write_step(canvas - canvas, raw, n), canvas - canvas + write_step(canvas * 0, raw, n))
    before = env.sim.canvas_logits.clone()
    huge = np.zeros(5 + n * n, np.float32)
    huge[4], huge[5] = -200.0, 1.0  # gamma = exp(-200) = 0: the write divides by zero
    with pytest.raises(ValueError, match="non-finite"):
        env.step(huge)
    assert torch.equal(env.sim.canvas_logits, before)


def test_option_docs_table_lists_every_option_with_its_docstring():
    from paintrnn.envs.canvas import env_option_docs
    from paintrnn.envs.paint import PaintConfig

    table = env_option_docs(PaintConfig)
    for name in ("height", "target", "reward", "strokes_per_step", "radius_range", "render_backend"):
        assert f"| `{name}` |" in table
    assert "Strokes k painted per step" in table
