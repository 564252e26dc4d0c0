"""The painter policy and its backprop training mode."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from paintrnn.agents import painter_backprop as bp
from paintrnn.agents.painter import (
    Painter,
    PainterSpec,
    actions_to_strokes,
    evaluate_mse,
    load_model,
    obs_images,
    paint,
    prepare_images,
)

import paintrnn
from paintrnn.render import render_strokes, stroke_size
from paintrnn.training import CheckpointError, NonFiniteLossError, load_checkpoint, save_checkpoint

TINY = dict(image_size=16, hidden=32, width=8)
SHIPPED = Path(paintrnn.__file__).parent / "assets" / "checkpoints" / "painter.pt"
TINY_FLAGS = (
    "--device cpu --data-source sample --canvas-size 16 --strokes-per-step 2 --hidden 32 --width 8 --batch-size 8 "
    "--eval-size 8 --log-every 1 --checkpoint-every 1 --no-progress"
).split()


def tiny_config(tmp_path, **kw) -> bp.BackpropConfig:
    base = dict(
        run_dir=str(tmp_path / "run"),
        device="cpu",
        data_source="sample",
        canvas_size=16,
        strokes_per_step=2,
        steps=2,
        hidden=32,
        width=8,
        batch_size=8,
        iters=4,
        eval_size=8,
        log_every=2,
        checkpoint_every=2,
        progress=False,
    )
    base.update(kw)
    return bp.BackpropConfig(**base)


def test_actions_to_strokes_layout_and_ranges():
    a = torch.tensor([[-1.0] * 11 + [1.0] * 11])
    s = actions_to_strokes(a, channels=1, radius_range=(0.01, 0.15))
    assert s.shape == (1, 2, stroke_size(1))
    assert torch.allclose(s[0, 0], torch.tensor([0.0] * 6 + [0.01, 0.01] + [0.0] * 3))
    assert torch.allclose(s[0, 1], torch.tensor([1.0] * 6 + [0.15, 0.15] + [1.0] * 3))
    with pytest.raises(ValueError, match="multiple"):
        actions_to_strokes(torch.zeros(1, 12), channels=1)
    x = torch.rand(2, 22, dtype=torch.float64) * 1.8 - 0.9
    assert torch.autograd.gradcheck(lambda t: actions_to_strokes(t, 1), (x.requires_grad_(),))


def test_step_shapes_and_reset_mask():
    torch.manual_seed(0)
    p = Painter(PainterSpec(strokes_per_step=3, **TINY))
    canvas, target = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    out, state, grid = p.step(canvas, p.initial_state(4), target)
    assert out.mean.shape == (4, 3 * 11) and out.value.shape == (4,) and grid is None
    assert state[0].shape == (4, 32)
    # Resetting rows 0 and 2 gives exactly what a fresh initial state gives there; rows 1, 3 keep their state.
    reset = torch.tensor([True, False, True, False])
    masked, _, _ = p.step(canvas, state, target, reset=reset)
    fresh, _, _ = p.step(canvas, p.initial_state(4), target)
    kept, _, _ = p.step(canvas, state, target)
    assert torch.allclose(masked.mean[reset], fresh.mean[reset])
    assert torch.allclose(masked.mean[~reset], kept.mean[~reset])
    assert not torch.allclose(fresh.mean[~reset], kept.mean[~reset])


def test_forward_unrolls_step_and_paints_in_range():
    torch.manual_seed(0)
    p = Painter(PainterSpec(strokes_per_step=2, **TINY))
    target = torch.rand(3, 1, 16, 16)
    canvases = p(target, 3, mode="hard")
    assert len(canvases) == 3 and canvases[-1].shape == (3, 1, 16, 16)
    assert all(float(c.min()) >= 0 and float(c.max()) <= 1 for c in canvases)
    assert canvases[-1].requires_grad
    # Stroke-by-stroke painting matches the step-wise unroll and re-renders the same strokes at 32 px.
    frames, strokes = paint(p, target, 3)
    assert frames.shape == (3, 6, 1, 16, 16) and strokes.shape == (3, 6, 11)
    # (The renderer samples each call's curves with the chord count of its most bent stroke, so calls with
    # other strokes may differ slightly on the medial axis of strongly bent strokes.)
    close = lambda a, b: float((a - b).abs().mean()) < 1e-3 and float((a - b).abs().max()) < 0.05
    assert close(frames[:, -1], canvases[-1].detach())
    assert close(frames[:, 1::2], torch.stack(canvases, 1).detach())
    redo = render_strokes(strokes, height=16, width=16, mode="hard")
    assert close(redo, canvases[-1].detach())


def test_bad_inputs_are_clear_errors():
    p = Painter(PainterSpec(**TINY))
    state = p.initial_state(2)
    with pytest.raises(ValueError, match="channels"):
        p.step(torch.rand(2, 3, 16, 16), state, torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="needs a target"):
        p.step(torch.rand(2, 1, 16, 16), state)
    with pytest.raises(ValueError, match="NaN"):
        p.step(torch.rand(2, 1, 16, 16), state, torch.full((2, 1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        prepare_images(torch.rand(16, 16), 1, 16)
    # Another size is resized (uint8 is scaled to [0, 1]) rather than rejected.
    big = prepare_images(torch.full((2, 1, 40, 40), 255, dtype=torch.uint8), 1, 16)
    assert big.shape == (2, 1, 16, 16) and torch.allclose(big, torch.ones_like(big))
    out, _, _ = p.step(torch.zeros(2, 1, 64, 64), state, torch.rand(2, 1, 28, 28))
    assert out.mean.shape == (2, 5 * 11)
    with pytest.raises(ValueError, match="nvec"):
        Painter(PainterSpec(action="grid", **TINY))


def test_grid_heads_are_autoregressive_and_teacher_forcing_reproduces_logits():
    torch.manual_seed(0)
    p = Painter(PainterSpec(action="grid", nvec=(4, 4, 3), **TINY))
    canvas, target = torch.rand(5, 1, 16, 16), torch.rand(5, 1, 16, 16)
    g = torch.Generator().manual_seed(1)
    out, _, actions = p.step(canvas, p.initial_state(5), target, generator=g)
    assert actions.shape == (5, 3) and [lg.shape[-1] for lg in out.logits] == [4, 4, 3]
    assert all(int(actions[:, i].max()) < n for i, n in enumerate((4, 4, 3)))
    again, _, same = p.step(canvas, p.initial_state(5), target, grid_actions=actions)
    assert torch.equal(same, actions)
    for a, b in zip(out.logits, again.logits):
        assert torch.allclose(a, b)
    # The second head's logits depend on the first choice.
    other = actions.clone()
    other[:, 0] = (other[:, 0] + 1) % 4
    forced, _, _ = p.step(canvas, p.initial_state(5), target, grid_actions=other)
    assert torch.allclose(forced.logits[0], out.logits[0])
    assert not torch.allclose(forced.logits[1], out.logits[1])


def test_episode_frames_grid_with_target_and_render_outputs(tmp_path):
    from paintrnn.agents.painter_gif import episode_frames, render

    p = Painter(PainterSpec(strokes_per_step=2, **TINY))
    frames = episode_frames(p, torch.rand(4, 1, 16, 16), steps=2, nrow=2, scale=1)
    assert frames.dtype.name == "uint8" and frames.shape[0] == 5  # blank + 4 strokes
    assert frames.shape[2] > 2 * 2 * 16  # two episodes per row, each canvas beside its target
    cfg = tiny_config(tmp_path, iters=1, log_every=1, checkpoint_every=1)
    bp.train_backprop(cfg)
    paths = render(tmp_path / "run" / "checkpoint.pt", tmp_path / "out", n=4, size=32)
    assert sorted(x.name for x in paths) == ["painter_episodes.gif", "painter_final.png", "painter_strokes.svg"]
    svg = (tmp_path / "out" / "painter_strokes.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<path") == 4  # 2 steps x 2 strokes


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    # A run stopped after 2 iterations and resumed to 4 ends exactly where an uninterrupted one with the
    # same seed does (which needs both determinism under the seed and an exact resume).
    full = bp.train_backprop(tiny_config(tmp_path / "a"))
    bp.train_backprop(tiny_config(tmp_path / "c", iters=2))
    resumed = bp.train_backprop(tiny_config(tmp_path / "c", resume="force"))  # a longer --iters: forced
    for x, y in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)
    run = tmp_path / "c" / "run"
    files = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))  # (.lock: the run folder's lock)
    assert files == ["checkpoint.pt", "config.json", "curves.png", "metrics.jsonl"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    painter = load_model(run / "checkpoint.pt")
    assert painter.trained_iters == 4 and painter.mode == "backprop" and painter.spec.image_size == 16


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, iters=6)
    calls = {"n": 0}
    real = bp.reconstruction_loss

    def poisoned(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] > 2 * 3 else loss  # NaN from the 4th iteration (2 steps each)

    monkeypatch.setattr(bp, "reconstruction_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        bp.train_backprop(cfg)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(path)


def test_tiny_painter_beats_blank_canvas(tmp_path):
    """A few seconds of backprop training must cut the test MSE well below the blank canvas's."""
    cfg = tiny_config(
        tmp_path,
        iters=150,
        batch_size=32,
        strokes_per_step=4,
        steps=1,
        lr=2e-3,
        log_every=150,
        checkpoint_every=150,
        hidden=128,
        width=16,
    )
    painter = bp.train_backprop(cfg)
    test = bp.load_targets(cfg, "test")[:64]
    blank = float((bp.to_canvas(test, 32) ** 2).mean())
    untrained = evaluate_mse(Painter(painter.spec), test, 4, size=32)[-1]
    mse = evaluate_mse(painter, test, 4, size=32)
    assert mse[-1] < 0.8 * blank and mse[-1] < 0.7 * untrained, (mse, blank, untrained)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One torchrun-like process: train 3 iterations under DDP, record its parameters and its writes."""
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    from pathlib import Path

    import paintrnn.run

    writes = []
    real_save, real_config = paintrnn.run.save_checkpoint, paintrnn.run.write_config
    paintrnn.run.save_checkpoint = lambda *a, **k: (writes.append("checkpoint"), real_save(*a, **k))
    paintrnn.run.write_config = lambda *a, **k: (writes.append("config"), real_config(*a, **k))

    cfg = tiny_config(Path(out), iters=3, log_every=3, checkpoint_every=3)
    painter = bp.train_backprop(cfg)
    torch.save(
        {"params": {k: v.clone() for k, v in painter.state_dict().items()}, "writes": writes},
        Path(out) / f"rank{rank}.pt",
    )


def test_ddp_two_cpu_processes_keep_parameters_identical_and_only_rank0_writes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, p0 in r0["params"].items():
        assert torch.equal(p0, r1["params"][name]), name
    assert r0["writes"] == ["config", "checkpoint"] and r1["writes"] == []
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for name, p0 in r0["params"].items():
        assert torch.equal(p0, saved["model"][name]), name
    # The ranks saw different data: one rank alone ends elsewhere.
    solo = bp.train_backprop(tiny_config(tmp_path / "solo", iters=3, log_every=3, checkpoint_every=3))
    assert not all(torch.equal(p, solo.state_dict()[n]) for n, p in r0["params"].items())


@pytest.mark.parametrize("mode", ["backprop", "ppo", "ddpg", "gan"])
def test_every_mode_has_a_working_help(mode, capsys):
    from paintrnn.agents.painter_train import main

    with pytest.raises(SystemExit) as exit_info:
        main([mode, "--help"])
    assert exit_info.value.code == 0 and "--run-dir" in capsys.readouterr().out


def test_unconditional_painter_samples_different_doodles_only_with_a_generator():
    torch.manual_seed(0)
    p = Painter(PainterSpec(conditional=False, strokes_per_step=2, **TINY))
    same, _ = paint(p, None, 2, 16, 16, batch=3)
    assert torch.equal(same[0], same[1]) and torch.equal(same[1], same[2])
    g = torch.Generator().manual_seed(0)
    sampled, strokes = paint(p, None, 2, 16, 16, batch=3, generator=g)
    assert strokes.shape == (3, 4, 11) and not torch.equal(sampled[0], sampled[1])


@pytest.mark.parametrize("num_envs", [None, 3], ids=["single", "vector"])
def test_shipped_painter_drives_paint_env_through_predict_as_paint_does(num_envs):
    """predict() takes Paint-v0's observations as they come and returns actions it accepts: a whole episode
    ends on the canvas paint() paints for the same targets (single env and native vector env)."""
    model = load_model(SHIPPED)
    assert not model.training and model.mode == "backprop" and model.episode_steps == 2
    options = dict(height=64, width=64, max_steps=model.episode_steps, strokes_per_step=5, target="mnist")
    if num_envs is None:
        env = gym.make("paintrnn/Paint-v0", **options)
    else:
        env = gym.make_vec("paintrnn/Paint-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **options)
    model.check_env(env)
    obs, _ = env.reset(seed=0)
    target = obs_images(obs, "target", "cpu")  # (N, 1, 64, 64) uint8
    state, terminated = None, False
    for _ in range(model.episode_steps):
        action, state = model.predict(obs, state)
        obs, _, terminated, _, _ = env.step(action)
    assert np.all(terminated) and action.shape == ((55,) if num_envs is None else (num_envs, 55))
    expected, _ = paint(model, target, model.episode_steps)  # (N, strokes, 1, 64, 64)
    final = obs_images(obs, "canvas", "cpu").float() / 255
    # The same canvas up to the uint8 rounding of the canvas the policy observes (paint() feeds it floats) and
    # the renderer's per-call curve sampling; a policy that forgot its state between steps differs by ~0.8.
    diff = (final - expected[:, -1]).abs()
    assert float(diff.mean()) < 1e-3 and float(diff.max()) < 0.02, (float(diff.mean()), float(diff.max()))
    env.close()


def test_predict_carries_the_state_and_resets_it_at_episode_starts():
    torch.manual_seed(0)
    p = Painter(PainterSpec(strokes_per_step=2, **TINY)).eval()
    rng = np.random.default_rng(0)
    obs = {
        "canvas": rng.integers(0, 256, (3, 16, 16, 1), dtype=np.uint8),
        "target": rng.integers(0, 256, (3, 16, 16, 1), dtype=np.uint8),
        "step": np.zeros(3, dtype=np.int64),
    }
    first, state = p.predict(obs)
    second, _ = p.predict(obs, state)
    restarted, _ = p.predict(obs, state, episode_start=np.array([True, False, True]))
    assert first.shape == (3, 22) and first.dtype == np.float32 and np.abs(first).max() <= 1
    assert not np.allclose(second, first)  # the state matters
    assert np.allclose(restarted[[0, 2]], first[[0, 2]], atol=1e-6) and np.allclose(restarted[1], second[1], atol=1e-6)
    one, one_state = p.predict({k: v[0] for k, v in obs.items()})  # a single env's observation
    assert one.shape == (22,) and np.allclose(one, first[0], atol=1e-5) and one_state[0].shape == (1, 32)
    sampled, _ = p.predict(obs, deterministic=False)
    assert not np.allclose(sampled, first)
    with pytest.raises(ValueError, match="needs a 'target'"):
        p.predict({"canvas": obs["canvas"]})
    with pytest.raises(ValueError, match="channels"):
        p.predict({"canvas": np.zeros((3, 16, 16, 3), np.uint8), "target": np.zeros((3, 16, 16, 3), np.uint8)})
    with pytest.raises(ValueError, match="state holds 3"):
        p.predict({k: v[:2] for k, v in obs.items()}, state)
    with pytest.raises(ValueError, match="episode_start"):
        p.predict(obs, state, episode_start=[True])


def test_grid_painter_predicts_greedy_actions_the_grid_env_takes():
    env = gym.make_vec(
        "paintrnn/PaintGrid-v0", num_envs=2, vectorization_mode="vector_entry_point", height=16, width=16, max_steps=2
    )
    torch.manual_seed(0)
    p = Painter(PainterSpec(action="grid", nvec=tuple(int(n) for n in env.single_action_space.nvec), **TINY)).eval()
    p.check_env(env)
    obs, _ = env.reset(seed=0)
    action, state = p.predict(obs)
    again, _ = p.predict(obs)
    assert action.dtype == np.int64 and action.shape == (2, len(p.spec.nvec)) and np.array_equal(action, again)
    out, _, _ = p.step(obs_images(obs, "canvas", "cpu"), p.initial_state(2), obs_images(obs, "target", "cpu"))
    assert np.array_equal(action[:, 0], out.logits[0].argmax(-1).numpy())  # greedy: the first head's argmax
    env.step(action)
    env.close()


def test_check_env_names_every_mismatch():
    p = Painter(PainterSpec(**TINY))  # 5 grey strokes per step, conditional
    fits = gym.make_vec("paintrnn/Paint-v0", num_envs=2, vectorization_mode="vector_entry_point", strokes_per_step=5)
    p.check_env(fits)
    with pytest.raises(ValueError, match="strokes_per_step=5"):
        p.check_env(gym.make("paintrnn/Paint-v0", strokes_per_step=1))
    with pytest.raises(ValueError, match="3 channels"):
        p.check_env(gym.make("paintrnn/Paint-v0", strokes_per_step=5, channels=3, target="mnist"))
    with pytest.raises(ValueError, match="radius_range"):
        p.check_env(gym.make("paintrnn/Paint-v0", strokes_per_step=5, radius_range=(0.02, 0.2)))
    with pytest.raises(ValueError, match="no target"):
        p.check_env(gym.make("paintrnn/Paint-v0", strokes_per_step=5, target=None, reward="none"))


def test_load_model_refuses_other_models(tmp_path):
    save_checkpoint(tmp_path / "texture.pt", kind="texture", config={"steps": 2}, model=torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="not a painter"):
        load_model(tmp_path / "texture.pt")


def test_resume_refuses_changed_settings(tmp_path):
    bp.train_backprop(tiny_config(tmp_path, iters=2))
    with pytest.raises(CheckpointError, match=r"lr: 0.001 -> 0.002"):
        bp.train_backprop(tiny_config(tmp_path, iters=4, lr=2e-3))
    with pytest.raises(CheckpointError, match="batch_size"):
        bp.train_backprop(tiny_config(tmp_path, iters=4, batch_size=4))
    painter = bp.train_backprop(tiny_config(tmp_path, iters=4, lr=2e-3, resume="force"))
    assert painter.trained_iters == 4 and load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 4


def test_main_prints_the_summary_and_exits_1_on_a_nan_loss(tmp_path, capsys, monkeypatch):
    from paintrnn.agents.painter_train import main

    assert main(["backprop", *TINY_FLAGS, "--iters", "2", "--run-dir", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("painter: iters=2 ") and str(tmp_path / "ok") in out[-1]
    monkeypatch.setattr(bp, "reconstruction_loss", lambda *a, **k: torch.tensor(float("nan")))
    assert main(["backprop", *TINY_FLAGS, "--iters", "2", "--run-dir", str(tmp_path / "nan")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train_painter backprop: loss became nan")
