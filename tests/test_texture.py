"""Spatial LSTM texture model: causality, sampler consistency, inpainting, training, checkpoints, bad input."""

import json
import math

import numpy as np
import pytest
import torch
from paintrnn.agents.texture import (
    TextureModel,
    TextureModelConfig,
    _fronts,
    causal_offsets,
    inpaint,
    inpainting_frames,
    load_model,
    sample,
    sampling_frames,
)
from paintrnn.agents.texture_train import CropSampler, TrainConfig, lr_at, main, train
from PIL import Image

from paintrnn.data import DataError
from paintrnn.training import CheckpointError, NonFiniteLossError

TINY = dict(hidden=6, head_hidden=6, components=3)


def tiny_model(seed: int = 0, **kwargs) -> TextureModel:
    torch.manual_seed(seed)
    return TextureModel(TextureModelConfig(**{**TINY, **kwargs}))


def test_neighbourhood_is_ride_half_window_when_slope_exceeds_radius():
    assert causal_offsets(2, 3) == [(-2, dj) for dj in range(-2, 3)] + [(-1, dj) for dj in range(-2, 3)] + [
        (0, -2),
        (0, -1),
    ]
    assert (-1, 1) not in causal_offsets(2, 1) and (-2, 1) in causal_offsets(2, 1)  # anti-diagonal fronts


@pytest.mark.parametrize("slope, up_right", [(1, False), (3, False), (2, True), (3, True)])
def test_params_at_a_pixel_ignore_that_pixel_and_all_later_fronts(slope, up_right):
    model = tiny_model(slope=slope, up_right=up_right)
    h, w = 7, 8
    x = torch.randint(0, 256, (1, h, w, 1), generator=torch.Generator().manual_seed(0))
    front = slope * torch.arange(h)[:, None] + torch.arange(w)
    with torch.no_grad():
        base = model(x)
        for i, j in [(0, 0), (3, 4), (6, 2), (2, 7)]:
            later = front >= front[i, j]
            changed = torch.where(later[None, ..., None], 255 - x, x)
            torch.testing.assert_close(model(changed)[0, i, j], base[0, i, j], rtol=0, atol=1e-6)
            if j > 0:  # the left neighbour does matter, so the test can fail
                nudged = x.clone()
                nudged[0, i, j - 1] = 255 - x[0, i, j - 1]
                assert not torch.allclose(model(nudged)[0, i, j], base[0, i, j])


