"""DRAW: exact loss terms, a slow reference implementation, gradients, IWAE, training, resume, DDP, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from paintrnn.agents import draw_eval, draw_train
from paintrnn.agents import vae as vae_module
from paintrnn.agents.draw import (
    DRAW,
    PRESETS,
    DrawConfig,
    gaussian_kl,
    load_model,
    lstm_step,
    model_flops_per_image,
    preset,
)
from paintrnn.agents.draw_gif import READ_COLOUR, WRITE_COLOUR, reconstruction_frames, sample_frames
from paintrnn.agents.vae import VAE, VAEConfig
from torch.distributions import Bernoulli, Normal, kl_divergence

from paintrnn.data import binarize_fixed, load_mnist
from paintrnn.training import CheckpointError, NonFiniteLossError, load_checkpoint, read_metrics

SHIPPED = Path(__file__).resolve().parents[1] / "paintrnn" / "assets" / "checkpoints" / "draw.pt"

TINY = preset("tiny", height=12, width=10)


def binary_images(b: int, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return (torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def tiny_model(cfg: DrawConfig = TINY, dtype=torch.float32, seed: int = 0) -> DRAW:
    torch.manual_seed(seed)
    model = DRAW(cfg).to(dtype)
    with torch.no_grad():  # larger, less symmetric weights than at initialisation: a stricter comparison
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


# ---------------------------------------------------------------- loss terms


def test_kl_matches_torch_distributions():
    mu, logsigma = torch.randn(7, 13, dtype=torch.float64), torch.randn(7, 13, dtype=torch.float64)
    expected = kl_divergence(Normal(mu, logsigma.exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logsigma), expected)
    # and the constant: a posterior equal to the prior costs nothing, per dimension
    assert gaussian_kl(torch.zeros(3, 100), torch.zeros(3, 100)).abs().max() == 0


def test_fused_lstm_matches_lstm_cell():
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(6, 5).double()
    x, h, c = torch.randn(4, 6).double(), torch.randn(4, 5).double(), torch.randn(4, 5).double()
    w = torch.cat([cell.weight_ih, cell.weight_hh], 1).chunk(4)  # torch orders gates (i, f, g, o)
    b = (cell.bias_ih + cell.bias_hh).chunk(4)
    fused = torch.nn.Linear(11, 20).double()
    with torch.no_grad():
        fused.weight.copy_(torch.cat([w[0], w[1], w[3], w[2]]))  # ours: (i, f, o, g)
        fused.bias.copy_(torch.cat([b[0], b[1], b[3], b[2]]))
    h_ref, c_ref = cell(x, (h, c))
    h_new, c_new = lstm_step(fused, torch.cat([x, h], 1), c)
    torch.testing.assert_close(h_new, h_ref)
    torch.testing.assert_close(c_new, c_ref)


# ---------------------------------------------------------------- a slow, obviously correct DRAW


def ref_filterbank(raw, n, h, w):
    """Eqs. 19-26 written out with loops (0-based pixel grid), for one image."""
    gx_, gy_, log_s2, log_d, log_g = raw.tolist()
    gx, gy = (w + 1) / 2 * (gx_ + 1) - 1, (h + 1) / 2 * (gy_ + 1) - 1
    delta, s2 = (max(h, w) - 1) / (n - 1) * math.exp(log_d), math.exp(log_s2)
    fx, fy = torch.zeros(n, w, dtype=torch.float64), torch.zeros(n, h, dtype=torch.float64)
    for i in range(n):
        mx, my = gx + (i - n / 2 + 0.5) * delta, gy + (i - n / 2 + 0.5) * delta
        for a in range(w):
            fx[i, a] = math.exp(-((a - mx) ** 2) / (2 * s2))
        for b in range(h):
            fy[i, b] = math.exp(-((b - my) ** 2) / (2 * s2))
    return fx / fx.sum(1, keepdim=True), fy / fy.sum(1, keepdim=True), math.exp(log_g)


def ref_draw_loss(model: DRAW, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-image negative ELBO, one image at a time, plain formulas, separate gate matrices."""
    cfg, p = model.config, dict(model.named_parameters())
    sig = lambda v: 1 / (1 + torch.exp(-v))

    def lstm(name, inp, h, c, size):
        gates = p[f"{name}.weight"] @ inp + p[f"{name}.bias"]
        i, f, o, g = (
            sig(gates[:size]),
            sig(gates[size : 2 * size]),
            sig(gates[2 * size : 3 * size]),
            torch.tanh(gates[3 * size :]),
        )
        c = f * c + i * g
        return o * torch.tanh(c), c

    losses = []
    for b in range(x.shape[0]):
        img = x[b, 0]
        h_enc, c_enc = torch.zeros(cfg.enc_size, dtype=x.dtype), torch.zeros(cfg.enc_size, dtype=x.dtype)
        h_dec, c_dec = torch.zeros(cfg.dec_size, dtype=x.dtype), torch.zeros(cfg.dec_size, dtype=x.dtype)
        canvas = torch.full_like(img, cfg.canvas_init)
        kl = 0.0
        for t in range(cfg.steps):
            err = img - sig(canvas)
            fx, fy, gamma = ref_filterbank(
                p["reader.weight"] @ h_dec + p["reader.bias"], cfg.read_n, cfg.height, cfg.width
            )
            r = torch.cat([(gamma * fy @ img @ fx.T).flatten(), (gamma * fy @ err @ fx.T).flatten()])
            h_enc, c_enc = lstm("encoder", torch.cat([r, h_dec, h_enc]), h_enc, c_enc, cfg.enc_size)
            q = p["posterior.weight"] @ h_enc + p["posterior.bias"]
            mu, logsigma = q[: cfg.z_size], q[cfg.z_size :]
            z = mu + torch.exp(logsigma) * noise[t, b]
            kl = kl + sum(0.5 * (m**2 + math.exp(2 * s) - 2 * s - 1) for m, s in zip(mu.tolist(), logsigma.tolist()))
            h_dec, c_dec = lstm("decoder", torch.cat([z, h_dec]), h_dec, c_dec, cfg.dec_size)
            out = p["writer.weight"] @ h_dec + p["writer.bias"]
            wfx, wfy, wgamma = ref_filterbank(out[-5:], cfg.write_n, cfg.height, cfg.width)
            canvas = canvas + wfy.T @ out[:-5].view(cfg.write_n, cfg.write_n) @ wfx / wgamma
        recon = -sum(
            v * math.log(1 / (1 + math.exp(-c))) + (1 - v) * math.log(1 - 1 / (1 + math.exp(-c)))
            for v, c in zip(img.flatten().tolist(), canvas.flatten().tolist())
        )
        losses.append(recon + kl)
    return torch.tensor(losses, dtype=torch.float64)


