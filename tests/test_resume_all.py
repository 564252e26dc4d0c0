"""Every trainer on the one run skeleton: killed right after a checkpoint and rerun with the same command, it ends
with exactly the weights of an uninterrupted run; and every `paintrnn train X --help` starts with the same options."""

import dataclasses
import sys

import pytest
import torch

from paintrnn.config import build_parser
from paintrnn.run import RunConfig
from paintrnn.training import load_checkpoint


def _draw(run_dir):
    from paintrnn.agents.draw_train import TrainConfig, train

    cfg = TrainConfig(run_dir=run_dir, preset="tiny", data_source="sample", train_images=100, test_images=20,
                      batch_size=20, epochs=2, iwae_k=0, log_every=2, checkpoint_every=2, ema_decay=0.9,
                      progress=False, device="cpu", threads=1)  # fmt: skip
    return cfg, train


def _texture(run_dir):
    from paintrnn.agents.texture_train import TrainConfig, train

    cfg = TrainConfig(texture="grass", crop=8, batch_size=2, iters=6, log_every=2, checkpoint_every=2, holdout=0.25,
                      eval_every=2, sample_size=8, hidden=6, head_hidden=6, components=3, progress=False,
                      run_dir=run_dir)  # fmt: skip
    return cfg, train


def _glimpse(run_dir):
    from paintrnn.agents.glimpse_train import Config, train

    cfg = Config(
        data_source="sample",
        glimpses=3,
        glimpse_size=6,
        scales=2,
        hidden=32,
        epochs=4,
        batch_size=64,
        train_limit=256,
        test_limit=64,
        eval_every=2,
        shift=1,
        gif=False,
        progress=False,
        run_dir=run_dir,
    )
    return cfg, train


def _backprop(run_dir):
    from paintrnn.agents.painter_backprop import BackpropConfig, train_backprop

    cfg = BackpropConfig(run_dir=run_dir, device="cpu", data_source="sample", canvas_size=16, strokes_per_step=2,
                         hidden=32, width=8, batch_size=8, iters=6, eval_size=8, log_every=2, checkpoint_every=2,
                         progress=False)  # fmt: skip
    return cfg, train_backprop


def _ppo(run_dir):
    from paintrnn.agents.painter_ppo import PPOConfig, train_ppo

    quick = {**PPOConfig.quick(), "num_envs": 4, "canvas_size": 16, "eval_size": 8, "iters": 3, "log_every": 1,
             "checkpoint_every": 1}  # fmt: skip
    return PPOConfig(run_dir=run_dir, device="cpu", **quick), train_ppo


def _ddpg(run_dir):
    from paintrnn.agents.painter_ddpg import DDPGConfig, train_ddpg

    quick = {**DDPGConfig.quick(), "num_envs": 4, "batch_size": 4, "eval_size": 8, "iters": 6}
    return DDPGConfig(run_dir=run_dir, device="cpu", **quick), train_ddpg


def _gan(run_dir):
    from paintrnn.agents.painter_gan import GANConfig, train_gan
    from paintrnn.agents.painter_ppo import PPOConfig

    quick = {**PPOConfig.quick(), "num_envs": 4, "canvas_size": 16, "steps": 2, "disc_width": 8, "iters": 3,
             "log_every": 1, "checkpoint_every": 1}  # fmt: skip
    return GANConfig(run_dir=run_dir, device="cpu", **quick), train_gan


def _doodle(run_dir):
    from paintrnn.agents.doodle_train import DoodleConfig, train_doodle

    quick = {**DoodleConfig.quick(), "iters": 6, "checkpoint_every": 2, "r1": 1.0, "disc_updates": 2}
    return DoodleConfig(run_dir=run_dir, device="cpu", **quick), train_doodle


def _digit_classifier(run_dir):
    from paintrnn.agents.digit_classifier_train import ClassifierTrainConfig, train

    cfg = ClassifierTrainConfig(run_dir=run_dir, data_source="sample", epochs=2, batch_size=500, width=4, features=8,
                                eval_size=50, log_every=2, checkpoint_every=3, progress=False)  # fmt: skip
    return cfg, train


def _reading(run_dir):
    from paintrnn.agents.dram import ReaderConfig, train

    cfg = ReaderConfig(data_source="sample", min_digits=2, max_digits=3, width=96, hidden=16, batch_size=8, iters=6,
                       log_every=2, checkpoint_every=2, eval_every=2, test_size=8, gif=False, progress=False,
                       run_dir=run_dir)  # fmt: skip
    return cfg, train


TRAINERS = {"draw": _draw, "texture": _texture, "glimpse": _glimpse, "painter-backprop": _backprop, "painter-ppo": _ppo,
            "painter-ddpg": _ddpg, "painter-gan": _gan, "doodle": _doodle,
            "digit-classifier": _digit_classifier, "reading": _reading}  # fmt: skip


def _final_state(run_dir) -> dict:
    ckpt = load_checkpoint(f"{run_dir}/checkpoint.pt")
    return {"model": ckpt["model"], "step": ckpt["step"],
            **{k: v for k, v in ckpt["extra"].items() if isinstance(v, dict) and k == "ema"}}  # fmt: skip


def _assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), f"{where} differs after resuming"
    else:
        assert a == b, where


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_resume_after_a_kill_is_exact(name, tmp_path, killed_after_checkpoints):
    cfg, train = TRAINERS[name](str(tmp_path / "whole"))
    train(cfg)
    whole = _final_state(cfg.run_dir)

    killed = dataclasses.replace(cfg, run_dir=str(tmp_path / "killed"))
    with killed_after_checkpoints(2):  # killed right after the second checkpoint
        train(killed)
    mid = load_checkpoint(f"{killed.run_dir}/checkpoint.pt")["step"]
    assert 0 < mid < whole["step"]
    train(killed)  # the same command again: resume="auto" continues from the checkpoint
    _assert_same(whole, _final_state(killed.run_dir), name)


TRAIN_NAMES = [
    "draw",
    "texture",
    "glimpse",
    "painter backprop",
    "painter ppo",
    "painter ddpg",
    "painter gan",
    "reading",
    "doodle",
    "classifier",
]


@pytest.mark.parametrize("name", TRAIN_NAMES)
def test_every_trainer_help_starts_with_the_same_run_options(name, capsys, monkeypatch):
    from paintrnn.agents.cli import main

    monkeypatch.setattr(sys, "argv", ["paintrnn"])
    with pytest.raises(SystemExit) as exc:
        main(["train", *name.split(), "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    flags = [line.split()[0].rstrip(",") for line in text.splitlines() if line.strip().startswith("--")]
    base = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(RunConfig)]
    assert flags[: len(base)] == base, flags[: len(base) + 2]


def test_every_trainer_config_is_a_run_config():
    for name, make in TRAINERS.items():
        cfg, _ = make("unused")
        assert isinstance(cfg, RunConfig), name
        build_parser(type(cfg))  # builds
