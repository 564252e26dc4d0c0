"""The doodler (the recurrent painter as a generator, trained by backprop), its trainer and the doodle benchmark."""

import dataclasses

import pytest
import torch
from paintrnn.agents.doodle_train import DoodleConfig, disc_loss, gen_loss, main, train_doodle
from paintrnn.agents.doodler import Doodler, DoodlerSpec, doodle_frames, load_model
from paintrnn.agents.painter_gan import Discriminator

from paintrnn.training import CheckpointError, export_weights, load_checkpoint

SMALL = DoodlerSpec(canvas_size=16, strokes_per_step=3, steps=2, z_size=8, hidden=32, width=8)


def test_noise_in_strokes_out_through_the_soft_renderer(one_torch_thread):
    torch.manual_seed(0)
    doodler = Doodler(SMALL)
    z = doodler.noise(4, torch.Generator().manual_seed(0))
    canvases, strokes = doodler.unroll(z)
    assert len(canvases) == SMALL.steps and canvases[-1].shape == (4, 1, 16, 16)
    assert strokes.shape == (4, SMALL.strokes, 11)
    assert torch.equal(doodler(z), canvases[-1])
    # every doodle is its own: the noise decides the strokes from the first step
    assert all((strokes[i] - strokes[j]).abs().max() > 1e-3 for i in range(4) for j in range(i))
    # the canvas is a differentiable function of every weight, the noise's included
    canvases[-1].mean().backward()
    assert doodler.start.weight.grad.abs().sum() > 0 and doodler.painter.mean_head.weight.grad.abs().sum() > 0
    assert doodler.painter.encoder.fc.weight.grad.abs().sum() > 0  # the second step saw the first one's canvas


def test_the_discriminators_gradient_makes_doodles_more_real_to_it(one_torch_thread):
    torch.manual_seed(1)
    doodler, disc = Doodler(SMALL), Discriminator(1, 8).eval()
    z = doodler.noise(16, torch.Generator().manual_seed(1))
    before = disc(doodler(z) * 2 - 1).mean().item()
    opt = torch.optim.SGD(doodler.parameters(), lr=0.5)
    for _ in range(5):
        loss = gen_loss(disc(doodler(z) * 2 - 1), "hinge")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert disc(doodler(z) * 2 - 1).mean().item() > before + 1e-3


def test_the_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert disc_loss(real, fake, "hinge").item() == pytest.approx(0.25 + 0.5)
    assert gen_loss(fake, "hinge").item() == pytest.approx(1.0)
    assert disc_loss(real, fake, "non-saturating").item() > 0 and gen_loss(fake, "non-saturating").item() > 0


def test_samples_are_hard_rendered_reproducible_and_at_any_size(one_torch_thread):
    doodler = Doodler(SMALL).eval()
    a = doodler.sample(5, 64, torch.Generator().manual_seed(3), batch_size=2)
    b = doodler.sample(5, 64, torch.Generator().manual_seed(3))
    assert a.shape == (5, 1, 64, 64) and torch.allclose(a, b, atol=1e-4) and 0 <= a.min() and a.max() <= 1
    assert doodler.sample(2, 28).shape == (2, 1, 28, 28)
    frames = doodle_frames(doodler, n=4, size=32, scale=1)
    assert frames.dtype.name == "uint8" and len(frames) == 1 + SMALL.strokes
    assert frames[0].max() <= 128 < frames[-1].max()  # a blank grid (grey padding), then strokes
    with pytest.raises(ValueError, match="noise must be"):
        doodler.unroll(torch.zeros(2, 3))