def test_matches_slow_reference_implementation():
    model = tiny_model(dtype=torch.float64)
    x = binary_images(3).double()
    noise = torch.randn(TINY.steps, 3, TINY.z_size, dtype=torch.float64)
    with torch.no_grad():
        out = model(x, noise)
    torch.testing.assert_close(out.recon + out.kl, ref_draw_loss(model, x, noise), rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(out.loss, (out.recon + out.kl).mean())
    # the reconstruction term is the Bernoulli log-likelihood of x under sigmoid(c_T)
    expected = -Bernoulli(logits=out.canvas).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(out.recon, expected)


def test_write_actions_replay_to_the_canvas():
    model = tiny_model()
    with torch.no_grad():
        out = model(binary_images(4))
        actions = model.write_actions(out)  # (T, B, 5 + N^2)
    n = TINY.write_n
    assert actions.shape == (TINY.steps, 4, 5 + n * n)
    canvas = torch.full((4, 1, TINY.height, TINY.width), TINY.canvas_init)
    for a in actions:  # replay: canvas += write(patch, window) (what paintrnn/Draw-v0 does)
        canvas = canvas + model.render(a[:, 5:].view(4, 1, n, n), a[:, :5])
    torch.testing.assert_close(canvas, out.canvas)


def test_gradients_match_finite_differences():
    cfg = replace(TINY, steps=3, enc_size=6, dec_size=5, z_size=3, height=7, width=6)
    model = tiny_model(cfg, dtype=torch.float64)
    x = torch.rand(1, 1, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(3, 1, 3, dtype=torch.float64, requires_grad=True)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, e: model(x, e).loss, (x, noise), fast_mode=True)
    # every parameter: the directional derivative along a random direction, by central differences
    params = dict(model.named_parameters())
    direction = {k: torch.randn_like(v) for k, v in params.items()}
    model.zero_grad()
    model(x.detach(), noise.detach()).loss.backward()
    analytic = sum((params[k].grad * direction[k]).sum() for k in params)

    def shifted(h: float) -> float:
        moved = {k: v.detach() + h * direction[k] for k, v in params.items()}
        return torch.func.functional_call(model, moved, (x.detach(), noise.detach())).loss.item()

    numeric = (shifted(1e-6) - shifted(-1e-6)) / 2e-6
    assert abs(numeric - analytic.item()) < 1e-5 * max(1.0, abs(numeric))


def test_without_attention_reads_and_writes_whole_images():
    cfg = replace(TINY, attention=False)
    model = tiny_model(cfg)
    assert model.reader is None and model.encoder.in_features == 2 * 12 * 10 + cfg.dec_size + cfg.enc_size
    with torch.no_grad():
        out = model(binary_images(3))
    assert out.steps[0].patch.shape == (3, 1, 12, 10) and out.steps[0].read_raw is None
    canvas = cfg.canvas_init + sum(s.patch for s in out.steps)
    torch.testing.assert_close(canvas, out.canvas)
    with pytest.raises(ValueError, match="attention"):
        model.write_actions(out)


def test_presets_and_flop_count():
    paper = PRESETS["paper"]
    assert (paper.steps, paper.enc_size, paper.dec_size, paper.z_size, paper.read_n, paper.write_n) == (
        64,
        256,
        256,
        100,
        2,
        5,
    )
    assert paper.attention and PRESETS["paper_noattn"].attention is False
    # encoder + decoder gate matrices dominate: 2 * (8 + 512) * 1024 + 2 * 356 * 1024 multiply-adds per step
    assert 5.3e6 * 64 < model_flops_per_image(paper) < 6.0e6 * 64
    with pytest.raises(ValueError, match="unknown DRAW preset"):
        preset("huge")
    with pytest.raises(ValueError, match="steps"):
        DrawConfig(steps=0)


# ---------------------------------------------------------------- IWAE and sampling


def test_log_weights_match_distributions():
    model, k = tiny_model(dtype=torch.float64), 3
    x = binary_images(2).double()
    noise = torch.randn(TINY.steps, 2 * k, TINY.z_size, dtype=torch.float64)
    logw = model.log_weights(x, k, noise)
    with torch.no_grad():
        out = model(x.repeat_interleave(k, 0), noise)
    expected = Bernoulli(logits=out.canvas).log_prob(x.repeat_interleave(k, 0)).flatten(1).sum(-1)
    for s in out.steps:
        expected += Normal(0.0, 1.0).log_prob(s.z).sum(-1) - Normal(s.mu, s.logsigma.exp()).log_prob(s.z).sum(-1)
    torch.testing.assert_close(logw, expected.view(2, k))
    # the IWAE bound is an average of weights, so it is never above the mean of the single-sample bounds
    nll = -(torch.logsumexp(logw, 1) - math.log(k))
    assert (nll <= -logw.mean(1) + 1e-12).all()
    torch.manual_seed(0)
    assert model.iwae_nll(x, 4).shape == (2,)


def test_sampling_shapes_and_determinism():
    model = tiny_model()
    canvases, raw = model.sample(5, generator=torch.Generator().manual_seed(3))
    again, _ = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert canvases.shape == (TINY.steps + 1, 5, 1, 12, 10) and raw.shape == (TINY.steps, 5, 5)
    torch.testing.assert_close(canvases, again)
    assert (canvases[0] == TINY.canvas_init).all()


def test_gif_frames_show_canvas_and_windows():
    model = tiny_model()
    frames = reconstruction_frames(model, binary_images(4), scale=3, nrow=2)
    assert frames.shape[0] == TINY.steps + 1 and frames.shape[-1] == 3 and frames.dtype == np.uint8
    colours = {tuple(c) for c in frames[1:].reshape(-1, 3)}
    assert READ_COLOUR in colours and WRITE_COLOUR in colours
    assert READ_COLOUR not in {tuple(c) for c in frames[0].reshape(-1, 3)}  # step 0 is the blank canvas
    samples = sample_frames(model, 4, scale=2)
    assert samples.shape[0] == TINY.steps + 1 and WRITE_COLOUR in {tuple(c) for c in samples[-1].reshape(-1, 3)}


def test_vae_baseline_latent_budget_and_bound():
    cfg = VAEConfig.matching(PRESETS["cpu"], hidden=16)
    assert cfg.z_size == PRESETS["cpu"].steps * PRESETS["cpu"].z_size
    torch.manual_seed(0)
    vae = VAE(replace(cfg, height=12, width=10)).double()
    x = binary_images(3).double()
    noise = torch.randn(3, cfg.z_size, dtype=torch.float64)
    out = vae(x, noise)
    torch.testing.assert_close(out.recon, -Bernoulli(logits=out.canvas).log_prob(x).flatten(1).sum(-1))
    assert (vae.iwae_nll(x, 5) > 0).all()


def test_elbo_over_several_draws_is_the_mean_of_single_draws():
    model, x = tiny_model(), binary_images(7)
    res = draw_eval.evaluate(model, x, batch_size=3, seed=5, elbo_samples=4)
    torch.manual_seed(5)
    with torch.no_grad():  # draw after draw, batch after batch: the order evaluate draws its noise in
        draws = torch.stack(
            [torch.cat([(o.recon + o.kl) for o in (model(x[i : i + 3]) for i in range(0, 7, 3))]) for _ in range(4)]
        ).double()  # (S, B)
    assert res["elbo_samples"] == 4
    assert res["test_nelbo"] == pytest.approx(draws.mean().item(), rel=1e-9)
    assert res["test_nelbo_mc_se"] == pytest.approx((draws.var(0).sum() / 4).sqrt().item() / 7, rel=1e-6)
    one = draw_eval.evaluate(model, x, batch_size=3, seed=5)
    assert one["test_nelbo"] == pytest.approx(draws[0].mean().item(), rel=1e-9) and "test_nelbo_mc_se" not in one
    with pytest.raises(ValueError, match="elbo_samples"):
        draw_eval.evaluate(model, x, elbo_samples=0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(2, 1, 28, 28), "shape"),
        (torch.rand(2, 3, 12, 10), "shape"),
        (torch.rand(2, 12, 10) * 255, r"\[0, 1\]"),
        (torch.full((2, 12, 10), float("nan")), "finite"),
        (torch.randint(0, 2, (2, 12, 10)), "float"),
    ],
)
def test_bad_images_are_clear_errors(x, match):
    with pytest.raises(ValueError, match=match):
        tiny_model()(x)


