"""The painter's model-based DDPG mode (Learning to Paint's algorithm, the exact renderer as the model)."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from paintrnn.agents import painter_ddpg as ddpg
from paintrnn.agents.painter import Painter, PainterSpec, actions_to_strokes, evaluate_mse, load_model
from paintrnn.agents.painter_backprop import to_canvas
from paintrnn.agents.painter_train import mnist_digits

from paintrnn.render import render_strokes
from paintrnn.training import NonFiniteLossError, load_checkpoint


def quick_config(tmp_path, **kw) -> ddpg.DDPGConfig:
    base = {**ddpg.DDPGConfig.quick(), "num_envs": 4, "batch_size": 4, "eval_size": 8, "iters": 4}
    base.update(kw)
    return replace(ddpg.DDPGConfig(), run_dir=str(tmp_path / "run"), device="cpu", **base)


def small_nets(steps: int = 2) -> tuple[Painter, ddpg.Critic]:
    torch.manual_seed(0)
    actor = Painter(PainterSpec(image_size=16, hidden=16, width=4, strokes_per_step=2))
    return actor, ddpg.Critic(1, 16, 4, 16, steps)


def test_model_reward_is_the_environments_l2_delta():
    env = gym.make_vec(
        "paintrnn/Paint-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        height=24,
        width=24,
        max_steps=2,
        strokes_per_step=2,
        target="mnist",
    )
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(0)
    before = torch.from_numpy(obs["canvas"]).permute(0, 3, 1, 2).float() / 255
    target = torch.from_numpy(obs["target"]).permute(0, 3, 1, 2).float() / 255
    d0 = ddpg.distance(before, target)
    for _ in range(2):
        action = rng.uniform(-1, 1, size=(3, 22)).astype(np.float32)
        obs, reward, *_ = env.step(action)
        after = render_strokes(actions_to_strokes(torch.from_numpy(action), 1), before, mode="hard")
        assert np.allclose(ddpg.l2_delta(before, after, target, d0).numpy(), reward, atol=1e-5)
        before = after
    env.close()


@torch.no_grad()
def test_critic_targets_match_a_slow_reference():
    """TD targets: r(s_t, a'_t) + gamma V'(s'_t) from the target actor, no bootstrap after the last step."""
    actor, critic = small_nets()
    critic_t = ddpg.Critic(1, 16, 4, 16, 2)
    cfg = ddpg.DDPGConfig(gamma=0.7)
    g = torch.Generator().manual_seed(1)
    canvas, target = torch.rand(3, 2, 1, 16, 16, generator=g), torch.rand(3, 1, 16, 16, generator=g)
    loss = ddpg.critic_loss(cfg, critic, actor, critic_t, canvas, target)
    total = 0.0
    for b in range(3):  # one episode at a time, the recurrent state by hand
        state, d0 = actor.initial_state(1), float(((canvas[b, 0] - target[b]) ** 2).mean())
        for t in range(2):
            s, tgt = canvas[b : b + 1, t], target[b : b + 1]
            out, state, _ = actor.step(s, state, tgt)
            after = render_strokes(actor.strokes(out.mean), s, mode="hard")
            r = (float(((s - tgt) ** 2).mean()) - float(((after - tgt) ** 2).mean())) / d0  # no grad here
            y = r + (0.7 * float(critic_t(after, tgt, t + 1)) if t == 0 else 0.0)
            total += (float(critic(s, tgt, t)) - y) ** 2
    assert abs(float(loss) - total / 6) < 1e-5


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_actor_gradient_flows_through_the_renderer_and_not_into_the_critic(float64):
    actor, critic = small_nets()
    critic.requires_grad_(False)
    g = torch.Generator().manual_seed(2)
    canvas, target = torch.rand(4, 2, 1, 16, 16, generator=g) * 0.2, torch.rand(4, 1, 16, 16, generator=g)
    cfg = ddpg.DDPGConfig()
    ddpg.actor_objective(cfg, actor, critic, canvas, target).backward()
    assert actor.mean_head.weight.grad.abs().sum() > 0 and actor.lstm.weight_hh.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())
    # Central differences of the objective along the mean head's bias (the stroke parameters), in float64.
    direction = torch.randn(actor.mean_head.bias.shape, generator=g)
    with torch.no_grad():
        eps, b0 = 1e-5, actor.mean_head.bias.clone()
        actor.mean_head.bias.copy_(b0 + eps * direction)
        up = ddpg.actor_objective(cfg, actor, critic, canvas, target)
        actor.mean_head.bias.copy_(b0 - eps * direction)
        down = ddpg.actor_objective(cfg, actor, critic, canvas, target)
    numeric = float(up - down) / (2 * eps)
    analytic = float((actor.mean_head.bias.grad * direction).sum())
    assert abs(numeric - analytic) < 1e-4 * abs(analytic) + 1e-7, (numeric, analytic)


def test_replay_is_a_ring_of_whole_episodes():
    replay = ddpg.Replay(5, 2, 1, 4, torch.device("cpu"))
    for i in range(3):  # 9 episodes into 5 slots: the oldest are overwritten
        replay.add(torch.full((3, 2, 1, 4, 4), i, dtype=torch.uint8), torch.full((3, 1, 4, 4), i, dtype=torch.uint8))
    assert len(replay) == 5 and replay.count == 9
    assert sorted(int(x) for x in replay.canvas[:, 0, 0, 0, 0]) == [1, 1, 2, 2, 2]
    canvas, target = replay.sample(50, torch.Generator().manual_seed(0))
    assert canvas.shape == (50, 2, 1, 4, 4) and torch.equal(canvas[:, 0, :, 0, 0] * 255, target[:, :, 0, 0] * 255)


def test_ddpg_trains_resumes_exactly_after_a_kill_and_writes_a_loadable_checkpoint(tmp_path, monkeypatch):
    full = ddpg.train_ddpg(quick_config(tmp_path / "a"))
    real, calls = ddpg.collect, {"n": 0}

    def killed(*args, **kw):  # the process dies in its third iteration, after the checkpoint of the second
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(ddpg, "collect", killed)
    with pytest.raises(KeyboardInterrupt):
        ddpg.train_ddpg(quick_config(tmp_path / "b"))
    monkeypatch.setattr(ddpg, "collect", real)
    resumed = ddpg.train_ddpg(quick_config(tmp_path / "b"))
    for (name, x), y in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), name
    run = tmp_path / "b" / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["critic_loss"]) and 0 <= r["test_mse_10"] <= 1 for r in rows)
    assert sorted(p.name for p in run.glob("replay-*.pt")) == ["replay-4.pt"]
    painter = load_model(run / "checkpoint.pt")
    assert painter.mode == "ddpg" and painter.spec.strokes_per_step == 5


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real, calls = ddpg.actor_objective, {"n": 0}

    def poisoned(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw) * (float("nan") if calls["n"] > 3 else 1.0)

    monkeypatch.setattr(ddpg, "actor_objective", poisoned)
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        ddpg.train_ddpg(quick_config(tmp_path, iters=6))
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_tiny_ddpg_painter_beats_blank_canvas(tmp_path):
    """A few seconds of model-based DDPG must cut the test MSE well below the blank canvas's."""
    cfg = quick_config(
        tmp_path,
        iters=150,
        num_envs=16,
        batch_size=16,
        strokes_per_step=4,
        steps=2,
        hidden=64,
        width=16,
        log_every=150,
        checkpoint_every=150,
        buffer_episodes=2000,
        actor_lr=3e-3,
        critic_lr=3e-3,
    )
    painter = ddpg.train_ddpg(cfg)
    test = mnist_digits("test", cfg.data_dir, n=64)
    blank = float((to_canvas(test, 32) ** 2).mean())
    untrained = evaluate_mse(Painter(painter.spec), test, 8, size=32)[-1]
    mse = evaluate_mse(painter, test, 8, size=32)
    assert mse[-1] < 0.75 * blank and mse[-1] < 0.7 * untrained, (mse, blank, untrained)
