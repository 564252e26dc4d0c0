"""Doodling by backprop: train the :class:`~paintrnn.agents.doodler.Doodler` through the renderer.

Each iteration, all by backpropagation through the soft renderer (no reinforcement learning):

* **redraw real digits** (the encoder half of a VAE-GAN, Larsen et al. 2016): a small encoder
  (:class:`DigitEncoder`) maps real digits to noise, from which the doodler must redraw them (``--recon``: L2
  plus L2 of 4x pooled images, :func:`redraw_loss`), with a KL term to N(0, 1) (``--kl``). Every digit gets its
  noise, so no class is dropped;
* **with the teacher's strokes** (``--teacher``, default the shipped MNIST painter): the conditional painter paints
  the same digits, and the doodler's strokes are pulled towards its strokes (``--stroke-weight``). Pixels alone
  leave the doodler to find one of many stroke sequences by itself, which it does slowly;
* optionally **judged by a discriminator** (``--adversarial`` > 0; :class:`Critic`: spectral-normalised
  convolutions and the minibatch standard deviation), on doodles of prior noise, with the hinge or
  non-saturating loss, an optional R1 penalty (``--r1``) and a mode-seeking term (``--diversity``,
  :func:`spread`). A plain GAN (``--recon 0``) collapsed in our runs: every noise drew the same doodle.

At every checkpoint a Gaussian mixture (``--prior-components``, :mod:`paintrnn.mixture`) is fitted to the
encoder's noise of ``--prior-fit-size`` training digits and becomes the doodler's prior ("ex-post density
estimation", Ghosh et al. 2020): with a weak KL term, noise drawn from N(0, 1) falls between the codes of real
digits and draws scribbles; noise drawn from the mixture draws digits.

An exponential moving average of the doodler's weights (``--ema-decay``) is what is evaluated, exported and
loaded. At every checkpoint (``--quality``) the average draws ``--eval-size`` doodles (hard renderer, 64 px) that
:func:`paintrnn.metrics.sample_quality` measures against the MNIST test digits (Fréchet distance ``fd``, the
smallest predicted-class fraction, the mean confidence); the checkpoint with the lowest ``fd`` so far is kept
as ``best.pt`` beside ``checkpoint.pt``, and the GIF of doodles stroke by stroke is redrawn (``doodles.gif``).
Noise and real digits come from generators seeded by the iteration, so a run resumed from its checkpoint
repeats the uninterrupted one exactly. One process (no DDP).

    python scripts/train_doodle.py --steps 1 --iters 5000 --run-dir runs/doodle-5 --data-dir /path/to/data
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.doodler import KIND, Doodler, DoodlerSpec, doodle_frames
from paintrnn.agents.painter import Painter, PainterSpec, paint
from paintrnn.agents.painter_targets import to_canvas
from paintrnn.agents.painter_train import PainterRunConfig, due, mnist_digits
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from paintrnn.config import parse_config
from paintrnn.hub import load
from paintrnn.media import save_grid, write_gif
from paintrnn.mixture import GaussianMixture, fit_gaussian_mixture
from paintrnn.run import Run, RunLockedError, lr_schedule, start_run
from paintrnn.training import EMA, CheckpointError, NonFiniteLossError, keep_freed_memory, plot_metrics


@dataclass(frozen=True)
class DoodleConfig(PainterRunConfig):
    """Train the doodler (noise -> recurrent painter -> soft renderer) by backpropagation: it redraws encoded digits
    with the teacher painter's strokes, doodles from a mixture prior fitted to the codes, optionally judged by a
    discriminator. The defaults are the measured recipe."""

    run_dir: str = "runs/doodle"
    checkpoint_every: int = 1000
    data_source: Literal["auto", "full", "sample"] = "auto"
    """MNIST files to use: full, the bundled sample, or full when present (auto)."""
    eval_size: int = 2000
    """Doodles measured by paintrnn.metrics at every checkpoint (with --quality)."""
    quality: bool = True
    """Measure the doodles' sample quality at every checkpoint and keep the best as best.pt (needs the shipped
    digit classifier of paintrnn.metrics)."""
    batch_size: int = 64
    """Doodles from the prior (and real digits) per iteration; as many more are encoded and redrawn (--recon)."""
    z_size: int = 32
    """Noise dimensions."""
    lr: float = 3e-4
    """Doodler Adam learning rate (peak; linear decay to lr_final x lr)."""
    disc_lr: float = 2e-4
    """Discriminator Adam learning rate (same schedule)."""
    lr_final: float = 0.25
    """Fraction of each learning rate left at the last iteration."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas of both players."""
    loss: Literal["hinge", "non-saturating"] = "hinge"
    """GAN loss."""
    adversarial: float = 0.0
    """Weight of the discriminator's verdict in the doodler's loss (0: no discriminator; a GAN needs betas like
    0.5 0.999 or 0 0.9)."""
    recon: float = 20.0
    """Weight of the redrawing term (VAE-GAN): real digits are encoded to noise, which the doodler must redraw
    (L2, plus L2 of 4x average-pooled images); 0: a plain GAN, no encoder."""
    kl: float = 0.01
    """Weight of the KL divergence of the encoder's noise from N(0, 1) (keeps prior noise drawing digits)."""
    encoder_width: int = 32
    """Channels of the encoder's first convolution (--recon)."""
    r1: float = 0.0
    """R1 penalty weight on the discriminator's gradient at real digits (0: spectral norm alone)."""
    diversity: float = 1.0
    """Weight of the mode-seeking term (after Mao et al. 2019): the doodler's loss adds ``log(min_spread / r)``
    while its spread ``r`` (:func:`spread`) is below ``min_spread`` (0: off)."""
    min_spread: float = 0.1
    """Spread below which the mode-seeking term acts (MNIST digits paired with N(0, 1) noise: 0.144); above it
    only the discriminator counts (rewarding spread itself made scribbles)."""
    disc_width: int = 32
    """Channels of the discriminator's first convolution."""
    disc_updates: int = 1
    """Discriminator steps per doodler step (each on fresh noise and digits)."""
    grad_clip: float = 10.0
    """Gradient norm clip of the doodler."""
    sharpness: float = 2.0
    """Soft renderer edge sharpness (per pixel) in training."""
    render_backend: Literal["auto", "eager", "compiled"] = "auto"
    """Renderer backend of training (evaluation renders hard, eager)."""
    ema_decay: float = 0.998
    """Decay of the weight average that is evaluated and exported."""
    radius_range: tuple[float, float] = (0.01, 0.1)
    """Brush radius range, a fraction of the canvas side."""
    opacity_range: tuple[float, float] = (0.0, 1.0)
    """Stroke opacity range."""
    taper: bool = True
    """Strokes may change radius and opacity along their length."""
    action_noise: bool = False
    """Add learned-scale Gaussian noise to every step's stroke actions (the RL policy's sampling, reparametrised)."""
    teacher: str = "painter"
    """A conditional painter that paints every encoded digit too; the doodler's redrawing then also matches its
    strokes (--stroke-weight): "painter" (the shipped MNIST painter), a painter checkpoint's path, or empty
    (pixels only). Needs --recon > 0 and the teacher's strokes per step."""
    stroke_weight: float = 100.0
    """Weight of the squared difference between the redrawn digit's strokes and the teacher's (--teacher)."""
    prior_components: int = 50
    """Gaussian-mixture components of the prior, fitted at every checkpoint to the encoder's noise of real
    digits (needs --recon > 0); 0: doodles from N(0, 1)."""
    prior_fit_size: int = 20000
    """Training digits encoded to fit the prior (--prior-components)."""
    gifs: bool = True
    """Redraw doodles.gif and doodles.png at every checkpoint."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = PainterRunConfig.RESUME_MAY_CHANGE | {
        "render_backend",
        "gifs",
        "quality",
        "prior_fit_size",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "z_size", "disc_width", "disc_updates", "encoder_width", "prior_fit_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.eval_size < 2 or self.r1 < 0 or self.diversity < 0 or self.min_spread <= 0:
            raise ValueError("need --eval-size >= 2, --r1 >= 0, --diversity >= 0 and --min-spread > 0")
        if min(self.adversarial, self.recon, self.kl) < 0 or self.adversarial == self.recon == 0:
            raise ValueError("need --adversarial, --recon, --kl >= 0 and --adversarial or --recon > 0")
        if not 0 < self.lr_final <= 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("need 0 < --lr-final <= 1 and 0 <= --ema-decay < 1")
        if (self.teacher or self.prior_components) and not self.recon:
            raise ValueError("--teacher and --prior-components need the encoder: set --recon > 0")
        if self.prior_components < 0 or self.stroke_weight < 0:
            raise ValueError("need --prior-components >= 0 and --stroke-weight >= 0")
        if self.loss not in ("hinge", "non-saturating"):
            raise ValueError(f"--loss must be hinge or non-saturating, got {self.loss!r}")

    def spec(self) -> DoodlerSpec:
        return DoodlerSpec(canvas_size=self.canvas_size, strokes_per_step=self.strokes_per_step, steps=self.steps,
                           z_size=self.z_size, hidden=self.hidden, width=self.width, radius_range=self.radius_range,
                           opacity_range=self.opacity_range, taper=self.taper,
                           action_noise=self.action_noise, prior_components=self.prior_components)  # fmt: skip

    @staticmethod
    def quick() -> dict:
        """Overrides for a smoke run of a few seconds (tests, ``benchmark --quick``)."""
        return {**PainterRunConfig.quick(), "canvas_size": 16, "batch_size": 8, "z_size": 8, "disc_width": 8,
                "encoder_width": 4, "quality": False, "gifs": False, "data_source": "sample", "prior_components": 2,
                "prior_fit_size": 200, "adversarial": 1.0, "betas": (0.0, 0.9)}  # fmt: skip


class Critic(nn.Module):
    """The discriminator: spectral-normalised 4x4 stride-2 convolutions (``S -> S/2 -> S/4 -> S/8``), then the
    minibatch standard deviation (ProGAN) as one more channel, so that a batch of look-alike doodles is told from
    a batch of varied digits, a 3x3 convolution, mean pooling and a linear score: ``(B, 1, S, S) -> (B,)``."""

    def __init__(self, width: int = 32, group: int = 4) -> None:
        super().__init__()
        self.group = group
        chans = [1, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1)), nn.LeakyReLU(0.2)]
        self.conv = nn.Sequential(*layers)
        self.last = spectral_norm(nn.Conv2d(4 * width + 1, 4 * width, 3, 1, 1))
        self.out = spectral_norm(nn.Linear(4 * width, 1))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)  # (B, C, s, s)
        B, C, H, W = h.shape
        g = math.gcd(B, self.group)  # group size: samples whose spread is measured together
        std = h.view(g, B // g, C, H, W).std(0, unbiased=False).mean((1, 2, 3))  # (B // g,) one per group column
        extra = std.view(1, B // g, 1, 1, 1).expand(g, B // g, 1, H, W).reshape(B, 1, H, W)
        h = F.leaky_relu(self.last(torch.cat([h, extra], 1)), 0.2)
        return self.out(h.mean((2, 3))).squeeze(-1)


class DigitEncoder(nn.Module):
    """q(z | x): two stride-2 convolutions and a linear layer, ``(B, 1, S, S)`` -> mean and log-variance ``(B, z)``."""

    def __init__(self, z_size: int, size: int, width: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2)
        )  # fmt: skip
        self.out = nn.Linear(2 * width * (size // 4) ** 2, 2 * z_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.out(self.conv(x * 2 - 1).flatten(1)).chunk(2, -1)
        return mean, log_var.clamp(-10, 5)


def redraw_loss(doodle: Tensor, target: Tensor) -> Tensor:
    """L2 between ``(B, 1, S, S)`` doodles and the digits they redraw, plus L2 of 4x average-pooled images
    (a gradient for strokes that do not yet overlap the digit), as the backprop painter's."""
    pooled = F.mse_loss(F.avg_pool2d(doodle, 4), F.avg_pool2d(target, 4)) if doodle.shape[-1] >= 8 else 0.0
    return F.mse_loss(doodle, target) + pooled