# ---------------------------------------------------------------- training


def train_args(out: Path, *extra: str) -> list[str]:
    return [
        "--preset", "tiny", "--data-source", "sample", "--train-images", "200", "--test-images", "40",
        "--batch-size", "20", "--epochs", "2", "--iwae-k", "0", "--run-dir", str(out), "--no-progress",
        "--log-every", "2", "--checkpoint-every", "3", "--device", "cpu", "--threads", "1", *extra,
    ]  # fmt: skip


def test_resume_after_kill_gives_the_same_result(tmp_path):
    full = draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "a")))
    cut = draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "b", "--max-iters", "7"))
    draw_train.train(cut)  # 'killed' after step 7 (a checkpoint at 6 and at 7)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 7
    legacy = load_checkpoint(tmp_path / "b" / "checkpoint.pt")  # as the trainer wrote it before the run skeleton
    del legacy["run_config"]
    old_names = {new: old for old, new in draw_train.LEGACY_FIELDS.items()}
    legacy["config"]["train"] = {old_names.get(k, k): v for k, v in legacy["config"]["train"].items()}
    legacy["config"]["train"].update(resume=True, threads=None)
    assert "out" in legacy["config"]["train"] and "run_dir" not in legacy["config"]["train"]
    (tmp_path / "c").mkdir()
    torch.save(legacy, tmp_path / "c" / "checkpoint.pt")
    resumed = draw_train.train(replace(cut, max_iters=None))
    old_resumed = draw_train.train(replace(cut, max_iters=None, run_dir=str(tmp_path / "c")))
    for (name, a), (_, b), (_, c) in zip(*(m.state_dict().items() for m in (full, resumed, old_resumed))):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(a, c, rtol=0, atol=0, msg=name)
    rows_a, rows_b = (read_metrics(tmp_path / d / "metrics.jsonl") for d in "ab")
    assert [(r["step"], r.get("loss"), r.get("test_nelbo")) for r in rows_a] == [
        (r["step"], r.get("loss"), r.get("test_nelbo")) for r in rows_b
    ]
    report = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert report["epochs"] == 2 and report["test_images"] == 40 and math.isfinite(report["test_nelbo"])
    assert load_model(tmp_path / "b" / "checkpoint.pt").config == full.config
    draw_train.train(replace(cut, max_iters=None, eval_only=True, iwae_k=3, elbo_samples=3))  # no training
    again = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert again["iters"] == report["iters"] == 20 and again["test_iwae3"] < again["test_nelbo"] + 5
    assert again["elbo_samples"] == 3 and 0 < again["test_nelbo_mc_se"] < 5