@pytest.mark.parametrize("up_right", [False, True])
def test_default_model_is_also_causal_in_raster_order(up_right):
    model = tiny_model(up_right=up_right)
    assert model.config.slope == model.config.radius + 1
    x = torch.randint(0, 256, (1, 6, 6, 1), generator=torch.Generator().manual_seed(1))
    raster = torch.arange(36).view(6, 6)
    with torch.no_grad():
        base = model(x)
        for p in [7, 16, 29]:
            changed = torch.where((raster >= p)[None, ..., None], 255 - x, x)
            i, j = divmod(p, 6)
            torch.testing.assert_close(model(changed)[0, i, j], base[0, i, j], rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels, up_right, head_layers", [(1, False, 1), (3, False, 1), (1, True, 2)])
def test_front_sampler_uses_exactly_the_distributions_of_the_forward_pass(channels, up_right, head_layers):
    model = tiny_model(channels=channels, up_right=up_right, head_layers=head_layers)
    canvas = torch.zeros(2, 6, 9, channels, dtype=torch.long)
    params = torch.zeros(2, 6, 9, model.dist.num_params)
    with torch.no_grad():
        for rows, cols, p in _fronts(model, canvas, None, 1.0, torch.Generator().manual_seed(0)):
            params[:, rows, cols] = p
        torch.testing.assert_close(model(canvas), params, rtol=0, atol=1e-5)
    assert canvas.float().std() > 10  # real samples, not a constant


def test_sample_shapes_determinism_and_temperature():
    model = tiny_model()
    a = sample(model, 3, 10, 13, generator=torch.Generator().manual_seed(5))
    b = sample(model, 3, 10, 13, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 10, 13, 1) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    cold = sample(model, 3, 10, 13, temperature=0.05, generator=torch.Generator().manual_seed(5))
    assert cold.float().std() < a.float().std()
    frames = sampling_frames(model, 8, 8, num=2, frames=5, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (5, 8, 16) and frames.dtype == np.uint8


@pytest.mark.parametrize("refine", [0, 3])
def test_inpainting_keeps_known_pixels_and_fills_the_hole(refine):
    model = tiny_model()
    image = torch.randint(0, 256, (2, 12, 12, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    missing = torch.zeros(2, 12, 12, dtype=torch.bool)
    missing[:, 3:8, 4:9] = True
    out = inpaint(model, image, missing, refine_steps=refine, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert torch.equal(out[~missing], image[~missing])
    assert not torch.equal(out[missing], image[missing])
    frames = inpainting_frames(model, image, missing, frames=8, refine_steps=refine)
    assert frames.shape[1:] == (12, 24) and frames.dtype == np.uint8
    assert (frames[0][:, :12][missing[0].numpy()] == 0).all()  # the hole starts black
    assert np.array_equal(frames[0][:, :12][~missing[0].numpy()], image[0, ..., 0][~missing[0]].numpy())


def test_refinement_samples_the_exact_posterior_of_a_hole_pixel():
    """Hole at (0, 1) of a 1 x 4 image: p(hole | known) is proportional to the joint, computed by enumeration.

    Ancestral sampling ignores the known pixels after the hole; Metropolis-Hastings refinement must not.
    """
    model = tiny_model(seed=1, layers=2, radius=2, slope=3, head_layers=1)
    with torch.no_grad():  # make later pixels depend strongly on the hole
        model.head[0].weight.mul_(15.0)
    known = torch.tensor([30, 0, 220, 240]).view(1, 1, 4, 1)
    candidates = known.repeat(256, 1, 1, 1)
    candidates[:, 0, 1, 0] = torch.arange(256)
    with torch.no_grad():
        posterior = torch.softmax(model.log_prob(candidates).sum((1, 2)).double(), 0)
    bins = lambda v: torch.bincount(torch.as_tensor(v).long() // 32, minlength=8).double()  # noqa: E731
    exact = torch.stack([posterior[k * 32 : (k + 1) * 32].sum() for k in range(8)])
    n = 3000
    image, missing = known.repeat(n, 1, 1, 1).to(torch.uint8), torch.zeros(n, 1, 4, dtype=torch.bool)
    missing[:, 0, 1] = True
    gen = torch.Generator().manual_seed(0)
    ancestral = inpaint(model, image, missing, generator=gen)[:, 0, 1, 0]
    refined = inpaint(model, image, missing, refine_steps=8, generator=gen)[:, 0, 1, 0]
    tv_ancestral = 0.5 * (bins(ancestral) / n - exact).abs().sum()
    tv_refined = 0.5 * (bins(refined) / n - exact).abs().sum()
    assert tv_ancestral > 0.25, "the test needs a posterior that differs from the causal conditional"
    assert tv_refined < 0.05


def test_bad_inputs_are_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 8, 8, 3, dtype=torch.long))  # wrong channel count
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 8, 8, 1))
    with pytest.raises(ValueError, match="0..255"):
        model(torch.full((1, 8, 8, 1), 300))
    with pytest.raises(ValueError, match="missing"):
        inpaint(model, torch.zeros(1, 8, 8, 1, dtype=torch.uint8), torch.zeros(1, 8, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="channels"):
        TextureModelConfig(channels=2)
    with pytest.raises(ValueError, match="slope >= 2"):
        TextureModelConfig(up_right=True, slope=1)
    with pytest.raises(ValueError, match="smaller than"):
        CropSampler([np.zeros((20, 40, 1), np.uint8)], 32, 4, "h", torch.Generator())


def test_learning_rate_warms_up_linearly_then_decays_to_five_percent():
    lrs = [lr_at(step, 100, 1.0, warmup=10) for step in range(100)]
    assert lrs[:10] == pytest.approx([(k + 1) / 10 for k in range(10)])
    assert lrs[10] == pytest.approx(1.0) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, 100, 1.0, warmup=10) == pytest.approx(0.05)
    assert lr_at(0, 100, 2.0) == pytest.approx(2.0)  # no warm-up: the cosine starts at the peak
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(iters=10, warmup=10)


def test_tiny_training_beats_the_best_constant_and_resumes_exactly(tmp_path, monkeypatch):
    image = np.zeros((48, 48), np.uint8)  # a learnable texture: smooth stripes plus a little noise
    image[:] = (np.sin(np.arange(48) / 2.0) * 60 + 128).astype(np.uint8)[None, :]
    image = (image + np.random.default_rng(0).integers(0, 6, image.shape)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "stripes.png")
    cfg = TrainConfig(
        texture=str(tmp_path / "stripes.png"),
        crop=12,
        batch_size=4,
        iters=100,
        lr=3e-2,
        log_every=10,
        checkpoint_every=20,
        holdout=0.25,
        eval_every=30,
        sample_size=8,
        progress=False,
        run_dir=str(tmp_path / "run"),
        **TINY,
    )
    model, summary = train(cfg)
    _, counts = np.unique(image, return_counts=True)
    entropy = -(counts / counts.sum() * np.log2(counts / counts.sum())).sum()  # best i.i.d. model
    assert summary["test_bits_per_pixel"] < entropy - 1.0
    for name in ("metrics.jsonl", "curves.png", "samples.png", "config.json", "checkpoint.pt"):
        assert (tmp_path / "run" / name).is_file()

    # The same run, hit by a NaN loss at step 45: a clear error, then resuming from the step-40 checkpoint
    # ends with exactly the weights of the uninterrupted run.
    import paintrnn.run

    real_check = paintrnn.run.check_finite

    def nan_at_45(loss, step):
        real_check(loss * float("nan") if step == 45 else loss, step)

    again = TrainConfig(**{**cfg.__dict__, "run_dir": str(tmp_path / "again")})
    monkeypatch.setattr(paintrnn.run, "check_finite", nan_at_45)
    with pytest.raises(NonFiniteLossError, match="step 45"):
        train(again)
    assert torch.load(tmp_path / "again" / "checkpoint.pt", weights_only=True)["step"] == 40
    monkeypatch.setattr(paintrnn.run, "check_finite", real_check)
    resumed, summary = train(again)
    assert summary["resumed_from"] == 40
    for k, v in model.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
    loaded = load_model(tmp_path / "again" / "checkpoint.pt")
    assert loaded.config == model.config and not loaded.training
    torch.testing.assert_close(loaded.state_dict()["head.0.weight"], model.state_dict()["head.0.weight"])
    steps = [json.loads(line)["step"] for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, 101, 10))
    with pytest.raises(CheckpointError, match="other settings"):
        train(TrainConfig(**{**again.__dict__, "lr": 1e-3}))


def test_command_line_trains_and_writes_gifs(tmp_path, capsys):
    assert (
        main(
            [
                "--iters",
                "2",
                "--crop",
                "8",
                "--batch-size",
                "2",
                "--hidden",
                "4",
                "--head-hidden",
                "4",
                "--components",
                "2",
                "--sample-size",
                "8",
                "--gifs",
                "--no-progress",
                "--run-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("texture: iters=2 resumed_from=0 train_bits_per_pixel=") and f" | run {tmp_path} | " in out
    for name in ("sampling.gif", "inpainting.gif", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_bad_files_and_configs_are_clear_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="not a readable image"):
        train(TrainConfig(texture=str(tmp_path / "notes.png"), run_dir=str(tmp_path / "r"), progress=False))
    with pytest.raises(ValueError, match="unknown texture"):
        train(TrainConfig(texture="no-such-texture", run_dir=str(tmp_path / "r"), progress=False))
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(small)
    with pytest.raises(ValueError, match="smaller than the 32x32 crop"):
        train(TrainConfig(texture=str(small), run_dir=str(tmp_path / "r"), progress=False))
    with pytest.raises(CheckpointError):
        load_model(small)


def test_linear_ar_baseline_recovers_a_known_autoregression():
    from paintrnn.agents.texture_benchmark import LinearAR

    rng = np.random.default_rng(0)
    x = np.zeros((64, 64))
    for i in range(64):
        for j in range(64):
            x[i, j] = 0.5 * (x[i, j - 1] if j else 0) + 0.3 * (x[i - 1, j] if i else 0) + rng.normal(0, 0.1)
    values = torch.from_numpy(np.clip(np.round((x + 1) * 127.5), 0, 255)).long()[None, ..., None]
    model = LinearAR(radius=1, slope=2)
    model.fit([values])
    weights = dict(zip(model.offsets, model.weights[:-1].tolist()))
    assert abs(weights[(0, -1)] - 0.5) < 0.05 and abs(weights[(-1, 0)] - 0.3) < 0.05
    assert abs(model.sigma - 0.1) < 0.01
    gaussian_bits = 0.5 * math.log2(2 * math.pi * math.e * (0.1 * 127.5) ** 2)  # differential entropy, 8-bit units
    assert abs(model.bits_per_pixel(values) - gaussian_bits) < 0.1


def test_pixelcnn_baseline_is_causal_in_raster_order():
    from paintrnn.agents.texture_benchmark import PixelCNN

    torch.manual_seed(0)
    model = PixelCNN(channels=4, blocks=2, components=2)
    xs = torch.randn(1, 4, 6, 6, requires_grad=True)  # feature maps straight into the masked convs
    h = model.first(xs[:, :1])
    for block in model.blocks:
        h = h + block(torch.relu(h))
    (grad,) = torch.autograd.grad(model.out(h)[0, :, 2, 3].sum(), xs)
    depends = grad[0, 0] != 0
    raster = torch.arange(36).view(6, 6)
    assert not depends[raster >= 2 * 6 + 3].any()
    assert depends[2, 2] and depends[1, 3]


def test_textures_load_from_a_folder_a_file_or_a_bundled_name(tmp_path):
    from paintrnn.agents.texture_train import load_textures

    with pytest.raises(DataError, match="no image files"):
        load_textures(str(tmp_path), 1)
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "b.png")
    assert [im.shape for im in load_textures(str(tmp_path), 1)] == [(40, 50, 1), (30, 30, 1)]
    assert load_textures(str(tmp_path / "b.png"), 3)[0].shape == (30, 30, 3)
    assert load_textures("grass", 1)[0].shape == (512, 512, 1)


def test_shipped_checkpoint_loads_and_scores_its_texture():
    from pathlib import Path

    from paintrnn.agents.texture_train import load_textures

    import paintrnn

    model = load_model(Path(paintrnn.__file__).parent / "assets" / "checkpoints" / "texture.pt")
    assert isinstance(model, TextureModel) and not model.training
    assert model.config == TextureModelConfig(hidden=32, head_hidden=80, head_layers=2, radius=3, slope=4)
    grass = torch.from_numpy(load_textures("grass", 1)[0][:64, :64].copy())[None].long()  # what it was trained on
    with torch.no_grad():
        bits = float(model.bits_per_dim(grass))
    assert bits < 7.0, bits  # trained: about 6.0; the same architecture untrained: about 9 bits per pixel


def tiny_config(tmp_path, **kwargs) -> TrainConfig:
    return TrainConfig(
        **{
            **dict(
                texture="grass",
                crop=8,
                batch_size=2,
                iters=6,
                log_every=2,
                checkpoint_every=2,
                sample_size=8,
                progress=False,
                run_dir=str(tmp_path / "run"),
                **TINY,
            ),
            **kwargs,
        }
    )


def test_run_options_come_first_and_old_flags_still_work(tmp_path, capsys):
    from paintrnn.config import build_parser, parse_config
    from paintrnn.run import RunConfig

    flags = [a.dest for a in build_parser(TrainConfig)._actions if a.dest != "help"]
    base = [f.name for f in __import__("dataclasses").fields(RunConfig)]
    assert flags[: len(base)] == base and flags[len(base)] == "channels"  # then the architecture
    cfg = parse_config(TrainConfig, ["--steps", "7", "--no-resume", "--run-dir", str(tmp_path)])
    assert cfg.iters == 7 and cfg.resume == "never" and cfg.run_dir == str(tmp_path)
    assert "--steps is deprecated, use --iters" in capsys.readouterr().err
    assert TrainConfig().run_dir == "runs/texture" and TrainConfig().log_every == 25


def test_resume_checks_settings_and_a_moved_run_folder_resumes(tmp_path):
    import os

    from paintrnn.training import load_checkpoint, read_metrics

    cfg = tiny_config(tmp_path)
    full, _ = train(cfg)
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6] and all("minutes" in r and "seconds" not in r for r in rows)
    with pytest.raises(CheckpointError, match="hidden: 6 -> 7"):
        train(tiny_config(tmp_path, hidden=7))
    os.rename(tmp_path / "run", tmp_path / "moved")
    _, summary = train(
        tiny_config(tmp_path, run_dir=str(tmp_path / "moved"), gifs=True, sample_size=9, eval_every=3, resume="must")
    )  # allowed changes
    assert summary["resumed_from"] == 6 and load_checkpoint(tmp_path / "moved" / "checkpoint.pt")["step"] == 6
    _, summary = train(tiny_config(tmp_path, run_dir=str(tmp_path / "moved"), iters=8, resume="force"))
    assert summary["resumed_from"] == 6 and load_checkpoint(tmp_path / "moved" / "checkpoint.pt")["step"] == 8
    fresh, summary = train(tiny_config(tmp_path, run_dir=str(tmp_path / "moved"), resume="never"))
    assert summary["resumed_from"] == 0
    for k, v in full.state_dict().items():  # the same seed from scratch: the same weights
        assert torch.equal(fresh.state_dict()[k], v)


def test_resume_after_a_kill_is_exact(tmp_path, killed_after_checkpoints):
    full, _ = train(tiny_config(tmp_path, run_dir=str(tmp_path / "full"), holdout=0.25, eval_every=2))
    with killed_after_checkpoints(2):
        train(tiny_config(tmp_path, run_dir=str(tmp_path / "killed"), holdout=0.25, eval_every=2))
    resumed, summary = train(tiny_config(tmp_path, run_dir=str(tmp_path / "killed"), holdout=0.25, eval_every=3))
    assert summary["resumed_from"] == 4
    for k, v in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
