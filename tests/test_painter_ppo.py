"""The painter's PPO mode on the native vector environments."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from paintrnn.agents import painter_ppo as ppo
from paintrnn.agents.painter import Painter, PainterSpec, load_model


def quick_config(tmp_path, **kw) -> ppo.PPOConfig:
    base = {
        **ppo.PPOConfig.quick(),
        "num_envs": 4,
        "canvas_size": 16,
        "eval_size": 8,
        "iters": 2,
        "log_every": 1,
        "checkpoint_every": 1,
    }
    base.update(kw)
    return replace(ppo.PPOConfig(), run_dir=str(tmp_path / "run"), device="cpu", **base)


def test_gae_matches_a_slow_reference():
    g = torch.Generator().manual_seed(0)
    reward, value = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    gamma, lam = 0.9, 0.8
    fast = ppo.gae(reward, value, gamma, lam)
    for e in range(2):
        for n in range(3):
            v = [float(x) for x in value[e, :, n]] + [0.0]  # V = 0 after the last step
            r = [float(x) for x in reward[e, :, n]]
            for t in range(5):  # sum_l (gamma lam)^l delta_{t+l}
                ref = sum((gamma * lam) ** (i - t) * (r[i] + gamma * v[i + 1] - v[i]) for i in range(t, 5))
                assert abs(float(fast[e, t, n]) - ref) < 1e-5


def test_log_probs_match_closed_forms():
    torch.manual_seed(0)
    p = Painter(PainterSpec(image_size=16, hidden=16, width=4, strokes_per_step=1))
    out, _, _ = p.step(torch.rand(3, 1, 16, 16), p.initial_state(3), torch.rand(3, 1, 16, 16))
    u = torch.randn(3, 11)
    lp, ent = ppo.log_prob_entropy(p, out, u)
    std = out.log_std.exp()
    ref = (-0.5 * ((u - out.mean) / std) ** 2 - out.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    assert torch.allclose(lp, ref, atol=1e-5)
    assert torch.allclose(ent, (0.5 + 0.5 * np.log(2 * np.pi) + out.log_std).sum().expand(3), atol=1e-5)
    g = Painter(PainterSpec(image_size=16, hidden=16, width=4, action="grid", nvec=(3, 4)))
    out, _, a = g.step(torch.rand(3, 1, 16, 16), g.initial_state(3), torch.rand(3, 1, 16, 16))
    lp, _ = ppo.log_prob_entropy(g, out, a)
    ref = sum(torch.log_softmax(lg, -1).gather(1, a[:, i : i + 1]).squeeze(1) for i, lg in enumerate(out.logits))
    assert torch.allclose(lp, ref, atol=1e-5)


def test_ppo_trains_resumes_exactly_and_writes_a_loadable_checkpoint(tmp_path):
    full = ppo.train_ppo(quick_config(tmp_path / "a"))
    ppo.train_ppo(quick_config(tmp_path / "b", iters=1))
    resumed = ppo.train_ppo(quick_config(tmp_path / "b", resume="force"))  # a longer --iters: forced
    for (name, x), y in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), name
    run = tmp_path / "b" / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["policy_loss"]) and 0 <= r["test_mse_5"] <= 1 for r in rows)
    painter = load_model(run / "checkpoint.pt")
    assert painter.mode == "ppo" and painter.spec.strokes_per_step == 5


def test_ppo_runs_on_the_grid_env(tmp_path):
    painter = ppo.train_ppo(quick_config(tmp_path, env_id="paintrnn/PaintGrid-v0", iters=1))
    assert painter.spec.action == "grid" and len(painter.spec.nvec) >= 5


def test_target_kl_stops_the_update_early(tmp_path):
    def update_steps(**kw) -> list[float]:
        ppo.train_ppo(quick_config(tmp_path / str(len(kw)), update_epochs=3, minibatches=2, lr=3e-3, **kw))
        rows = (tmp_path / str(len(kw)) / "run" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["update_steps"] for line in rows]

    assert update_steps() == [6.0, 6.0]  # 3 epochs x 2 minibatches
    # the first minibatch sees the rollout's own policy (KL 0); after one step of lr 3e-3 the KL is far above 1e-9
    assert update_steps(target_kl=1e-9) == [1.0, 1.0]


def test_group_advantage_is_return_minus_the_other_members_mean():
    g = torch.Generator().manual_seed(1)
    reward = torch.randn(2, 3, 6, generator=g)  # (E, T, N): two groups of 3
    adv, ret = ppo.group_advantage(reward, 0.9, 3)
    for e in range(2):
        for t in range(3):
            rtg = [sum(0.9 ** (i - t) * float(reward[e, i, n]) for i in range(t, 3)) for n in range(6)]
            for n in range(6):
                others = [rtg[m] for m in range(6) if m // 3 == n // 3 and m != n]
                assert abs(float(ret[e, t, n]) - rtg[n]) < 1e-5
                assert abs(float(adv[e, t, n]) - (rtg[n] - sum(others) / 2)) < 1e-5
    assert torch.allclose(adv.unflatten(2, (2, 3)).sum(-1), torch.zeros(2, 3, 2), atol=1e-5)


def test_groups_paint_the_same_targets(tmp_path):
    cfg = quick_config(tmp_path, group_size=2, episodes_per_rollout=2, iters=1)
    painter = ppo.train_ppo(cfg)  # raises if the members of a group were given different targets
    env = ppo.make_env(cfg, torch.device("cpu"))
    batch = ppo.collect_rollout(cfg, env, painter, 0, torch.device("cpu"))
    targets = batch["target"].unflatten(2, (2, 2))  # (E, T, groups, G, ...)
    assert torch.equal(targets[:, :, :, 0], targets[:, :, :, 1]) and not torch.equal(targets[:, :, 0], targets[:, :, 1])
    with pytest.raises(ValueError, match="group-size"):
        ppo.PPOConfig(num_envs=4, group_size=3)


def test_ppo_refuses_to_resume_a_backprop_checkpoint(tmp_path):
    from paintrnn.agents import painter_backprop as bp

    from paintrnn.training import CheckpointError

    bp.train_backprop(
        bp.BackpropConfig(
            run_dir=str(tmp_path / "run"), device="cpu", data_source="sample", canvas_size=16, hidden=32, width=8,
            batch_size=4, iters=1, eval_size=4, progress=False,
        )
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="holds a 'painter' model, expected 'painter-ppo'"):
        ppo.train_ppo(quick_config(tmp_path, iters=1))


def test_old_iterations_flag_still_sets_iters(capsys):
    from paintrnn.config import parse_config

    cfg = parse_config(ppo.PPOConfig, ["--iterations", "7", "--num-envs", "4"])
    assert cfg.iters == 7 and "--iterations is deprecated, use --iters" in capsys.readouterr().err
