"""DRAW: a recurrent variational autoencoder that draws with attention (Gregor et al. 2015).

At each of ``T`` steps an encoder LSTM reads the image and the current error image through a Gaussian
attention window, a latent ``z_t ~ q(z_t | h_enc_t)`` is sampled, and a decoder LSTM writes a patch onto a
canvas through a second window. The image model is ``Bernoulli(sigmoid(c_T))``; the loss is the negative
ELBO in nats per image: the Bernoulli reconstruction term plus, summed over steps, the KL from the diagonal
Gaussian posterior to the standard normal prior (eq. 10)::

    KL_t = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)

Without attention the encoder reads the whole image and error image and the decoder adds a full-canvas
update. The LSTMs compute their four gates with one matrix product over the concatenated inputs.

:func:`load_model` rebuilds a trained model from a checkpoint; :meth:`DRAW.predict` draws from the prior one
write at a time as actions of the ``paintrnn/Draw-v0`` environment.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paintrnn.attention import Window, filterbank, read, window_box, window_from_raw, write
from paintrnn.config import config_from_dict
from paintrnn.training import inference_weights, load_checkpoint


@dataclass(frozen=True)
class DrawConfig:
    """Architecture of a DRAW model (the defaults are the paper's MNIST model, Table 3)."""

    height: int = 28
    """Image height in pixels."""
    width: int = 28
    """Image width in pixels."""
    steps: int = 64
    """Number of glimpses / drawing steps T."""
    enc_size: int = 256
    """Encoder LSTM units."""
    dec_size: int = 256
    """Decoder LSTM units."""
    z_size: int = 100
    """Latent dimensions per step."""
    read_n: int = 2
    """Read window: an N x N grid of Gaussian filters."""
    write_n: int = 5
    """Write window: an N x N patch."""
    attention: bool = True
    """Read and write through attention windows; off: read the whole image, write the whole canvas."""
    canvas_init: float = 0.0
    """Initial canvas logit c_0 (the paper: 0; a negative value gives a dark background to draw on)."""

    def __post_init__(self) -> None:
        for name in ("height", "width", "steps", "enc_size", "dec_size", "z_size", "read_n", "write_n"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DrawConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not math.isfinite(self.canvas_init):
            raise ValueError(f"DrawConfig.canvas_init must be finite, got {self.canvas_init}")


PRESETS: dict[str, DrawConfig] = {
    "paper": DrawConfig(),
    "paper_noattn": DrawConfig(attention=False),
    "fast": DrawConfig(steps=16, canvas_init=-4.0),
    "fast_noattn": DrawConfig(steps=16, attention=False, canvas_init=-4.0),
    "cpu": DrawConfig(steps=10, enc_size=192, dec_size=192, z_size=32, read_n=5, write_n=5, canvas_init=-4.0),
    "small": DrawConfig(steps=10, enc_size=128, dec_size=128, z_size=20, read_n=3, write_n=5, canvas_init=-4.0),
    "tiny": DrawConfig(steps=6, enc_size=32, dec_size=32, z_size=8, read_n=3, write_n=4, canvas_init=-4.0),
}
"""Named configurations: ``paper`` is Table 3 (T=64, LSTMs of 256, z of 100, read 2x2, write 5x5);
``fast`` keeps its sizes with T=16 (4x cheaper per image); ``cpu`` (T=10, LSTMs of 192, z of 32, read and
write 5x5) is the one trained within an hour on a 2-core CPU; ``small`` and ``tiny`` train in minutes / seconds."""


def preset(name: str, **overrides) -> DrawConfig:
    """A named configuration, with fields overridden by keyword."""
    if name not in PRESETS:
        raise ValueError(f"unknown DRAW preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


class DrawState(NamedTuple):
    """Recurrent state of DRAW after a step."""

    h_enc: Tensor  # (B, enc)
    c_enc: Tensor  # (B, enc)
    h_dec: Tensor  # (B, dec)
    c_dec: Tensor  # (B, dec)
    canvas: Tensor  # (B, 1, H, W) logits


class StepOutput(NamedTuple):
    """What one step produced: posterior, sample, and the raw read / write actions."""

    mu: Tensor  # (B, Z)
    logsigma: Tensor  # (B, Z)
    z: Tensor  # (B, Z)
    read_raw: Tensor | None  # (B, 5) attention parameters of the read window (None without attention)
    write_raw: Tensor | None  # (B, 5) attention parameters of the write window
    patch: Tensor  # (B, 1, N, N) written patch (full canvas update without attention)


StepFn = Callable[[Tensor, DrawState, Tensor | None], tuple[DrawState, StepOutput]]
"""What :meth:`DRAW.unroll` calls once per glimpse: :meth:`DRAW.step` or a compiled version of it."""
DecoderState = tuple[np.ndarray, np.ndarray]
"""The recurrent state :meth:`DRAW.predict` carries between calls: decoder ``(h, c)``, each ``(N, dec_size)``."""


class DrawOutput(NamedTuple):
    """Result of unrolling DRAW on a batch."""

    loss: Tensor  # () mean negative ELBO, nats per image
    recon: Tensor  # (B,) Bernoulli negative log-likelihood of x under sigmoid(c_T)
    kl: Tensor  # (B,) KL summed over steps
    canvas: Tensor  # (B, 1, H, W) final canvas logits
    steps: list[StepOutput]


def lstm_step(linear: nn.Linear, inputs: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step with all gates from one product; gates are ordered (input, forget, output, cell)."""
    gates = linear(inputs)  # (B, 4H)
    hidden = c.shape[-1]
    ifo = torch.sigmoid(gates[:, : 3 * hidden])
    g = torch.tanh(gates[:, 3 * hidden :])
    c = ifo[:, hidden : 2 * hidden] * c + ifo[:, :hidden] * g
    h = ifo[:, 2 * hidden :] * torch.tanh(c)
    return h, c


def gaussian_kl(mu: Tensor, logsigma: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over the last axis: ``1/2 sum(mu^2 + sigma^2 - 2 log sigma - 1)``."""
    return 0.5 * (mu.square() + torch.exp(2 * logsigma) - 2 * logsigma - 1).sum(-1)


def check_images(x: Tensor, height: int, width: int) -> Tensor:
    """Validate images in [0, 1] of shape ``(B, H, W)`` or ``(B, 1, H, W)``; return ``(B, 1, H, W)``."""
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        raise ValueError(f"images must be a float tensor with values in [0, 1], got {getattr(x, 'dtype', type(x))}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != (height, width):
        raise ValueError(
            f"images must have shape (B, {height}, {width}) or (B, 1, {height}, {width}), got {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("empty batch of images")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("image values must be finite and in [0, 1] (divide uint8 images by 255)")
    return x


class DRAW(nn.Module):
    """The DRAW network; ``forward`` unrolls :meth:`step` over ``config.steps`` steps."""

    def __init__(self, config: DrawConfig) -> None:
        super().__init__()
        self.config = cfg = config
        pixels = cfg.height * cfg.width
        read_size = 2 * cfg.read_n**2 if cfg.attention else 2 * pixels
        self.patch_size = cfg.write_n**2 if cfg.attention else pixels
        self.encoder = nn.Linear(read_size + cfg.dec_size + cfg.enc_size, 4 * cfg.enc_size)
        self.posterior = nn.Linear(cfg.enc_size, 2 * cfg.z_size)  # -> (mu, log sigma)
        self.decoder = nn.Linear(cfg.z_size + cfg.dec_size, 4 * cfg.dec_size)
        self.writer = nn.Linear(cfg.dec_size, self.patch_size + (5 if cfg.attention else 0))  # -> (patch, window)
        self.reader = nn.Linear(cfg.dec_size, 5) if cfg.attention else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """LSTM forget-gate bias 1. Both windows start centred, spanning the image, with filters half a stride
        wide (a smooth cover); the write window starts with ``1 / gamma`` = stride^2, so that a unit patch
        adds about one unit of logit per pixel. Without this scaling the write is ~50x too weak at the start
        and training idles on the independent-pixel plateau (~206 nats) for a long time."""
        cfg = self.config
        for lstm, hidden in ((self.encoder, cfg.enc_size), (self.decoder, cfg.dec_size)):
            lstm.bias.zero_()
            lstm.bias[hidden : 2 * hidden] = 1.0
        if cfg.attention:
            size = max(cfg.height, cfg.width) - 1
            for weight, bias, n, is_write in (
                (self.reader.weight, self.reader.bias, cfg.read_n, False),
                (self.writer.weight[-5:], self.writer.bias[-5:], cfg.write_n, True),
            ):
                stride = size / max(n - 1, 1)
                weight.mul_(0.1)
                bias.copy_(
                    torch.tensor([0.0, 0.0, 2 * math.log(stride / 2), 0.0, -2 * math.log(stride) if is_write else 0.0])
                )

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> DrawState:
        """Zero LSTM states and the constant initial canvas ``c_0``."""
        cfg = self.config
        kw = {
            "device": device if device is not None else self.encoder.weight.device,
            "dtype": self.encoder.weight.dtype,
        }
        return DrawState(
            h_enc=torch.zeros(batch, cfg.enc_size, **kw),
            c_enc=torch.zeros(batch, cfg.enc_size, **kw),
            h_dec=torch.zeros(batch, cfg.dec_size, **kw),
            c_dec=torch.zeros(batch, cfg.dec_size, **kw),
            canvas=torch.full((batch, 1, cfg.height, cfg.width), cfg.canvas_init, **kw),
        )

    def read(self, x: Tensor, x_hat: Tensor, h_dec: Tensor) -> tuple[Tensor, Tensor | None]:
        """Encoder input ``(B, 2 N^2)`` (or the whole ``[x, x_hat]``) and the read window's raw parameters."""
        both = torch.cat([x, x_hat], dim=1)  # (B, 2, H, W)
        if not self.config.attention:
            return both.flatten(1), None
        cfg = self.config
        raw = self.reader(h_dec)  # (B, 5)
        win = window_from_raw(raw, cfg.height, cfg.width, cfg.read_n)
        fx, fy = filterbank(win, cfg.read_n, cfg.height, cfg.width)
        return read(both, fx, fy, win.gamma).flatten(1), raw

    def write(self, h_dec: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Canvas update ``(B, 1, H, W)``, the patch ``(B, 1, N, N)`` and the write window's raw parameters."""
        cfg = self.config
        out = self.writer(h_dec)
        if not cfg.attention:
            patch = out.view(-1, 1, cfg.height, cfg.width)
            return patch, patch, None
        patch, raw = out[:, :-5].reshape(-1, 1, cfg.write_n, cfg.write_n), out[:, -5:]
        return self.render(patch, raw), patch, raw

    def render(self, patch: Tensor, raw: Tensor) -> Tensor:
        """Paint ``patch (B, 1, N, N)`` through the window with raw parameters ``raw (B, 5)``: ``(B, 1, H, W)``."""
        cfg = self.config
        win = window_from_raw(raw, cfg.height, cfg.width, cfg.write_n)
        fx, fy = filterbank(win, cfg.write_n, cfg.height, cfg.width)
        return write(patch, fx, fy, win.gamma)

    def step(self, x: Tensor, state: DrawState, eps: Tensor | None = None) -> tuple[DrawState, StepOutput]:
        """One glimpse: read ``x (B, 1, H, W)`` and the error image, sample ``z_t``, write on the canvas."""
        h_enc, c_enc, h_dec, c_dec, canvas = state
        x_hat = x - torch.sigmoid(canvas)
        r, read_raw = self.read(x, x_hat, h_dec)
        h_enc, c_enc = lstm_step(self.encoder, torch.cat([r, h_dec, h_enc], dim=1), c_enc)
        mu, logsigma = self.posterior(h_enc).chunk(2, dim=-1)  # (B, Z) each
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(logsigma) * eps
        h_dec, c_dec, canvas, patch, write_raw = self.decode(z, h_dec, c_dec, canvas)
        return DrawState(h_enc, c_enc, h_dec, c_dec, canvas), StepOutput(mu, logsigma, z, read_raw, write_raw, patch)

    def decode(
        self, z: Tensor, h_dec: Tensor, c_dec: Tensor, canvas: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """Decoder LSTM and write: ``(h_dec, c_dec, canvas, patch, write_raw)`` after latent ``z (B, Z)``."""
        h_dec, c_dec = lstm_step(self.decoder, torch.cat([z, h_dec], dim=1), c_dec)
        update, patch, write_raw = self.write(h_dec)
        return h_dec, c_dec, canvas + update, patch, write_raw

    def forward(self, x: Tensor, noise: Tensor | None = None, step_fn: StepFn | None = None) -> DrawOutput:
        """Unroll over T steps on images ``x`` in [0, 1]; ``noise (T, B, Z)`` fixes the posterior samples;
        ``step_fn`` replaces :meth:`step` (e.g. ``torch.compile(model.step)``, as the trainer's ``--compile``)."""
        return self.unroll(check_images(x, self.config.height, self.config.width), noise, step_fn)

    def unroll(self, x: Tensor, noise: Tensor | None = None, step_fn: StepFn | None = None) -> DrawOutput:
        """:meth:`forward` without the input checks (they synchronise with the device): ``x (B, 1, H, W)``."""
        step = self.step if step_fn is None else step_fn
        state = self.initial_state(x.shape[0], x.device)
        steps = []
        for t in range(self.config.steps):
            state, out = step(x, state, None if noise is None else noise[t])
            steps.append(out)
        recon = F.binary_cross_entropy_with_logits(state.canvas, x, reduction="none").flatten(1).sum(-1)
        mu = torch.stack([s.mu for s in steps])  # (T, B, Z)
        logsigma = torch.stack([s.logsigma for s in steps])
        kl = gaussian_kl(mu, logsigma).sum(0)  # (B,)
        return DrawOutput((recon + kl).mean(), recon, kl, state.canvas, steps)

    @torch.no_grad()
    def log_weights(self, x: Tensor, k: int, noise: Tensor | None = None) -> Tensor:
        """``log p(x, z) - log q(z | x)`` for ``k`` posterior samples per image: ``(B, k)``. Sample ``j`` of
        image ``i`` is row ``i * k + j`` of the optional ``noise (T, B k, Z)``."""
        x = check_images(x, self.config.height, self.config.width)
        b = x.shape[0]
        xk = x.repeat_interleave(k, dim=0)  # (B k, 1, H, W)
        out = self.forward(xk, noise)
        log_ratio = torch.zeros(b * k, device=x.device, dtype=x.dtype)
        for s in out.steps:  # log N(z; 0, 1) - log N(z; mu, sigma): the 2 pi terms cancel
            eps = (s.z - s.mu) * torch.exp(-s.logsigma)
            log_ratio += (-0.5 * s.z.square() + 0.5 * eps.square() + s.logsigma).sum(-1)
        return (log_ratio - out.recon).view(b, k)

    @torch.no_grad()
    def iwae_nll(self, x: Tensor, k: int) -> Tensor:
        """Importance-weighted bound on ``-log p(x)`` with ``k`` samples (Burda et al. 2016): ``(B,)`` nats."""
        return -(torch.logsumexp(self.log_weights(x, k), dim=1) - math.log(k))

    @torch.no_grad()
    def sample(
        self, n: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Draw ``n`` images from the prior. Returns canvases ``(T+1, n, 1, H, W)`` logits and write windows
        ``(T, n, 5)`` raw parameters (``None`` without attention)."""
        cfg = self.config
        state = self.initial_state(n, device)
        h, c, canvas = state.h_dec, state.c_dec, state.canvas
        canvases, windows = [canvas], []
        for _ in range(cfg.steps):
            z = torch.randn(n, cfg.z_size, generator=generator, dtype=canvas.dtype).to(canvas.device)
            h, c, canvas, _, raw = self.decode(z, h, c, canvas)
            canvases.append(canvas)
            windows.append(raw)
        return torch.stack(canvases), (torch.stack(windows) if cfg.attention else None)

    def write_actions(self, out: DrawOutput) -> Tensor:
        """Per-step write actions of an unrolled batch, ``(T, B, 5 + N*N)``: the write window's raw attention
        parameters followed by the flattened patch. Replaying them as ``canvas += write(patch, window)`` from
        ``c_0`` rebuilds ``out.canvas`` (e.g. in the ``paintrnn/Draw-v0`` environment)."""
        if not self.config.attention:
            raise ValueError("write actions need attention (without it every step writes the whole canvas)")
        return torch.stack([torch.cat([s.write_raw, s.patch.flatten(1)], dim=1) for s in out.steps])

    def windows(self, raw: Tensor, n: int) -> Tensor:
        """Boxes ``(..., 4)`` (x0, y0, x1, y1) in pixels of windows with raw parameters ``raw (..., 5)``."""
        flat = raw.reshape(-1, 5)
        win: Window = window_from_raw(flat, self.config.height, self.config.width, n)
        return window_box(win, n).reshape(*raw.shape[:-1], 4)

    # ---- the prior as a policy of paintrnn/Draw-v0 ------------------------------------------------------
    def env_options(self) -> dict[str, Any]:
        """Options of ``paintrnn/Draw-v0`` whose steps are this model's writes (raw actions, its image size,
        write window, T and ``c_0``); add a target source (or ``target=None, reward="none"``) and make the env
        with ``gym.make("paintrnn/Draw-v0", **model.env_options(), ...)`` or ``gym.make_vec``."""
        cfg = self.config
        if not cfg.attention:
            raise ValueError("Draw-v0 writes through a window: a DRAW model without attention has no such actions")
        return {"height": cfg.height, "width": cfg.width, "channels": 1, "n": cfg.write_n, "max_steps": cfg.steps,
                "raw_actions": True, "canvas_init": cfg.canvas_init}  # fmt: skip

    @torch.no_grad()
    def predict(
        self,
        observation: Mapping[str, Any],
        state: DecoderState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, DecoderState]:
        """The next write of a drawing from the prior, as the action of ``paintrnn/Draw-v0`` made with
        :meth:`env_options` (Stable-Baselines3's ``predict``): ``(action, state)``.

        Generation is open-loop (DRAW's decoder never looks at the canvas), so the observation serves only for
        the batch (a single env's ``canvas (H, W, 1)`` or a vector env's ``(N, H, W, 1)``) and its ``step``
        counter: a sub-env at step 0, or flagged in ``episode_start (N,)``, starts a new drawing. ``state`` is the
        decoder's ``(h, c)``, ``(N, dec_size)`` each (None: every sub-env starts afresh). ``deterministic``
        writes with the prior's mode ``z = 0``; otherwise ``z ~ N(0, I)``, drawn from ``generator`` when given
        as :meth:`sample` draws it (the same generator gives the same drawings). The action is ``(5 + N*N,)``
        float32 for a single env and ``(N, 5 + N*N)`` for a vector env: the write window's raw parameters, then
        the patch (the layout of :meth:`write_actions`)."""
        cfg = self.config
        self.env_options()  # attention is needed
        if not isinstance(observation, Mapping) or "canvas" not in observation:
            raise ValueError("observation must be a Draw-v0 observation: a dict with 'canvas' (and 'step')")
        canvas = np.asarray(observation["canvas"])
        if canvas.ndim not in (3, 4) or canvas.shape[-3:] != (cfg.height, cfg.width, 1):
            raise ValueError(
                f"observation['canvas'] must have shape ({cfg.height}, {cfg.width}, 1) or (N, {cfg.height}, "
                f"{cfg.width}, 1) for this model, got {canvas.shape}"
            )
        batched = canvas.ndim == 4
        n = canvas.shape[0] if batched else 1
        fresh = np.asarray(observation.get("step", np.zeros(n)), dtype=np.int64).reshape(n) == 0
        if episode_start is not None:
            fresh |= np.asarray(episode_start, dtype=bool).reshape(n)
        weight = self.decoder.weight  # (4 dec, Z + dec)
        h = torch.zeros(n, cfg.dec_size, device=weight.device, dtype=weight.dtype)
        c = torch.zeros_like(h)
        if state is not None:
            if len(state) != 2 or any(np.shape(s) != (n, cfg.dec_size) for s in state):
                raise ValueError(f"state must be the (h, c) that predict returned, each ({n}, {cfg.dec_size})")
            keep = torch.as_tensor(~fresh, device=weight.device)[:, None]  # (N, 1)
            h = torch.where(keep, torch.as_tensor(state[0], device=weight.device, dtype=weight.dtype), h)
            c = torch.where(keep, torch.as_tensor(state[1], device=weight.device, dtype=weight.dtype), c)
        if deterministic:
            z = torch.zeros(n, cfg.z_size, device=weight.device, dtype=weight.dtype)  # (N, Z)
        else:
            z = torch.randn(n, cfg.z_size, generator=generator, dtype=weight.dtype).to(weight.device)
        h, c = lstm_step(self.decoder, torch.cat([z, h], dim=1), c)
        out = self.writer(h)  # (N, N*N + 5): patch, then window
        action = torch.cat([out[:, -5:], out[:, :-5]], dim=1).float().cpu().numpy()  # (N, 5 + N*N)
        return (action if batched else action[0]), (h.cpu().numpy(), c.cpu().numpy())


def model_flops_per_image(config: DrawConfig) -> float:
    """Matrix-multiply FLOPs of one training image (forward + backward = 3 x forward, 2 per multiply-add),
    counting the LSTM, posterior and write/read heads and the filterbank products."""
    c = config
    pixels = c.height * c.width
    read_in = 2 * c.read_n**2 if c.attention else 2 * pixels
    patch = c.write_n**2 if c.attention else pixels
    macs = (read_in + c.dec_size + c.enc_size) * 4 * c.enc_size  # encoder gates
    macs += c.enc_size * 2 * c.z_size + (c.z_size + c.dec_size) * 4 * c.dec_size  # posterior, decoder gates
    macs += c.dec_size * (patch + (10 if c.attention else 0))  # write (+ window heads)
    if c.attention:  # read Fy x Fx^T on 2 channels, write Fy^T w Fx
        macs += 2 * (c.read_n * c.height * c.width + c.read_n * c.width * c.read_n)
        macs += c.write_n * c.write_n * c.width + c.height * c.write_n * c.width
    return 3 * 2 * macs * c.steps


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> DRAW:
    """The DRAW model of a checkpoint written by ``scripts/train_draw.py`` (``kind`` "draw"), in eval mode on
    ``device``, with its averaged weights when the run kept an average (``--ema-decay``)."""
    ckpt = load_checkpoint(path, map_location=device, kind="draw")
    model = DRAW(config_from_dict(DrawConfig, ckpt["config"]["model"]))
    model.load_state_dict(inference_weights(ckpt))
    return model.to(device).eval()