def disc_loss(d_real: Tensor, d_fake: Tensor, kind: str) -> Tensor:
    """The discriminator's loss on its ``(B,)`` scores of real and generated images."""
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def gen_loss(d_fake: Tensor, kind: str) -> Tensor:
    """The doodler's loss on the discriminator's ``(B,)`` scores of its doodles."""
    return -d_fake.mean() if kind == "hinge" else F.softplus(-d_fake).mean()


def spread(fake: Tensor, z: Tensor) -> Tensor:
    """How far doodles move with their noise: the mean absolute difference of the two halves of a batch of
    canvases ``(B, 1, S, S)`` over that of their noise ``(B, z)`` (0 when every noise gives the same doodle)."""
    h = len(z) // 2
    if h == 0:
        return fake.new_ones(())
    return (fake[:h] - fake[h : 2 * h]).abs().mean() / (z[:h] - z[h : 2 * h]).abs().mean()


def real_batch(digits: Tensor, n: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``n`` random uint8 digits ``(N, 1, 28, 28)`` as float canvases ``(n, 1, size, size)`` in [0, 1]."""
    return to_canvas(digits[torch.randint(len(digits), (n,), generator=generator)].to(device), size)


def load_teacher(name: str, strokes_per_step: int, device: torch.device) -> Painter | None:
    """The frozen conditional painter named by ``--teacher`` (``None`` for an empty name), checked to paint grey
    continuous strokes, ``strokes_per_step`` a step, as the doodler does."""
    if not name:
        return None
    painter = load(name, device)
    ps = getattr(painter, "spec", None)
    fits = isinstance(ps, PainterSpec) and ps.conditional and ps.channels == 1 and ps.action == "continuous"
    if not fits or ps.strokes_per_step != strokes_per_step:
        raise ValueError(f"--teacher {name} must be a conditional grey continuous painter of {strokes_per_step} "
                         "strokes per step (--strokes-per-step)")  # fmt: skip
    return painter.eval().requires_grad_(False)


@torch.no_grad()
def fit_prior(encoder: DigitEncoder, digits: Tensor, cfg: DoodleConfig, device: torch.device) -> GaussianMixture:
    """The doodler's mixture prior: ``--prior-components`` Gaussians fitted to the encoder's mean noise of the
    first ``--prior-fit-size`` training digits (seeded by ``--seed``)."""
    x = digits[: cfg.prior_fit_size]
    codes = torch.cat([encoder(to_canvas(x[i : i + 1000].to(device), cfg.canvas_size))[0]
                       for i in range(0, len(x), 1000)])  # fmt: skip
    return fit_gaussian_mixture(codes, cfg.prior_components, generator=torch.Generator().manual_seed(cfg.seed))


@torch.no_grad()
def evaluate(doodler: Doodler, n: int, seed: int = 12345) -> dict[str, float]:
    """Sample quality of ``n`` doodles (hard renderer, 64 px, noise seeded by ``seed``): ``fd``,
    ``min_class_fraction`` and ``confidence``."""
    from paintrnn.metrics import sample_quality

    q = sample_quality(doodler.sample(n, 64, torch.Generator().manual_seed(seed)))
    return {"fd": q.fd, "min_class_fraction": q.min_class_fraction, "confidence": q.mean_confidence}


def write_pictures(run: Run, doodler: Doodler) -> None:
    """``doodles.gif`` (16 doodles stroke by stroke) and ``doodles.png`` (the last frame) in the run folder."""
    frames = doodle_frames(doodler, 16)
    write_gif(run.dir / "doodles.gif", frames, duration_ms=150, hold_last_ms=1500)
    save_grid(run.dir / "doodles.png", frames[-1][None], nrow=1)


def train_doodle(cfg: DoodleConfig) -> Doodler:
    """Train (or resume) a doodler; returns its weight average (rank 0 writes ``run_dir/checkpoint.pt``)."""
    with start_run(cfg, kind=KIND) as run:
        doodler = Doodler(cfg.spec()).to(run.device)
        disc = Critic(cfg.disc_width).to(run.device)
        encoder = DigitEncoder(cfg.z_size, cfg.canvas_size, cfg.encoder_width).to(run.device) if cfg.recon else None
        params = [*doodler.parameters(), *(encoder.parameters() if encoder is not None else ())]
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=cfg.betas)
        ema = EMA(doodler, cfg.ema_decay) if cfg.ema_decay else None
        ckpt = run.resume(doodler, opt)
        best = float("inf")
        if ckpt is not None:
            extra = ckpt["extra"]
            disc.load_state_dict(extra["disc"])
            if encoder is not None:
                encoder.load_state_dict(extra["encoder"])
            disc_opt.load_state_dict(extra["disc_opt"])
            if ema is not None:
                ema.load_state_dict(extra["ema"])
            best = float(extra.get("best_fd", best))
        shown = ema.model if ema is not None else doodler
        teacher = load_teacher(cfg.teacher, cfg.strokes_per_step, run.device)
        digits = mnist_digits("train", cfg.data_dir, cfg.data_source)  # (N, 1, 28, 28) uint8
        row: dict[str, float] = {}
        running: list[dict[str, float]] = []
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters, desc="doodle"):
            frac = it / cfg.iters
            opt.param_groups[0]["lr"] = lr_schedule(frac, cfg.lr, cfg.lr * cfg.lr_final, shape="linear")
            disc_opt.param_groups[0]["lr"] = lr_schedule(frac, cfg.disc_lr, cfg.disc_lr * cfg.lr_final, shape="linear")
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)  # this iteration's noise and digits
            parts: dict[str, float] = {}
            loss = torch.zeros((), device=run.device)
            if cfg.adversarial:  # one step of the discriminator, then its verdict on the doodles of prior noise
                for _ in range(cfg.disc_updates):
                    z = doodler.noise(cfg.batch_size, gen)
                    fake = doodler(z, cfg.sharpness, cfg.render_backend)  # (B, 1, S, S)
                    real = real_batch(digits, cfg.batch_size, cfg.canvas_size, gen, run.device)
                    real_in = (real * 2 - 1).requires_grad_(cfg.r1 > 0)
                    d_real, d_fake = disc(real_in), disc(fake.detach() * 2 - 1)
                    d_loss = disc_loss(d_real, d_fake, cfg.loss)
                    if cfg.r1 > 0:
                        (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
                        d_loss = d_loss + cfg.r1 / 2 * grad.pow(2).flatten(1).sum(1).mean()
                    run.check_finite(d_loss, it)
                    disc_opt.zero_grad(set_to_none=True)
                    d_loss.backward()
                    disc_opt.step()
                g_loss = gen_loss(disc(fake * 2 - 1), cfg.loss)  # the last doodles, judged by the updated critic
                r = spread(fake, z)
                loss = cfg.adversarial * g_loss + cfg.diversity * F.relu(torch.log(cfg.min_spread / (r + 1e-6)))
                parts.update(disc_loss=d_loss.item(), gen_loss=g_loss.item(), d_real=d_real.mean().item(),
                             d_fake=d_fake.mean().item(), spread=r.item())  # fmt: skip
            if encoder is not None:  # redraw other digits from their encoded noise (and as the teacher paints them)
                chosen = digits[torch.randint(len(digits), (cfg.batch_size,), generator=gen)].to(run.device)
                target = to_canvas(chosen, cfg.canvas_size)
                mean, log_var = encoder(target)  # (B, z) each
                eps = torch.randn(len(mean), doodler.spec.noise_size, generator=gen).to(run.device)
                z_post = mean + (0.5 * log_var).exp() * eps[:, : cfg.z_size]  # then any action noise
                canvases, strokes = doodler.unroll(torch.cat([z_post, eps[:, cfg.z_size :]], 1),
                                                   sharpness=cfg.sharpness, backend=cfg.render_backend)  # fmt: skip
                rec = redraw_loss(canvases[-1], target)
                kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(1).mean()
                loss = loss + cfg.recon * rec + cfg.kl * kl
                parts.update(redraw_loss=rec.item(), kl=kl.item())
                if teacher is not None:
                    with torch.no_grad():
                        shown_to_teacher = to_canvas(chosen, teacher.spec.image_size)
                        _, taught = paint(teacher, shown_to_teacher, cfg.steps)  # (B, K, 11)
                    match = F.mse_loss(strokes, taught)  # (B, K, 11) stroke parameters each
                    loss = loss + cfg.stroke_weight * match
                    parts["stroke_loss"] = match.item()
            run.check_finite(loss, it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if ema is not None:
                ema.update(doodler, it)
            running.append(parts)
            done = it + 1
            checkpoint = due(done, cfg.checkpoint_every, cfg.iters)
            if checkpoint or due(done, cfg.log_every, cfg.iters):
                row = {k: float(np.mean([p[k] for p in running])) for k in running[0]}
                running = []
                if checkpoint and encoder is not None and cfg.prior_components:
                    with run.paused():  # the prior of the doodles that are measured and saved
                        mixture = fit_prior(encoder, digits, cfg, run.device)
                        doodler.set_prior(mixture)
                        if shown is not doodler:  # the weight average keeps its own copy of the buffers
                            shown.set_prior(mixture)
                if checkpoint and cfg.quality and run.is_main:
                    with run.paused():
                        row.update(evaluate(shown, cfg.eval_size))
                run.log(done, **row)
            if checkpoint:
                improved = "fd" in row and row["fd"] < best
                best = min(best, row.get("fd", best))
                extra = {"spec": dataclasses.asdict(doodler.spec), "disc": disc.state_dict(),
                         "disc_opt": disc_opt.state_dict(), "best_fd": best,
                         **({"encoder": encoder.state_dict()} if encoder is not None else {}),
                         **({"ema": ema.state_dict(), "ema_decay": ema.decay} if ema is not None else {})}  # fmt: skip
                modules = {"discriminator": disc, **({"ema": ema.model} if ema is not None else {}),
                           **({"encoder": encoder} if encoder is not None else {})}  # fmt: skip
                run.save(done, doodler, opt, extra=extra, modules=modules)
                if run.is_main:
                    with run.paused():
                        if improved:
                            shutil.copyfile(run.checkpoint_path, run.dir / "best.pt")
                        plot_metrics(run.dir / "metrics.jsonl", run.dir / "curves.png")
                        if cfg.gifs:
                            write_pictures(run, shown)
        shown.train_config, shown.trained_iters = dataclasses.asdict(cfg), max(run.start, cfg.iters)
        if run.is_main:
            result = {k: v for k, v in row.items() if k in ("fd", "min_class_fraction", "confidence", "gen_loss")}
            print(run.summary(iters=shown.trained_iters, strokes=doodler.spec.strokes, **result))
        return shown.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """``train_doodle [options]``: 0 when training ends; 1, with a one-line message, when a loss turned NaN or the
    run folder cannot be resumed or is in use."""
    cfg = parse_config(DoodleConfig, argv, prog="paintrnn train doodle")
    keep_freed_memory()
    try:
        train_doodle(cfg)
    except (NonFiniteLossError, CheckpointError, RunLockedError) as exc:
        print(f"train_doodle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
