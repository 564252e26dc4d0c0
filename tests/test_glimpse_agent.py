"""RAM agent: step/forward consistency, loss gradients, a tiny training run that beats chance, resume, GIF."""

import json

import numpy as np
import pytest
import torch
from paintrnn.agents.glimpse import RAM, episode_frames, ram_loss
from paintrnn.agents.glimpse_train import main

from paintrnn.retina import glimpse


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


def test_tiny_training_beats_chance_and_resumes(tmp_path):
    run = tmp_path / "run"
    result = main([*TINY, "--epochs", "3", "--run-dir", str(run), "--no-gif"])
    assert result["test_error_pct"] < 60.0  # chance is 90%
    assert result["epochs_done"] == 3
    for name in ("config.json", "metrics.jsonl", "curves.png", "checkpoint.pt", "result.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    again = main([*TINY, "--epochs", "4", "--run-dir", str(run), "--no-gif"])  # resumes at epoch 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and again["epochs_done"] == 4


def test_translated_random_ablation_and_gif(tmp_path):
    result = main(["--data-source", "sample", "--task", "translated", "--canvas", "40", "--model", "random",
                   "--glimpses", "2", "--glimpse-size", "6", "--scales", "2", "--epochs", "1", "--train-limit", "256",
                   "--test-limit", "64", "--no-progress", "--run-dir", str(tmp_path)])  # fmt: skip
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