def clock_of_forward_passes(monkeypatch) -> None:
    """Make time pass only in DRAW's forward passes, one second each: a training step takes a second, and so does
    each batch of an evaluation (which training time must leave out); reading the clock takes no time."""
    now = {"s": 0.0}

    class Timed(DRAW):
        def forward(self, x, noise=None, step_fn=None):
            now["s"] += 1
            return super().forward(x, noise, step_fn)

    monkeypatch.setattr(draw_train, "DRAW", Timed)
    monkeypatch.setattr(time, "perf_counter", lambda: now["s"])


def test_images_per_s_counts_training_time_only_also_after_a_resume(tmp_path, monkeypatch):
    clock_of_forward_passes(monkeypatch)
    cut = draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path, "--max-iters", "7"))
    draw_train.train(cut)  # stops between two logs (every 2 steps), mid-window
    draw_train.train(replace(cut, max_iters=None))
    rates = [r["images_per_s"] for r in read_metrics(tmp_path / "metrics.jsonl") if "images_per_s" in r]
    assert len(rates) == 10 and rates == [20.0] * 10  # batch 20 per tick; evaluation and restarts excluded


def test_parts_cut_by_a_growing_time_limit_repeat_one_run(tmp_path, monkeypatch):
    """A run trained in parts (each call with a larger --time-limit-min, the schedule fixed in epochs) ends as the
    same run trained in one go: the way to spread a long GPU run over short device calls."""
    clock_of_forward_passes(monkeypatch)  # a second per training step (and per evaluation batch), as above
    args = ("--ema-decay", "0.9")
    full = draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "a", *args)))
    part = draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "b", *args))
    for minutes, steps in ((5 / 60, 5), (12 / 60, 12)):
        draw_train.train(replace(part, time_limit_min=minutes))
        assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == steps
        assert json.loads((tmp_path / "b" / "eval.json").read_text())["stopped_by_time_limit"]
    resumed = draw_train.train(part)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    ckpt_a, ckpt_b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in "ab")
    for name, a in ckpt_a["extra"]["ema"].items():
        torch.testing.assert_close(a, ckpt_b["extra"]["ema"][name], rtol=0, atol=0, msg=name)
    assert json.loads((tmp_path / "b" / "eval.json").read_text())["iters"] == 20


