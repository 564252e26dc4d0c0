"""RL mode: model-based DDPG (Learning to Paint's algorithm) with the exact renderer as the model.

Huang et al. (2019) found that model-free RL cannot paint well in high-dimensional stroke spaces and trained
their painter with *model-based* DDPG: a critic learns the value ``V(s)`` of canvas states, and the actor
maximises ``r(s, a) + gamma * V(s')`` where the next canvas ``s'`` comes from a differentiable renderer, so the
policy gradient flows through the renderer into the stroke parameters. They had to learn a neural renderer
for that; here the model is the exact renderer of ``paintrnn.render`` (soft mode for the gradient) and the
reward is Paint-v0's own ``l2_delta``, ``(d_{t-1} - d_t) / d_0``.

The loop, each iteration:

1. **Act**: ``num_envs`` whole episodes in the native vector env ``paintrnn/Paint-v0`` with the recurrent
   painter plus Gaussian noise on its pre-``tanh`` actions; the visited canvases and targets go into a replay
   buffer of episodes.
2. **Critic**: for ``batch_size`` replayed episodes, re-unroll the (Polyak-averaged) target actor over the
   stored canvases, apply its strokes with the hard renderer, and regress
   ``V(s_t) <- r(s_t, a'_t) + gamma * V_target(s'_t)`` (no bootstrap after the last step).
3. **Actor**: re-unroll the actor over the same canvases (its LSTM state carried and backpropagated across
   steps, as in recurrent DPG) and ascend ``r(s_t, a_t) + gamma * V(render_soft(s_t, a_t))``.

The actor is the same :class:`~paintrnn.agents.painter.Painter` as every other mode (checkpoint mode
``"ddpg"``), so ``load_model``, the benchmark and the GIF writer take it as they are. Both learning rates
decay along a cosine to a twentieth; the replay buffer is saved beside every checkpoint (``replay-STEP.pt``,
named by the checkpoint), so a resumed run continues exactly.

    paintrnn train painter ddpg --iters 5000 --run-dir runs/painter-ddpg
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from paintrnn.agents.painter import (
    KINDS,
    Encoder,
    Painter,
    PainterSpec,
    coord_channels,
    make_vector_env,
    obs_images,
    prepare_images,
)
from paintrnn.agents.painter_train import PainterRunConfig, due, eval_metrics, finish, mnist_digits, save_painter
from paintrnn.envs.canvas import l2_delta_reward
from torch import Tensor, nn

from paintrnn.render import render_strokes
from paintrnn.run import lr_schedule, start_run
from paintrnn.training import CHECKPOINT_FORMAT, atomic_torch_save, load_checkpoint

REPLAY_KIND = "painter-replay"
"""Checkpoint kind of the replay buffer file saved beside a DDPG checkpoint."""


@dataclass(frozen=True)
class DDPGConfig(PainterRunConfig):
    """Train the conditional painter with model-based DDPG on paintrnn/Paint-v0 (reward l2_delta)."""

    run_dir: str = "runs/painter-ddpg"
    hidden: int = 256
    """LSTM state size (and the critic's feature size)."""
    iters: int = 5000
    """Iterations (act, then one critic and one actor update)."""
    target: str = "mnist"
    """Target source of the environment ('mnist', 'texture:brick', ...)."""
    image_size: int = 32
    """Side of the policy's and critic's (resized) input."""
    num_envs: int = 16
    """Sub-environments; each plays one new episode per iteration."""
    buffer_episodes: int = 20000
    """Replay capacity in episodes (oldest overwritten first)."""
    batch_size: int = 32
    """Replayed episodes per update."""
    actor_lr: float = 1e-3
    """Actor Adam learning rate (cosine decay to a twentieth)."""
    critic_lr: float = 1e-3
    """Critic Adam learning rate (same schedule)."""
    gamma: float = 0.5
    """Discount. An episode's discounted return is ``1 - sum_t w_t d_t / d_0`` with ``w_t = gamma^(t-1) (1 - gamma)``
    before the last step and ``gamma^(T-1)`` at it: with 2 steps, 0.5 weighs both canvases equally (the backprop
    mode's per-step loss); near 1 only the final canvas counts, and the first step's canvas is left rough."""
    tau: float = 0.01
    """Polyak rate of the target actor and critic."""
    noise_std: float = 0.05
    """Exploration: standard deviation of the Gaussian noise on the actor's pre-tanh actions (0.2 put the replayed
    canvases too far from the actor's own and trained it worse)."""
    sharpness: float = 4.0
    """Soft renderer edge sharpness for the actor's gradient."""
    grad_clip: float = 1.0
    """Gradient norm clip (actor and critic)."""

    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {**PainterRunConfig.DEPRECATED_FLAGS, "--iterations": "--iters"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target == "none":
            raise ValueError("model-based DDPG paints targets (its reward is l2_delta): choose a --target")

    @staticmethod
    def quick() -> dict:
        """Overrides for a smoke run of a few seconds (tests, ``benchmark --quick``)."""
        quick = dict(num_envs=8, batch_size=8, image_size=16, canvas_size=16, buffer_episodes=64)
        return {**PainterRunConfig.quick(), **quick}


class Critic(nn.Module):
    """``V(canvas, target, step)``: the return-to-go of the actor from this state, ``(B,)``."""

    def __init__(self, channels: int, image_size: int, width: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.channels, self.image_size, self.steps = channels, image_size, steps
        self.encoder = Encoder(3 * channels + 3, image_size, width, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, canvas: Tensor, target: Tensor, step: int) -> Tensor:
        x = prepare_images(canvas, self.channels, self.image_size, "canvas")
        goal = prepare_images(target, self.channels, self.image_size)
        B, _, S, _ = x.shape
        clock = x.new_full((B, 1, S, S), step / self.steps)  # how much of the episode is gone
        x = torch.cat([x, goal, goal - x, coord_channels(B, S, x), clock], 1)  # (B, 3C + 3, S, S)
        return self.head(self.encoder(x)).squeeze(-1)


def distance(canvas: Tensor, target: Tensor) -> Tensor:
    """Mean squared distance ``(B,)`` of float ``(B, C, H, W)`` images, as the canvas environments define it."""
    return (canvas - target).square().mean(dim=(1, 2, 3))


def l2_delta(before: Tensor, after: Tensor, target: Tensor, d0: Tensor) -> Tensor:
    """Paint-v0's ``l2_delta`` reward ``(B,)`` for the step that turned ``before`` into ``after``."""
    return l2_delta_reward(distance(before, target), distance(after, target), d0)


class Replay:
    """Ring buffer of whole episodes: uint8 canvases before each step ``(T, C, H, W)`` and the target."""

    def __init__(self, capacity: int, steps: int, channels: int, size: int, device: torch.device) -> None:
        self.canvas = torch.zeros(capacity, steps, channels, size, size, dtype=torch.uint8, device=device)
        self.target = torch.zeros(capacity, channels, size, size, dtype=torch.uint8, device=device)
        self.count = 0  # episodes ever added

    def __len__(self) -> int:
        return min(self.count, len(self.canvas))

    def add(self, canvas: Tensor, target: Tensor) -> None:
        """Append ``N`` episodes: canvases ``(N, T, C, H, W)`` and targets ``(N, C, H, W)``, uint8."""
        slots = (self.count + torch.arange(len(canvas))) % len(self.canvas)
        self.canvas[slots.to(self.canvas.device)] = canvas
        self.target[slots.to(self.canvas.device)] = target
        self.count += len(canvas)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` episodes drawn uniformly: float canvases ``(n, T, C, H, W)`` and targets in [0, 1]."""
        idx = torch.randint(len(self), (n,), generator=generator).to(self.canvas.device)
        return self.canvas[idx].float() / 255, self.target[idx].float() / 255

    def state_dict(self) -> dict:
        return {"canvas": self.canvas.cpu(), "target": self.target.cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.canvas.copy_(state["canvas"])
        self.target.copy_(state["target"])
        self.count = int(state["count"])


@torch.no_grad()
def collect(
    cfg: DDPGConfig,
    env: gym.vector.VectorEnv,
    actor: Painter,
    it: int,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor, float, float]:
    """One noisy episode per sub-env; returns uint8 canvases ``(N, T, C, H, W)``, targets, the mean return and
    the env's final L2 distance."""
    obs, _ = env.reset(seed=cfg.seed * 1_000_003 + it * cfg.num_envs)
    state = actor.initial_state(cfg.num_envs, device)
    target = obs_images(obs, "target", device)
    canvases, ret, final = [], 0.0, float("nan")
    for _ in range(cfg.steps):
        canvas = obs_images(obs, "canvas", device)
        out, state, _ = actor.step(canvas, state, target)
        noise = torch.randn(out.mean.shape, generator=generator).to(device)
        obs, reward, term, _, info = env.step(torch.tanh(out.mean + cfg.noise_std * noise))
        canvases.append(canvas)
        ret += float(np.mean(reward))
        if "final_info" in info and "l2" in info["final_info"]:
            final = float(np.mean(info["final_info"]["l2"]))
    if not term.all():
        raise RuntimeError("episodes are not aligned: the env did not end every episode together")
    return torch.stack(canvases, 1), target, ret, final


def critic_loss(
    cfg: DDPGConfig, critic: Critic, actor_t: Painter, critic_t: Critic, canvas: Tensor, target: Tensor
) -> Tensor:
    """TD regression of ``V(s_t)`` on ``r(s_t, a'_t) + gamma V'(s'_t)``, ``a'`` from the target actor, hard model."""
    B, T = canvas.shape[:2]
    d0 = distance(canvas[:, 0], target)
    losses = []
    with torch.no_grad():
        state, ys = actor_t.initial_state(B, canvas.device), []
        for t in range(T):
            out, state, _ = actor_t.step(canvas[:, t], state, target)
            after = render_strokes(actor_t.strokes(out.mean), canvas[:, t], mode="hard")
            y = l2_delta(canvas[:, t], after, target, d0)
            ys.append(y + cfg.gamma * critic_t(after, target, t + 1) if t + 1 < T else y)
    for t in range(T):
        losses.append(F.mse_loss(critic(canvas[:, t], target, t), ys[t]))
    return torch.stack(losses).mean()


def actor_objective(cfg: DDPGConfig, actor: Painter, critic: Critic, canvas: Tensor, target: Tensor) -> Tensor:
    """Mean over steps of ``r(s_t, a_t) + gamma V(render_soft(s_t, a_t))``, differentiable in the actor."""
    B, T = canvas.shape[:2]
    d0 = distance(canvas[:, 0], target)
    state, total = actor.initial_state(B, canvas.device), canvas.new_zeros(())
    for t in range(T):
        out, state, _ = actor.step(canvas[:, t], state, target)
        after = render_strokes(actor.strokes(out.mean), canvas[:, t], mode="soft", sharpness=cfg.sharpness)
        q = l2_delta(canvas[:, t], after, target, d0)
        if t + 1 < T:
            q = q + cfg.gamma * critic(after, target, t + 1)
        total = total + q.mean()
    return total / T


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p_t, p in zip(target.parameters(), source.parameters()):
            p_t.lerp_(p, tau)


def train_ddpg(cfg: DDPGConfig) -> Painter:
    """Train (or resume) a model-based DDPG painter; returns the actor."""
    with start_run(cfg, kind=KINDS["ddpg"]) as run:
        device = run.device
        env = make_vector_env(
            cfg.num_envs,
            canvas_size=cfg.canvas_size,
            steps=cfg.steps,
            strokes_per_step=cfg.strokes_per_step,
            target=cfg.target,
            data_dir=cfg.data_dir,
            device=device,
        )
        spec = PainterSpec(
            image_size=cfg.image_size, strokes_per_step=cfg.strokes_per_step, hidden=cfg.hidden, width=cfg.width
        )
        actor = Painter(spec).to(device)
        critic = Critic(1, cfg.image_size, cfg.width, cfg.hidden, cfg.steps).to(device)
        actor_t, critic_t = copy.deepcopy(actor).requires_grad_(False), copy.deepcopy(critic).requires_grad_(False)
        actor_opt = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
        replay = Replay(cfg.buffer_episodes, cfg.steps, 1, cfg.canvas_size, device)
        ckpt = run.resume(actor, actor_opt)
        if ckpt is not None:
            extra = ckpt["extra"]
            critic.load_state_dict(extra["critic"])
            critic_opt.load_state_dict(extra["critic_optimizer"])
            actor_t.load_state_dict(extra["actor_target"])
            critic_t.load_state_dict(extra["critic_target"])
            replay.load_state_dict(load_checkpoint(run.dir / extra["replay"], device, kind=REPLAY_KIND)["extra"])
        test = mnist_digits("test", cfg.data_dir, n=cfg.eval_size) if cfg.target.startswith("mnist") else None
        stats, row = [], {}
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters):
            actor_opt.param_groups[0]["lr"] = lr_schedule(it / cfg.iters, cfg.actor_lr, 0.05 * cfg.actor_lr)
            critic_opt.param_groups[0]["lr"] = lr_schedule(it / cfg.iters, cfg.critic_lr, 0.05 * cfg.critic_lr)
            canvas_u8, target_u8, ret, final = collect(cfg, env, actor, it, run.generator, device)
            replay.add(canvas_u8, target_u8)
            canvas, target = replay.sample(cfg.batch_size, run.generator)  # (B, T, C, H, W), (B, C, H, W)

            c_loss = critic_loss(cfg, critic, actor_t, critic_t, canvas, target)
            run.check_finite(c_loss, it)
            critic_opt.zero_grad(set_to_none=True)
            c_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.grad_clip)
            critic_opt.step()

            critic.requires_grad_(False)
            objective = actor_objective(cfg, actor, critic, canvas, target)
            run.check_finite(objective, it)
            actor_opt.zero_grad(set_to_none=True)
            (-objective).backward()
            torch.nn.utils.clip_grad_norm_(actor.parameters(), cfg.grad_clip)
            actor_opt.step()
            critic.requires_grad_(True)
            soft_update(actor_t, actor, cfg.tau)
            soft_update(critic_t, critic, cfg.tau)
            stats.append((ret, final, c_loss.item(), objective.item()))

            done = it + 1
            if due(done, cfg.log_every, cfg.iters):
                mean = np.nanmean(np.array(stats), 0)
                row = dict(zip(("episode_return", "final_l2", "critic_loss", "actor_objective"), mean.tolist()))
                if test is not None:
                    with run.paused():
                        row.update(eval_metrics(actor, test, cfg))
                run.log(done, **row)
                stats = []
            if due(done, cfg.checkpoint_every, cfg.iters):
                replay_file = f"replay-{done}.pt"  # the checkpoint names its replay: a kill between the two is harmless
                if run.is_main:
                    replay_state = {"format": CHECKPOINT_FORMAT, "kind": REPLAY_KIND, "extra": replay.state_dict()}
                    atomic_torch_save(replay_state, run.dir / replay_file)
                nets = {"critic": critic, "actor_target": actor_t, "critic_target": critic_t}
                extra = {name: net.state_dict() for name, net in nets.items()}
                extra.update(replay=replay_file, critic_optimizer=critic_opt.state_dict())
                save_painter(run, done, actor, actor_opt, "ddpg", extra, modules=nets)
                if run.is_main:
                    for old in run.dir.glob("replay-*.pt"):
                        if old.name != replay_file:
                            old.unlink()
        env.close()
        summary_keys = ("episode_return", "critic_loss", *(k for k in row if k.startswith("test_mse")))
        return finish(run, actor, "ddpg", cfg, **{k: row[k] for k in summary_keys if k in row})
