"""RL mode: PPO with the recurrent painter on the native vector environment (conditional, ``l2_delta``).

One file, read top to bottom: the options, the reward a learned model may replace (:class:`LearnedReward`,
which the GAN mode extends), the training loop, then its pieces (rollout, advantages, update).

Every sub-environment's episode lasts exactly ``steps`` steps, and each rollout is made of whole, aligned
episodes (all sub-envs reset together, with seeds derived from the iteration, so a resumed run redoes the
same episodes). The LSTM state therefore starts at zero at every sequence start, and the PPO update
re-unrolls each episode from zero with the stored observations (recurrent PPO without stale states).

Continuous actions (``paintrnn/Paint-v0``): a diagonal Gaussian on the pre-``tanh`` values ``u``; the env
gets ``tanh(u)``. The ``tanh`` Jacobian is the same for old and new policies, so the probability ratio of
``u`` is the ratio of the actions. Grid actions (``paintrnn/PaintGrid-v0``): the autoregressive
categoricals, teacher-forced on the stored choices in the update. The learning rate decays linearly to a
tenth over ``iters`` (as CleanRL's PPO anneals it).

    paintrnn train painter ppo --iters 500 --num-envs 64 --run-dir runs/painter-ppo
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from paintrnn.agents.painter import (
    KINDS,
    Painter,
    PainterSpec,
    PolicyOutput,
    load_model,
    make_vector_env,
    obs_images,
)
from paintrnn.agents.painter_train import PainterRunConfig, due, eval_metrics, finish, mnist_digits, save_painter
from torch import Tensor, nn

from paintrnn.run import lr_schedule, start_run
from paintrnn.training import check_finite


@dataclass(frozen=True)
class PPOConfig(PainterRunConfig):
    """Train the painter with PPO on paintrnn/Paint-v0 (or PaintGrid-v0)."""

    run_dir: str = "runs/painter-ppo"
    log_every: int = 10
    checkpoint_every: int = 10
    canvas_size: int = 64
    """Side of the environment's canvas."""
    iters: int = 500
    """PPO iterations (rollout + update)."""
    env_id: Literal["paintrnn/Paint-v0", "paintrnn/PaintGrid-v0"] = "paintrnn/Paint-v0"
    """Environment: continuous strokes or SPIRAL's grid actions."""
    target: str = "mnist"
    """Target source of the environment ('mnist', 'texture:brick', ...)."""
    reward: Literal["l2_delta", "final_l2", "none"] = "l2_delta"
    """Environment reward ('none' with the GAN mode's discriminator reward)."""
    image_size: int = 32
    """Side of the policy's (resized) input."""
    num_envs: int = 64
    """Sub-environments of the native vector env."""
    episodes_per_rollout: int = 4
    """Whole episodes per sub-env in one rollout."""
    lr: float = 3e-4
    """Adam learning rate (linear decay to a tenth)."""
    update_epochs: int = 4
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass (split by episodes)."""
    clip: float = 0.2
    """PPO ratio clip."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    vf_coef: float = 0.5
    """Value loss weight."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    group_size: int = 1
    """1: advantages by GAE from the learned value. G > 1: sub-envs in groups of G paint the same targets (seeded
    alike), and each step's advantage is its return-to-go minus the mean of the other G - 1 members' (a
    leave-one-out baseline, as in RLOO / GRPO), which removes the target's difficulty from the advantage."""
    target_kl: float | None = None
    """Stop an update early (as Stable-Baselines3 does) once a minibatch's approximate KL from the rollout's
    policy exceeds 1.5x this: with dozens of action dimensions the ratio moves fast. None: never stop."""
    init_log_std: float = -1.0
    """Initial log standard deviation of the Gaussian on u (continuous)."""
    init_from: str | None = None
    """Optional painter checkpoint (e.g. a backprop run) to start from; None = from scratch."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = PainterRunConfig.RESUME_MAY_CHANGE | {"init_from"}
    DEPRECATED_FLAGS: ClassVar[dict[str, str]] = {**PainterRunConfig.DEPRECATED_FLAGS, "--iterations": "--iters"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 1 or self.num_envs % self.group_size:
            raise ValueError(f"--group-size {self.group_size} must be >= 1 and divide --num-envs {self.num_envs}")

    @staticmethod
    def quick() -> dict:
        """Overrides for a smoke run of a few seconds (tests, ``benchmark --quick``)."""
        quick = dict(num_envs=8, episodes_per_rollout=1, image_size=16, canvas_size=32)
        return {**PainterRunConfig.quick(), **quick}


class LearnedReward:
    """A reward model trained alongside the painter, replacing the environment's reward (the GAN mode's
    discriminator subclasses it). Built inside the run as ``cls(cfg, device)``; its state is checkpointed
    beside the painter (``extra["hooks"]``), its networks are checked for non-finite weights."""

    mode: str = ""
    """The training mode a subclass makes (the GAN mode's: 'gan'): its checkpoints are of kind ``KINDS[mode]``."""

    def reward(self, before: Tensor, after: Tensor, step: int, target: Tensor | None = None) -> Tensor:
        """Reward ``(N,)`` for the step that turned ``before`` into ``after`` (float in [0, 1]; ``target`` or None)."""
        raise NotImplementedError

    def after_rollout(self, it: int) -> dict[str, float]:
        """Train the reward model on what the rollout painted; return metrics to log."""
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Networks whose weights must stay finite (checked at every checkpoint)."""
        return {}

    def state_dict(self) -> dict:
        """Tensors and primitives to checkpoint beside the painter."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        raise NotImplementedError


def spec_of(cfg: PPOConfig, nvec: tuple[int, ...] = ()) -> PainterSpec:
    grid = cfg.env_id.endswith("PaintGrid-v0")
    return PainterSpec(
        channels=1,
        image_size=cfg.image_size,
        strokes_per_step=cfg.strokes_per_step,
        conditional=cfg.target != "none",
        hidden=cfg.hidden,
        width=cfg.width,
        action="grid" if grid else "continuous",
        nvec=nvec,
    )


def make_env(cfg: PPOConfig, device: torch.device) -> gym.vector.VectorEnv:
    """The native vector env of ``cfg``, all episodes of ``cfg.steps`` steps, SAME_STEP autoreset."""
    return make_vector_env(
        cfg.num_envs,
        env_id=cfg.env_id,
        canvas_size=cfg.canvas_size,
        steps=cfg.steps,
        strokes_per_step=cfg.strokes_per_step,
        target=cfg.target,
        reward=cfg.reward,
        data_dir=cfg.data_dir,
        device=device,
    )


def train_ppo(cfg: PPOConfig, learned_reward: type[LearnedReward] | None = None) -> Painter:
    """Train (or resume) a PPO painter; returns it. ``learned_reward`` replaces the env reward (GAN mode)."""
    mode = learned_reward.mode if learned_reward is not None else "ppo"
    with start_run(cfg, kind=KINDS[mode]) as run:
        device = run.device
        env = make_env(cfg, device)
        space = env.single_action_space
        nvec = tuple(int(n) for n in space.nvec) if hasattr(space, "nvec") else ()
        spec = spec_of(cfg, nvec)
        painter = Painter(spec).to(device)
        if spec.action == "continuous":
            with torch.no_grad():
                painter.log_std.fill_(cfg.init_log_std)
        if cfg.init_from:
            painter.load_state_dict(load_model(cfg.init_from, device).state_dict())
        opt = torch.optim.Adam(painter.parameters(), lr=cfg.lr, eps=1e-5)
        learned = learned_reward(cfg, device) if learned_reward is not None else None
        ckpt = run.resume(painter, opt)
        if learned is not None and ckpt is not None:
            learned.load_state_dict(ckpt["extra"]["hooks"])
        test = mnist_digits("test", cfg.data_dir, n=cfg.eval_size) if cfg.target.startswith("mnist") else None
        row: dict[str, float] = {}
        for it in run.progress(range(run.start, cfg.iters), total=cfg.iters):
            opt.param_groups[0]["lr"] = lr_schedule(it / cfg.iters, cfg.lr, 0.1 * cfg.lr, shape="linear")
            batch = collect_rollout(cfg, env, painter, it, device, learned.reward if learned is not None else None)
            stats = ppo_update(cfg, painter, opt, batch, it)
            if learned is not None:
                stats.update(learned.after_rollout(it))
            done = it + 1
            if due(done, cfg.log_every, cfg.iters):
                row = {"episode_return": batch["returns_ep"], **stats}
                if np.isfinite(batch["final_l2"]):  # envs with a target report their final L2 distance
                    row["final_l2"] = batch["final_l2"]
                if test is not None and spec.action == "continuous":
                    with run.paused():
                        row.update(eval_metrics(painter, test, cfg))
                run.log(done, **row)
            if due(done, cfg.checkpoint_every, cfg.iters):
                extra = {"hooks": learned.state_dict()} if learned is not None else None
                save_painter(run, done, painter, opt, mode, extra, learned.modules() if learned is not None else None)
        env.close()
        summary_keys = ("episode_return", "final_l2", "disc_loss", *(k for k in row if k.startswith("test_mse")))
        return finish(run, painter, mode, cfg, **{k: row[k] for k in summary_keys if k in row})


def log_prob_entropy(painter: Painter, out: PolicyOutput, action: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability ``(B,)`` of stored actions (``u`` or grid choices) and the entropy ``(B,)``."""
    if painter.spec.action == "continuous":
        dist = torch.distributions.Normal(out.mean, out.log_std.exp().expand_as(out.mean))
        return dist.log_prob(action).sum(-1), dist.entropy().sum(-1)
    cats = [torch.distributions.Categorical(logits=lg) for lg in out.logits]
    lp = sum(c.log_prob(action[:, i]) for i, c in enumerate(cats))
    return lp, sum(c.entropy() for c in cats)


@torch.no_grad()
def collect_rollout(
    cfg: PPOConfig,
    env: gym.vector.VectorEnv,
    painter: Painter,
    it: int,
    device: torch.device,
    reward_fn: Callable[[Tensor, Tensor, int, Tensor | None], Tensor] | None = None,
) -> dict:
    """Play ``episodes_per_rollout`` aligned episodes in every sub-env; returns tensors ``(E, T, N, ...)``.
    ``reward_fn(before, after, step, target)`` (float images in [0, 1]) replaces the env's reward when given."""
    E, T, N = cfg.episodes_per_rollout, cfg.steps, cfg.num_envs
    keys = ("canvas", "target", "action", "logp", "value", "reward")
    buf: dict[str, list] = {k: [] for k in keys}
    finals = []
    seed = cfg.seed * 1_000_003 + it * E * N
    G = cfg.group_size  # members of a group share their sub-env seed, hence their targets
    obs, _ = env.reset(seed=seed if G == 1 else [seed + i // G for i in range(N)])
    for _ in range(E):
        state = painter.initial_state(N, device)
        for t in range(T):
            canvas = obs_images(obs, "canvas", device)
            target = obs_images(obs, "target", device) if painter.spec.conditional else None
            out, state, grid = painter.step(canvas, state, target)
            if painter.spec.action == "continuous":
                action = out.mean + out.log_std.exp() * torch.randn_like(out.mean)  # u
                env_action = torch.tanh(action)
            else:
                action = env_action = grid
            logp, _ = log_prob_entropy(painter, out, action)
            obs, reward, term, trunc, info = env.step(env_action)
            last = info["final_obs"] if t == T - 1 and "final_obs" in info else None
            if reward_fn is not None:
                after = (
                    obs_images({"canvas": np.stack([o["canvas"] for o in last])}, "canvas", device)
                    if (last is not None)
                    else obs_images(obs, "canvas", device)
                )
                goal = None if target is None else target.float() / 255
                reward = reward_fn(canvas.float() / 255, after.float() / 255, t, goal).cpu().numpy()
            if t == T - 1:
                if not term.all():
                    raise RuntimeError("episodes are not aligned: the env did not end every episode together")
                if "final_info" in info and "l2" in info["final_info"]:
                    finals.append(float(np.mean(info["final_info"]["l2"])))
            for k, v in zip(
                keys,
                (canvas, target, action, logp, out.value, torch.as_tensor(reward, dtype=torch.float32, device=device)),
            ):
                buf[k].append(v)
    batch = {k: (torch.stack(v).view(E, T, *v[0].shape) if v[0] is not None else None) for k, v in buf.items()}
    if G == 1:
        batch["advantage"] = gae(batch["reward"], batch["value"], cfg.gamma, cfg.gae_lambda)
        batch["return"] = batch["advantage"] + batch["value"]
    else:
        if batch["target"] is not None and not (batch["target"].unflatten(2, (N // G, G)).diff(dim=3) == 0).all():
            raise RuntimeError("the members of a group did not get the same targets")
        batch["advantage"], batch["return"] = group_advantage(batch["reward"], cfg.gamma, G)
    batch["returns_ep"] = float(batch["reward"].sum(1).mean())
    batch["final_l2"] = float(np.mean(finals)) if finals else float("nan")
    return batch


def gae(reward: Tensor, value: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates for ``(E, T, N)`` rewards and values of whole episodes (terminal after
    ``T`` steps, so nothing is bootstrapped past the end)."""
    E, T, N = reward.shape
    adv = torch.zeros_like(reward)
    running = torch.zeros(E, N, dtype=reward.dtype, device=reward.device)
    for t in reversed(range(T)):
        next_value = value[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = reward[:, t] + gamma * next_value - value[:, t]
        running = delta + gamma * lam * running * float(t + 1 < T)
        adv[:, t] = running
    return adv


def group_advantage(reward: Tensor, gamma: float, group: int) -> tuple[Tensor, Tensor]:
    """Leave-one-out advantages and returns-to-go for ``(E, T, N)`` rewards, sub-envs ``g G .. g G + G - 1``
    forming group ``g``: ``A = R_t - mean of the other members' R_t`` (no learned value involved)."""
    E, T, N = reward.shape
    ret = torch.zeros_like(reward)
    running = torch.zeros(E, N, dtype=reward.dtype, device=reward.device)
    for t in reversed(range(T)):
        running = reward[:, t] + gamma * running
        ret[:, t] = running
    members = ret.unflatten(2, (N // group, group))  # (E, T, groups, G)
    others = (members.sum(-1, keepdim=True) - members) / (group - 1)
    return (members - others).flatten(2), ret


def ppo_update(cfg: PPOConfig, painter: Painter, opt: torch.optim.Optimizer, batch: dict, it: int) -> dict:
    """Clipped PPO on whole episodes, re-unrolled from zero state; returns mean losses and stats."""
    E, T, N = batch["reward"].shape
    device = batch["reward"].device
    flat = {
        k: v.transpose(1, 2).reshape(E * N, T, *v.shape[3:]) for k, v in batch.items() if torch.is_tensor(v)
    }  # (episodes, T, ...)
    adv = flat["advantage"]
    flat["advantage"] = (adv - adv.mean()) / (adv.std() + 1e-8)
    episodes = E * N
    size = max(1, episodes // cfg.minibatches)
    stats: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "entropy": [],
        "approx_kl": [],
        "clip_frac": [],
        "update_steps": [],
    }
    steps_taken, stop = 0, False
    for _ in range(cfg.update_epochs):
        if stop:
            break
        order = torch.randperm(episodes, device=device)
        for s in range(0, episodes, size):
            idx = order[s : s + size]
            state = painter.initial_state(len(idx), device)
            losses, kls = [], []
            for t in range(T):
                tgt = flat["target"][idx, t] if "target" in flat and painter.spec.conditional else None
                act = flat["action"][idx, t]
                out, state, _ = painter.step(
                    flat["canvas"][idx, t], state, tgt, grid_actions=act if painter.spec.action == "grid" else None
                )
                logp, ent = log_prob_entropy(painter, out, act)
                ratio = (logp - flat["logp"][idx, t]).exp()
                a = flat["advantage"][idx, t]
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                vl = 0.5 * (out.value - flat["return"][idx, t]).pow(2).mean()
                losses.append(pg + cfg.vf_coef * vl - cfg.ent_coef * ent.mean())
                with torch.no_grad():
                    kls.append(((ratio - 1) - ratio.log()).mean().item())
                    stats["policy_loss"].append(pg.item())
                    stats["value_loss"].append(vl.item())
                    stats["entropy"].append(ent.mean().item())
                    stats["approx_kl"].append(kls[-1])
                    stats["clip_frac"].append(((ratio - 1).abs() > cfg.clip).float().mean().item())
            loss = torch.stack(losses).mean()
            check_finite(loss, it)
            if cfg.target_kl is not None and np.mean(kls) > 1.5 * cfg.target_kl:
                stop = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(painter.parameters(), cfg.max_grad_norm)
            opt.step()
            steps_taken += 1
    stats["update_steps"].append(steps_taken)
    return {k: float(np.mean(v)) for k, v in stats.items()}