def test_weight_average_resumes_exactly_and_is_what_gets_evaluated_and_loaded(tmp_path):
    args = ("--ema-decay", "0.9", "--iwae-k", "2")
    full = draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "a", *args)))
    cut = draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "b", *args, "--max-iters", "7"))
    draw_train.train(cut)
    draw_train.train(replace(cut, max_iters=None))
    ckpt_a, ckpt_b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in "ab")
    assert ckpt_a["extra"]["ema_decay"] == 0.9
    for name, a in ckpt_a["extra"]["ema"].items():
        torch.testing.assert_close(a, ckpt_b["extra"]["ema"][name], rtol=0, atol=0, msg=name)
        assert not torch.equal(a, full.state_dict()[name]), name  # it is an average, not the last weights
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert report["ema_decay"] == 0.9 and math.isfinite(report["raw_test_nelbo"])
    assert report["raw_test_nelbo"] != report["test_nelbo"]
    rows = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "test_nelbo" in r]
    assert rows and all("raw_test_nelbo" in r for r in rows)
    loaded = load_model(tmp_path / "a" / "checkpoint.pt")
    for name, a in loaded.state_dict().items():
        torch.testing.assert_close(a, ckpt_a["extra"]["ema"][name], rtol=0, atol=0, msg=name)
    draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "a", "--eval-only")))
    again = json.loads((tmp_path / "a" / "eval.json").read_text())  # --eval-only finds the average by itself
    assert again["ema_decay"] == 0.9 and again["test_nelbo"] == pytest.approx(report["test_nelbo"], abs=1e-6)
    (tmp_path / "c").mkdir()  # a checkpoint alone (downloaded, say): evaluated without its training log
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "c" / "checkpoint.pt")
    args = train_args(tmp_path / "c", "--eval-only", "--batch-size", "8")  # epochs count the batch it trained with
    draw_train.train(draw_train.parse_config(draw_train.TrainConfig, args))
    alone = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert alone["test_nelbo"] == pytest.approx(report["test_nelbo"], abs=1e-6)
    assert (alone["epochs"], alone["batch_size"]) == (report["epochs"], report["batch_size"]) == (2.0, 20)


