"""The painter's GAN (doodling) mode: discriminator reward with temporal credit assignment."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from paintrnn.agents import painter_gan as gan
from paintrnn.agents.painter import load_model
from paintrnn.agents.painter_ppo import PPOConfig

from paintrnn.training import load_checkpoint


def quick_gan(tmp_path, **kw) -> gan.GANConfig:
    base = {
        **PPOConfig.quick(),
        "num_envs": 4,
        "canvas_size": 16,
        "iters": 2,
        "log_every": 1,
        "checkpoint_every": 1,
        "steps": 2,
        "disc_width": 8,
    }
    base.update(kw)
    return replace(gan.GANConfig(), run_dir=str(tmp_path / "run"), device="cpu", **base)


def test_half_masks_cover_complementary_halves():
    m = gan.half_masks(64, 8, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert m.shape == (64, 1, 8, 8)
    assert torch.all(m.sum((1, 2, 3)) == 32)  # exactly half of the pixels
    assert len({tuple(x.flatten().tolist()) for x in m}) == 4  # left, right, top, bottom


def test_step_rewards_telescope_to_the_final_score(tmp_path):
    hooks = gan.DiscriminatorReward(quick_gan(tmp_path), torch.device("cpu"))
    canvases = [torch.zeros(3, 1, 16, 16)] + [torch.rand(3, 1, 16, 16) for _ in range(2)]
    total = sum(hooks.reward(canvases[t], canvases[t + 1], t) for t in range(2))
    assert torch.allclose(total, hooks.score(canvases[-1]) - hooks.score(canvases[0]), atol=1e-5)
    assert len(hooks.finals) == 1 and torch.equal(hooks.finals[0], canvases[-1])


def test_gan_doodler_trains_and_resumes(tmp_path):
    gan.train_gan(quick_gan(tmp_path, iters=1))
    painter = gan.train_gan(quick_gan(tmp_path, resume="force"))  # a longer --iters: forced
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all("disc_loss" in r for r in rows)
    loaded = load_model(tmp_path / "run" / "checkpoint.pt")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert loaded.mode == "gan" and not loaded.spec.conditional and "disc" in ckpt["extra"]["hooks"]
    for x, y in zip(painter.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(x, y)


def test_complement_discriminator_is_conditional(tmp_path):
    painter = gan.train_gan(quick_gan(tmp_path, target="mnist", complement=True, iters=1))
    assert painter.spec.conditional
    with pytest.raises(ValueError, match="complement"):
        gan.DiscriminatorReward(quick_gan(tmp_path, complement=True), torch.device("cpu"))
