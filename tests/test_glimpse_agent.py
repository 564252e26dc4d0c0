"""RAM agent: step/forward consistency, loss gradients, training, exact resume, GIF, the loader and predict() on
Glimpse-v0."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401 - registers paintrnn/Glimpse-v0
import pytest
import torch
from paintrnn.agents.glimpse import RAM, episode_frames, load_model, ram_loss
from paintrnn.agents.glimpse_train import Config, build_model, main, train
from paintrnn.envs.glimpse import ENV_ID

import paintrnn
from paintrnn.retina import glimpse
from paintrnn.training import CheckpointError, read_metrics, save_checkpoint


def test_forward_unrolls_step():
    torch.manual_seed(0)
    model = RAM(glimpse_size=6, scales=2, hidden=32)
    images = torch.rand(4, 1, 28, 28)
    start = torch.zeros(4, 2)
    out = model(images, 3, start, torch.Generator().manual_seed(1))
    assert out.logits.shape == (4, 10) and out.locations.shape == (4, 3, 2)
    assert out.log_probs.shape == (4, 2) and out.baselines.shape == (4, 2)
    state, loc = model.initial_state(4, "cpu"), start
    for t in range(3):  # replay the rollout's locations through step(): same logits
        state, mean, base, logits = model.step(glimpse(images, loc, 6, 2), loc, state)
        if t < 2:
            loc = out.locations[:, t + 1]
            z = (loc - mean) / model.std
            expected = (-0.5 * z**2 - np.log(model.std) - 0.5 * np.log(2 * np.pi)).sum(-1)
            unclipped = (loc.abs() < 1).all(-1)
            torch.testing.assert_close(out.log_probs[unclipped, t], expected[unclipped])
    torch.testing.assert_close(out.logits, logits)


def test_loss_gradients_reach_every_part():
    torch.manual_seed(0)
    model = RAM(glimpse_size=6, hidden=32)
    out = model(torch.rand(8, 1, 28, 28), 4, torch.zeros(8, 2), torch.Generator().manual_seed(0))
    loss, logs = ram_loss(out, torch.randint(0, 10, (8,)))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert 0 <= logs["reward"] <= 1


def test_pathwise_locations_learn_from_the_classification_loss_through_the_glimpses():
    torch.manual_seed(0)
    model = RAM(glimpse_size=6, scales=2, hidden=32, locations="pathwise")
    images = torch.rand(8, 1, 28, 28)
    out = model(images, 4, torch.zeros(8, 2), torch.Generator().manual_seed(0))
    assert out.log_probs.shape == (8, 0) and out.baselines.shape == (8, 0)  # nothing sampled
    again = model(images, 4, torch.zeros(8, 2), torch.Generator().manual_seed(5))  # no noise: the mean path
    torch.testing.assert_close(out.locations, again.locations)
    labels = torch.randint(0, 10, (8,))
    loss, logs = ram_loss(out, labels)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(out.logits, labels))  # no REINFORCE
    loss.backward()
    assert model.locator.weight.grad.abs().sum() > 0  # the loss reaches where it looked
    assert model.baseline.weight.grad is None and torch.isfinite(loss)
    with pytest.raises(ValueError, match="location training"):
        RAM(locations="teleport")


def test_deterministic_rollout_follows_the_mean():
    model = RAM(glimpse_size=6, hidden=16)
    images = torch.rand(3, 1, 28, 28)
    a = model(images, 3, torch.zeros(3, 2), torch.Generator().manual_seed(0), deterministic=True)
    b = model(images, 3, torch.zeros(3, 2), torch.Generator().manual_seed(9), deterministic=True)
    torch.testing.assert_close(a.locations, b.locations)


def test_bad_arguments():
    with pytest.raises(ValueError, match="std"):
        RAM(std=0.0)
    with pytest.raises(ValueError, match="n_glimpses"):
        RAM()(torch.rand(1, 1, 28, 28), 0, torch.zeros(1, 2))


def test_episode_frames_shape():
    frames = episode_frames(torch.rand(2, 1, 28, 28), torch.zeros(2, 3, 2), torch.tensor([1, 2]), 8, 2, scale=2)
    assert frames.shape == (4, 56, 2 * 56 + 2, 3) and frames.dtype == np.uint8


TINY = ["--data-source", "sample", "--glimpses", "4", "--glimpse-size", "8", "--scales", "2", "--batch-size", "64",
        "--test-limit", "300", "--eval-every", "1", "--no-progress", "--lr", "2e-3",
        "--train-limit", "1280", "--hidden", "128"]  # fmt: skip


def test_tiny_training_beats_chance_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY, "--epochs", "3", "--run-dir", str(run), "--no-gif"]) == 0
    assert capsys.readouterr().out.startswith("glimpse: test_error_pct=")  # the one summary line
    result = json.loads((run / "result.json").read_text())
    assert result["test_error_pct"] < 60.0  # chance is 90%
    assert result["epochs_done"] == 3
    for name in ("config.json", "metrics.jsonl", "curves.png", "checkpoint.pt", "result.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="epochs: 3 -> 4"):  # another schedule: not the same run
        main([*TINY, "--epochs", "4", "--run-dir", str(run), "--no-gif"])
    assert main([*TINY, "--epochs", "4", "--run-dir", str(run), "--no-gif", "--resume", "force"]) == 0  # at epoch 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    again = json.loads((run / "result.json").read_text())
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and again["epochs_done"] == 4


def test_translated_random_ablation_and_gif(tmp_path):
    assert main(["--data-source", "sample", "--task", "translated", "--canvas", "40", "--model", "random",
                 "--glimpses", "2", "--glimpse-size", "6", "--scales", "2", "--epochs", "1", "--train-limit", "256",
                 "--test-limit", "64", "--no-progress", "--run-dir", str(tmp_path)]) == 0  # fmt: skip
    result = json.loads((tmp_path / "result.json").read_text())
    assert 0 <= result["test_error_pct"] <= 100
    assert (tmp_path / "glimpses.gif").stat().st_size > 0


def test_shift_augmentation_moves_each_image_by_at_most_shift_pixels():
    from paintrnn.agents.glimpse_train import shift_images

    images = torch.zeros(64, 1, 12, 10)
    images[:, 0, 6, 5] = torch.arange(1, 65).float()  # one bright pixel per image, its own value
    moved = shift_images(images, 2, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape
    for i in range(64):
        (row, col), value = moved[i, 0].nonzero()[0].tolist(), moved[i, 0].max()
        assert moved[i].count_nonzero() == 1 and value == i + 1  # moved, not blurred or mixed up
        assert abs(row - 6) <= 2 and abs(col - 5) <= 2
    offsets = {tuple(moved[i, 0].nonzero()[0].tolist()) for i in range(64)}
    assert len(offsets) > 10  # offsets differ between images
    assert torch.equal(shift_images(images, 0, torch.Generator()), images)


def test_benchmark_table_pairs_the_ablation_at_the_same_budget(tmp_path):
    from paintrnn.agents.glimpse_benchmark import collect, table

    def run(folder: str, model: str, err: float, epochs: int, planned: int, limit: float | None) -> None:
        path = tmp_path / folder / f"mnist_{model}"
        path.mkdir(parents=True)
        config = {"canvas": 28, "glimpses": 7, "glimpse_size": 8, "scales": 1, "shift": 2, "epochs": planned,
                  "time_limit_min": limit}
        result = {"config": config, "test_error_pct": err, "n_test": 10000, "epochs_done": epochs,
                  "train_minutes": 1.0, "device": "cpu", "parameters": 1}
        (path / "result.json").write_text(json.dumps(result))

    run("short", "ram", 1.3, 128, 2000, 45.0)  # stopped by the 45-minute limit
    run("short", "random", 3.9, 130, 2000, 45.0)
    run("long", "ram", 1.1, 220, 220, None)
    rows, targets = table(collect([str(tmp_path / "short"), str(tmp_path / "long")]))
    assert [(r["model"], r["epochs"]) for r in rows] == [("RAM", 128), ("RAM", 220),
                                                          ("RAM, random glimpses (ablation)", 130)]
    error, ratio = targets
    assert error["value"] == 1.1 and "220 epochs" in error["note"]  # the longest RAM run
    assert ratio["value"] == round(1.3 / 3.9, 3)  # the RAM run trained on the ablation's budget


SHIPPED = Path(paintrnn.__file__).parent / "assets" / "checkpoints" / "glimpse.pt"


def play(model, env, seed):
    """One Glimpse-v0 episode driven by ``model.predict`` alone; returns the reward, the step info and the image."""
    obs, _ = env.reset(seed=seed)
    image, state, terminated = env.unwrapped.sim.images.clone(), None, False
    while not terminated:
        action, state = model.predict(obs, state)
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, info = env.step(action)
    return reward, info, image


def test_shipped_ram_plays_the_glimpse_env_through_predict():
    model = load_model(SHIPPED)
    assert isinstance(model, RAM) and not model.training
    assert model.env_options == {"glimpses": 7, "glimpse_size": 8, "scales": 1, "canvas": None, "clutter": 0,
                                 "start": "centre"}  # fmt: skip
    env = gym.make(ENV_ID, **model.env_options, split="test", data_source="sample")
    correct = 0
    for seed in range(50):
        reward, info, image = play(model, env, seed)
        correct += reward
        rollout = model(image, 7, torch.zeros(1, 2), deterministic=True)  # the trainer's own way to classify
        assert info["prediction"] == int(rollout.logits.argmax(-1))
    assert correct >= 0.8 * 50  # measured: 50 / 50 (the trainer's evaluation: 98.4% of the 500 sample test digits)


def test_predict_on_a_vector_env_resets_rows_at_episode_starts():
    model = load_model(SHIPPED)
    opts = {**model.env_options, "split": "test", "data_source": "sample"}
    vec = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", autoreset_mode="same_step", **opts)
    obs, _ = vec.reset(seed=10)
    state, starts, predictions = None, np.ones(3, bool), []
    for _ in range(2 * 7):  # two episodes per env; same-step autoreset: a done row's observation starts the next one
        action, state = model.predict(obs, state, episode_start=starts)
        assert action.shape == (3, 12) and state[0].shape == (3, model.hidden)
        obs, reward, starts, truncated, info = vec.step(action)
        if starts.all():
            predictions.append(info["final_info"]["prediction"])
    assert len(predictions) == 2
    single = gym.make(ENV_ID, **opts)
    for i in range(3):  # the vector env's sub-env i plays the single env seeded seed + i
        assert predictions[0][i] == play(model, single, 10 + i)[1]["prediction"]
    obs, _ = vec.reset(seed=0)
    fresh, _ = model.predict(obs)
    again, _ = model.predict(obs, (np.ones_like(state[0]), np.ones_like(state[1])), episode_start=[True] * 3)
    np.testing.assert_array_equal(fresh, again)
    kept, _ = model.predict(obs, (np.ones_like(state[0]), np.ones_like(state[1])), episode_start=[False] * 3)
    assert not np.array_equal(fresh, kept)


def test_predict_refuses_an_env_with_other_glimpse_settings():
    model = load_model(SHIPPED)
    env = gym.make(ENV_ID, glimpse_size=6, scales=2, data_source="sample")
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"1 scale\(s\) of 8x8 pixels .* got glimpse \(1, 72\)"):
        model.predict(obs)
    with pytest.raises(ValueError, match="state must be"):
        model.predict(gym.make(ENV_ID, data_source="sample").reset(seed=0)[0], (np.zeros((2, 256)),) * 2)


def test_loader_rebuilds_baselines_and_the_ablation(tmp_path):
    for kind in ("mlp", "random"):
        cfg = Config(model=kind, hidden=16, task="translated", canvas=40)
        net = build_model(cfg)
        save_checkpoint(tmp_path / f"{kind}.pt", kind="glimpse", config=cfg, model=net)
        loaded = load_model(tmp_path / f"{kind}.pt")
        assert type(loaded) is type(net) and not loaded.training
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v)
    assert isinstance(loaded, RAM) and loaded.random_locations and loaded.env_options["canvas"] == 40
    with pytest.raises(CheckpointError, match="expected 'glimpse'"):
        save_checkpoint(tmp_path / "t.pt", kind="texture", config=cfg, model=net)
        load_model(tmp_path / "t.pt")


def tiny(run_dir, **kwargs) -> Config:
    return Config(**{**dict(data_source="sample", glimpses=3, glimpse_size=6, scales=2, hidden=32, epochs=4,
                            batch_size=64, train_limit=256, test_limit=64, eval_every=2, shift=1, progress=False,
                            gif=False, run_dir=str(run_dir)), **kwargs})  # fmt: skip


def test_resume_after_a_kill_is_exact(tmp_path, killed_after_checkpoints):
    full, _ = train(tiny(tmp_path / "full"))
    with killed_after_checkpoints(2):
        train(tiny(tmp_path / "killed"))
    resumed, result = train(tiny(tmp_path / "killed", eval_every=1, test_limit=32))  # evaluation may change
    assert result["epochs_done"] == 4
    for k, v in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    rows = read_metrics(tmp_path / "killed" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all("minutes" in r for r in rows)