def test_benchmark_reestimates_each_runs_elbo_from_its_checkpoint(tmp_path):
    from paintrnn.agents import draw_bench

    for name, extra in (("draw", ()), ("vae", ("--vae", "--vae-hidden", "16"))):
        draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / name, *extra)))
    folders = [str(tmp_path / "draw"), str(tmp_path / "vae")]
    rows = draw_bench.run_rows(folders, elbo_samples=3, gap_images=1000)
    assert [r["name"].split()[0] for r in rows] == ["DRAW", "VAE"]
    sample_train = torch.from_numpy(load_mnist("train", source="sample")[0][:200]).float().div(255)[:, None]
    for row, folder in zip(rows, folders):
        ev = json.loads((Path(folder) / "eval.json").read_text())
        assert row["test_nelbo_run"] == ev["test_nelbo"] and row["elbo_samples"] == 3 and row["test_nelbo_mc_se"] > 0
        assert abs(row["test_nelbo"] - ev["test_nelbo"]) < 5
        # the gap is measured on the 200 digits the run trained on (not 1000), binarised once with the test seed
        model = (vae_module.load_model if folder.endswith("vae") else load_model)(Path(folder) / "checkpoint.pt")
        on_train = draw_eval.evaluate(model, binarize_fixed(sample_train, 0), seed=0, elbo_samples=3)
        assert row["gap_images"] == 200 and row["train_nelbo"] == pytest.approx(on_train["test_nelbo"], rel=1e-9)
        assert row["train_nelbo_mc_se"] == pytest.approx(on_train["test_nelbo_mc_se"], rel=1e-9)
        assert row["generalisation_gap"] == pytest.approx(row["test_nelbo"] - row["train_nelbo"], rel=1e-12)
        again = draw_bench.reevaluate(Path(folder), ev["train"], 1, None)  # same test set, model and noise
        assert again["test_nelbo"] == pytest.approx(ev["test_nelbo"], rel=1e-9)
    with pytest.raises(CheckpointError, match="expected 'draw'"):
        load_model(tmp_path / "vae" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="expected 'vae'"):
        vae_module.load_model(tmp_path / "draw" / "checkpoint.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_run_learns_and_resumes_like_an_uninterrupted_one(tmp_path):
    def args(out: Path, *extra: str) -> list[str]:
        return [a if a != "cpu" else "cuda" for a in train_args(out, "--epochs", "4", *extra)]

    full = draw_train.train(draw_train.parse_config(draw_train.TrainConfig, args(tmp_path / "a")))
    cut = draw_train.parse_config(draw_train.TrainConfig, args(tmp_path / "b", "--max-iters", "13"))
    draw_train.train(cut)
    resumed = draw_train.train(replace(cut, max_iters=None))
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert report["cuda_graph"] is True
    losses = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 20  # it trains (on the CPU: ~360 -> ~300 nats)


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}

    class Exploding(DRAW):
        def forward(self, x, noise=None):
            out = super().forward(x, noise)
            calls["n"] += self.training
            return out._replace(loss=out.loss * float("nan")) if calls["n"] == 5 else out

    monkeypatch.setattr(draw_train, "DRAW", Exploding)
    assert draw_train.main(train_args(tmp_path)) == 1
    assert "loss became nan at step 4" in capsys.readouterr().err
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt", kind="draw")
    assert ckpt["step"] == 3 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    calls["n"] = 0
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path / "again")))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        draw_train.train(draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path)))
    with pytest.raises(ValueError, match="preset"):
        draw_train.TrainConfig(preset="nope")


DDP_SCRIPT = """
import os, sys, torch
from paintrnn.agents import draw_train
model = draw_train.train(draw_train.parse_config(draw_train.TrainConfig, sys.argv[2:]))
torch.save(model.state_dict(), f"{sys.argv[1]}/params_rank{os.environ['RANK']}.pt")
"""