def test_training_writes_a_checkpoint_that_loads_its_weight_average(tmp_path, one_torch_thread):
    cfg = DoodleConfig(run_dir=str(tmp_path / "run"), device="cpu", **{**DoodleConfig.quick(), "gifs": True})
    shown = train_doodle(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt", kind="doodler")
    assert ckpt["step"] == cfg.iters and set(ckpt["extra"]) >= {"spec", "disc", "disc_opt", "ema", "encoder"}
    loaded = load_model(tmp_path / "run" / "checkpoint.pt")
    assert loaded.spec == cfg.spec() and loaded.trained_iters == cfg.iters and loaded.train_config["iters"] == cfg.iters
    for key, value in loaded.state_dict().items():  # the average, not the raw weights
        assert torch.equal(value, ckpt["extra"]["ema"][key])
        assert torch.equal(value, shown.state_dict()[key])
    assert any(not torch.equal(ckpt["model"][k], ckpt["extra"]["ema"][k]) for k in ckpt["model"])
    assert (tmp_path / "run" / "doodles.gif").is_file() and (tmp_path / "run" / "doodles.png").is_file()
    small = export_weights(tmp_path / "run" / "checkpoint.pt", tmp_path / "doodler.pt")
    assert "optimizer" not in small and "disc" not in small["extra"]
    exported = load_model(tmp_path / "doodler.pt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in exported.state_dict().items())
    with pytest.raises(CheckpointError, match="expected 'doodler'"):
        load_model(__import__("paintrnn.metrics", fromlist=["CHECKPOINT"]).CHECKPOINT)


def test_quality_is_measured_at_checkpoints_and_the_best_kept(tmp_path, one_torch_thread):
    quick = {**DoodleConfig.quick(), "quality": True, "eval_size": 50, "iters": 4, "checkpoint_every": 2}
    cfg = DoodleConfig(run_dir=str(tmp_path / "run"), device="cpu", **quick)
    train_doodle(cfg)
    rows = [r for r in map(__import__("json").loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    measured = [r for r in rows if "fd" in r]
    assert [r["step"] for r in measured] == [2, 4]
    assert all(r["fd"] > 0 and 0 <= r["min_class_fraction"] <= 0.1 and 0 < r["confidence"] <= 1 for r in measured)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["extra"]["best_fd"] == min(r["fd"] for r in measured)


def test_the_command_line(tmp_path, capsys, one_torch_thread):
    argv = ["--run-dir", str(tmp_path / "run"), "--data-source", "sample", "--canvas-size", "16", "--hidden", "16",
            "--width", "4", "--z-size", "4", "--disc-width", "4", "--batch-size", "4", "--iters", "2",
            "--no-quality", "--no-gifs", "--no-progress", "--teacher", "", "--prior-components", "0",
            "--adversarial", "1", "--recon", "0", "--steps", "1"]  # fmt: skip
    assert main(argv) == 0  # a plain GAN: no encoder
    assert "encoder" not in load_checkpoint(tmp_path / "run" / "checkpoint.pt")["extra"]
    assert "doodler: iters=2 strokes=5" in capsys.readouterr().out
    assert main([*argv[:-2], "--steps", "2"]) == 1  # another setting: the run folder is not resumed
    err = capsys.readouterr().err
    assert "other settings" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main([*argv, "--loss", "wasserstein"])
    with pytest.raises(ValueError, match="eval-size"):
        DoodleConfig(eval_size=1)
    with pytest.raises(ValueError, match="--adversarial or --recon"):
        DoodleConfig(adversarial=0, recon=0)


def test_benchmark_rows_and_targets(tmp_path, one_torch_thread):
    from paintrnn.agents.doodle_benchmark import BenchmarkConfig, format_table, run_benchmark, targets_of
    from paintrnn.agents.painter_gan import GANConfig, train_gan

    doodle = DoodleConfig(run_dir=str(tmp_path / "doodle"), device="cpu", **DoodleConfig.quick())
    train_doodle(doodle)
    quick_gan = {**GANConfig.quick(), "num_envs": 4, "canvas_size": 16, "steps": 2, "disc_width": 8, "iters": 2}
    train_gan(dataclasses.replace(GANConfig(), run_dir=str(tmp_path / "gan"), device="cpu", **quick_gan))
    cfg = BenchmarkConfig(n=40, doodlers=(str(tmp_path / "doodle"),), rl_runs=(str(tmp_path / "gan"),), device="cpu",
                          data_source="sample", pictures=str(tmp_path / "pictures"))  # fmt: skip
    result = run_benchmark(cfg)
    written = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert written == ["doodle_backprop_10.gif", "doodle_backprop_10.png", "doodle_rl_10.gif", "doodle_rl_10.png"]
    kinds = [r["kind"] for r in result["rows"]]
    assert kinds == ["real", "draw", "draw", "vae", "random", "backprop", "rl"]
    by = {r["kind"]: r for r in result["rows"] if r.get("fd") is not None}
    assert by["real"]["fd"] < by["random"]["fd"] and by["backprop"]["strokes"] == doodle.steps * doodle.strokes_per_step
    assert by["backprop"]["iterations"] == doodle.iters and by["backprop"]["train_minutes"] > 0
    names = [t["name"] for t in result["targets"]]
    assert len(names) == 3 and all(t["met"] in (True, False) for t in result["targets"])
    assert "MISSED" in format_table(result) or "met" in format_table(result)
    rows = [{"kind": "draw", "fd": 50.0}, {"kind": "backprop", "fd": 40.0, "strokes": 10, "min_class_fraction": 0.06},
            {"kind": "backprop", "fd": 60.0, "strokes": 5, "min_class_fraction": 0.0}, {"kind": "rl", "fd": 90.0,
            "strokes": 10}]  # fmt: skip
    targets = targets_of(rows)
    assert [(t["value"], t["target"], t["met"]) for t in targets] == [(40.0, 50.0, True), (0.06, 0.05, True),
                                                                      (90.0, 80.0, False)]  # fmt: skip


def test_the_encoder_and_the_redrawing_loss():
    from paintrnn.agents.doodle_train import DigitEncoder, redraw_loss, spread

    mean, log_var = DigitEncoder(6, 28, 4)(torch.rand(3, 1, 28, 28))
    assert mean.shape == log_var.shape == (3, 6)
    x = torch.rand(2, 1, 16, 16)
    assert redraw_loss(x, x).item() == 0 and redraw_loss(torch.zeros_like(x), x).item() > (x**2).mean().item()
    same = torch.rand(1, 1, 8, 8).expand(4, 1, 8, 8)
    assert spread(same, torch.randn(4, 3)).item() == 0 and spread(torch.rand(4, 1, 8, 8), torch.randn(4, 3)) > 0


def test_action_noise_is_part_of_the_noise_and_differentiable(one_torch_thread):
    spec = dataclasses.replace(SMALL, action_noise=True)
    doodler = Doodler(spec)
    assert spec.noise_size == spec.z_size + spec.strokes * 11
    z = doodler.noise(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, spec.noise_size)
    quiet = torch.cat([z[:, : spec.z_size], torch.zeros(3, spec.strokes * 11)], 1)
    loud = torch.cat([z[:, : spec.z_size], 3 * torch.ones(3, spec.strokes * 11)], 1)
    assert not torch.equal(doodler.unroll(quiet)[1], doodler.unroll(loud)[1])  # the action noise moves strokes
    doodler(loud).mean().backward()
    assert doodler.painter.log_std.grad.abs().sum() > 0  # its scale is learned
    with pytest.raises(ValueError, match="noise must be"):
        doodler.unroll(z[:, : spec.z_size])


def test_the_mixture_prior_draws_the_noise_and_travels_with_the_weights(tmp_path, one_torch_thread):
    from paintrnn.mixture import GaussianMixture

    spec = dataclasses.replace(SMALL, prior_components=2)
    doodler = Doodler(spec)
    plain = Doodler(SMALL).noise(6, torch.Generator().manual_seed(4))
    assert torch.equal(doodler.noise(6, torch.Generator().manual_seed(4)), plain)  # unfitted: N(0, 1)
    means = torch.stack([torch.full((8,), -20.0), torch.full((8,), 20.0)])
    far = GaussianMixture(torch.log(torch.tensor([0.5, 0.5])), means, torch.eye(8).expand(2, 8, 8) * 0.1)
    doodler.set_prior(far)
    z = doodler.noise(400, torch.Generator().manual_seed(4))
    assert z.shape == (400, spec.noise_size) and (z.abs() > 18).all()
    assert abs((z[:, 0] > 0).float().mean().item() - 0.5) < 0.08  # both components drawn
    assert torch.equal(z, doodler.noise(400, torch.Generator().manual_seed(4)))
    torch.save({"model": doodler.state_dict()}, tmp_path / "raw.pt")
    again = Doodler(spec)
    again.load_state_dict(torch.load(tmp_path / "raw.pt")["model"])
    same = [model.noise(5, torch.Generator().manual_seed(0)) for model in (again, doodler)]
    assert torch.equal(*same)
    with pytest.raises(ValueError, match="2 components in 8 dimensions"):
        doodler.set_prior(GaussianMixture(far.log_weights, far.means[:, :4], far.chol[:, :4, :4]))
    with pytest.raises(ValueError, match="needs 0 components"):
        Doodler(SMALL).set_prior(far)
    assert Doodler(SMALL).prior() is None


def test_the_teacher_painter_teaches_its_strokes_and_the_prior_is_fitted(tmp_path, one_torch_thread):
    quick = {**DoodleConfig.quick(), "iters": 60, "log_every": 20, "checkpoint_every": 60, "lr": 1e-3,
             "betas": (0.9, 0.999), "adversarial": 0.0, "teacher": "painter", "stroke_weight": 100.0, "steps": 1,
             "prior_components": 3, "prior_fit_size": 300}  # fmt: skip
    cfg = DoodleConfig(run_dir=str(tmp_path / "run"), device="cpu", **quick)
    train_doodle(cfg)
    rows = [r for r in map(__import__("json").loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    assert "disc_loss" not in rows[0]  # no discriminator without the adversarial term
    assert rows[-1]["stroke_loss"] < 0.6 * rows[0]["stroke_loss"]  # the doodler learns the teacher's strokes
    loaded = load_model(tmp_path / "run" / "checkpoint.pt")
    prior = loaded.prior()
    assert prior is not None and prior.means.abs().sum() > 0 and not torch.equal(prior.chol[0], torch.eye(4))
    with pytest.raises(ValueError, match="strokes per step"):
        train_doodle(dataclasses.replace(cfg, strokes_per_step=3, run_dir=str(tmp_path / "other")))
    with pytest.raises(ValueError, match="need the encoder"):
        DoodleConfig(teacher="painter", recon=0, adversarial=1)