def test_ddp_two_cpu_processes_stay_identical_and_only_rank0_writes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        str(tmp_path),
    ]
    cmd += train_args(out, "--epochs", "1", "--max-iters", "4")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    p0, p1 = (torch.load(tmp_path / f"params_rank{r}.pt", weights_only=True) for r in (0, 1))
    fresh = DRAW(PRESETS["tiny"]).state_dict()
    for name in p0:
        torch.testing.assert_close(p0[name], p1[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(p0[n], fresh[n]) for n in p0)  # it did train
    written = sorted(p.name for p in out.iterdir() if p.name != ".lock")  # .lock: the run folder's lock
    assert written == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl")]
    assert steps == [2, 4]  # logged once, by rank 0


def test_training_beats_independent_pixel_model(shared_data, tmp_path):
    """A small DRAW trained on 12000 images (~20 s) must clearly beat the best independent-pixel Bernoulli model."""
    train_u8, _ = load_mnist("train", shared_data, source="full")
    test_u8, _ = load_mnist("test", shared_data, source="full")
    test = binarize_fixed(torch.from_numpy(test_u8[:1000]).float().div(255)[:, None], 0)
    p = torch.from_numpy(train_u8).float().div(255).mean(0).clamp(1e-3, 1 - 1e-3)  # per-pixel mean intensity
    baseline = -Bernoulli(probs=p).log_prob(test[:, 0]).flatten(1).sum(-1).mean().item()
    assert 195 < baseline < 215  # ~206 nats
    cfg = draw_train.parse_config(
        draw_train.TrainConfig,
        [
            "--preset", "small", "--read-n", "5", "--data-dir", str(shared_data), "--data-source", "full",
            "--train-images", "12000", "--test-images", "1000", "--batch-size", "25", "--epochs", "1", "--lr", "5e-3",
            "--iwae-k", "0",
            "--threads", "1", "--run-dir", str(tmp_path), "--no-progress", "--log-every", "1000", "--device", "cpu",
        ],
    )  # fmt: skip
    model = draw_train.train(cfg)
    bound = draw_eval.evaluate(model, test)["test_nelbo"]
    assert bound < baseline - 30, (bound, baseline)  # this run: ~154 against ~200


def test_write_actions_replayed_in_draw_env_give_the_models_canvas():
    gym = pytest.importorskip("gymnasium")
    import paintrnn.envs  # noqa: F401  (registers paintrnn/Draw-v0)

    model = tiny_model()
    with torch.no_grad():
        out = model(binary_images(2))
    actions = model.write_actions(out).numpy()  # (T, B, 5 + N^2)
    for b in range(2):
        env = gym.make(
            "paintrnn/Draw-v0", height=TINY.height, width=TINY.width, n=TINY.write_n, max_steps=TINY.steps,
            raw_actions=True, canvas_init=TINY.canvas_init, target=None, reward="none",
        )  # fmt: skip
        env.reset(seed=0)
        for t in range(TINY.steps):
            env.step(actions[t, b])
        torch.testing.assert_close(env.unwrapped.sim.canvas_logits[0], out.canvas[b], rtol=1e-5, atol=1e-5)
        env.close()


def test_learning_rate_schedule():
    cfg = draw_train.TrainConfig(lr=1e-3, lr_final=0.1, time_limit_min=10.0)
    for step in range(101):  # the very floats of the schedule before it went through run.lr_schedule
        frac = step / 100
        before = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))
        assert draw_train.lr_at(cfg, step, 100) == before
    assert draw_train.lr_at(cfg, 0, 100) == pytest.approx(1e-3)
    assert draw_train.lr_at(cfg, 50, 100) == pytest.approx(0.55e-3)
    assert draw_train.lr_at(cfg, 100, 100) == pytest.approx(1e-4)
    assert draw_train.lr_at(cfg, 10, 100, elapsed_s=600) == pytest.approx(draw_train.lr_at(cfg, 10, 100))
    timed = replace(cfg, decay_by_time=True)
    assert draw_train.lr_at(timed, 10, 100, elapsed_s=600) == pytest.approx(1e-4)  # the time budget ran out
    assert draw_train.lr_at(timed, 50, 100, elapsed_s=60) == pytest.approx(0.55e-3)  # steps ran out faster


# ---------------------------------------------------------------- options, summary, resume policy, loaders


def test_old_flags_still_work_and_defaults(capsys):
    cfg = draw_train.parse_config(
        draw_train.TrainConfig, ["--out", "x", "--ckpt-every", "3", "--no-resume", "--max-steps", "7"]
    )
    assert (cfg.run_dir, cfg.checkpoint_every, cfg.resume, cfg.max_iters) == ("x", 3, "never", 7)
    assert capsys.readouterr().err.count("deprecated") == 4
    default = draw_train.TrainConfig()
    assert (default.run_dir, default.checkpoint_every, default.log_every, default.threads) == ("runs/draw", 500, 50, 0)
    assert default.resume == "auto" and default.kind == "draw" and replace(default, vae=True).kind == "vae"
    with pytest.raises(SystemExit):
        draw_train.parse_config(draw_train.TrainConfig, ["--preset", "nope"])
    assert "--preset must be one of" in capsys.readouterr().err


def test_main_prints_one_summary_line_and_resume_refuses_other_settings(tmp_path, capsys):
    assert draw_train.main(train_args(tmp_path, "--max-iters", "3")) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("draw: iters=3 epochs=0.3 ") and f"| run {tmp_path} |" in line and line.endswith(" min")
    cfg = draw_train.parse_config(draw_train.TrainConfig, train_args(tmp_path))
    for change in ({"seed": 1}, {"lr": 2e-3}, {"batch_size": 10}, {"train_images": 100}):
        name = next(iter(change))
        with pytest.raises(CheckpointError, match=f"other settings \\({name}: "):
            draw_train.train(replace(cfg, **change))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3  # refused before anything was written
    assert draw_train.main([*train_args(tmp_path), "--lr", "2e-3", "--resume", "force"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("draw: iters=20 epochs=2 test_nelbo=")
    assert draw_train.main([*train_args(tmp_path), "--seed", "1", "--resume", "never", "--max-iters", "2"]) == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2  # started afresh
    with pytest.raises(CheckpointError, match="--resume must"):
        draw_train.train(replace(cfg, run_dir=str(tmp_path / "empty"), resume="must"))


def sample_test_digits(n: int = 200) -> torch.Tensor:
    return binarize_fixed(torch.from_numpy(load_mnist("test", source="sample")[0][:n]).float().div(255)[:, None], 0)


def test_shipped_checkpoint_loads_unchanged_and_scores_like_a_trained_model(tmp_path):
    ckpt = load_checkpoint(SHIPPED, kind="draw")
    model = load_model(SHIPPED)
    assert model.config == PRESETS["cpu"] and not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][name]), name
    nelbo = draw_eval.evaluate(model, sample_test_digits())["test_nelbo"]
    assert 70 < nelbo < 100, nelbo  # ~83 nats on these digits; an untrained model is at ~540
    with pytest.raises(CheckpointError, match="expected 'vae'"):
        vae_module.load_model(SHIPPED)
    old = draw_train.saved_train_config(ckpt["config"]["train"])  # written before the run skeleton
    assert (old.run_dir, old.checkpoint_every, old.resume, old.threads, old.preset) == (
        "/work/draw_exp/cpu60_cpu", 500, "auto", 1, "cpu"
    )  # fmt: skip
    (tmp_path / "run").mkdir()  # an exported checkpoint (no optimiser state) scored by --eval-only
    shutil.copy(SHIPPED, tmp_path / "run" / "checkpoint.pt")
    args = ["--preset", "cpu", "--data-source", "sample", "--test-images", "50", "--iwae-k", "0", "--eval-only",
            "--run-dir", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert draw_train.main(args) == 0
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert (report["iters"], report["epochs"]) == (ckpt["step"], ckpt["extra"]["epoch"])
    assert report["test_nelbo"] == pytest.approx(draw_eval.evaluate(model, sample_test_digits(50))["test_nelbo"])


def decoded_canvas(model: DRAW, z: torch.Tensor) -> torch.Tensor:
    """The canvas logits ``(B, 1, H, W)`` the decoder paints from latents ``z (T, B, Z)``."""
    cfg, b = model.config, z.shape[1]
    h = c = torch.zeros(b, cfg.dec_size)
    canvas = torch.full((b, 1, cfg.height, cfg.width), cfg.canvas_init)
    with torch.no_grad():
        for z_t in z:
            h, c, canvas, _, _ = model.decode(z_t, h, c, canvas)
    return canvas


def test_predict_drives_draw_env_to_the_models_own_drawing():
    gym = pytest.importorskip("gymnasium")
    import paintrnn.envs  # noqa: F401  (registers paintrnn/Draw-v0)

    model, n = tiny_model(), TINY.write_n
    env = gym.make("paintrnn/Draw-v0", target=None, reward="none", **model.env_options())
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)  # deterministic: the prior's mode z = 0
    assert action.shape == (5 + n * n,) and action.dtype == np.float32 and state[0].shape == (1, TINY.dec_size)
    first = action
    done = False
    while not done:
        obs, _, done, _, _ = env.step(action)
        action, state = model.predict(obs, state)
    assert obs["step"] == TINY.steps
    expected = decoded_canvas(model, torch.zeros(TINY.steps, 1, TINY.z_size))
    torch.testing.assert_close(env.unwrapped.sim.canvas_logits, expected, rtol=1e-6, atol=1e-6)
    again, _ = model.predict(obs, state, episode_start=np.array([True]))  # a new drawing starts from scratch
    np.testing.assert_array_equal(again, first)
    with pytest.raises(ValueError, match="shape"):
        model.predict({"canvas": np.zeros((28, 28, 1), np.uint8), "step": 0})
    with pytest.raises(ValueError, match="window"):
        tiny_model(replace(TINY, attention=False)).predict(obs)


def test_predict_in_a_vector_env_samples_as_model_sample_does_and_restarts_each_episode():
    gym = pytest.importorskip("gymnasium")
    import paintrnn.envs  # noqa: F401

    model = tiny_model()
    envs = gym.make_vec("paintrnn/Draw-v0", num_envs=3, vectorization_mode="vector_entry_point", target=None,
                        reward="none", **model.env_options())  # fmt: skip
    obs, _ = envs.reset(seed=0)
    state = None
    for seed in (4, 5):  # two episodes: the autoreset's step-0 observation starts fresh drawings
        generator = torch.Generator().manual_seed(seed)
        for _ in range(TINY.steps):
            action, state = model.predict(obs, state, deterministic=False, generator=generator)
            assert action.shape == (3, 5 + TINY.write_n**2)
            obs, _, terminated, _, _ = envs.step(action)
        assert terminated.all()
        canvases, _ = model.sample(3, generator=torch.Generator().manual_seed(seed))  # the same noise
        torch.testing.assert_close(envs.sim.canvas_logits, canvases[-1], rtol=1e-6, atol=1e-6)
        obs, *_ = envs.step(action)  # the autoreset step: its action is ignored
        assert (obs["step"] == 0).all()
    envs.close()
