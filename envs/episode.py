"""Play an episode and export it: an animated GIF (canvas over steps, target beside it), an SVG of the
strokes (resolution-free vector paths) and a re-rendering of the stroke list at a higher resolution.

Command line (``scripts/render_episode.py``)::

    python scripts/render_episode.py --env paintrnn/Paint-v0 --out-dir docs --name envs_paint --scale 4

A policy is ``random`` (the default: ``action_space.sample()``, seeded), ``greedy`` (Paint-v0: the
best of 256 random actions, one step ahead) or ``module:function``, a
function ``(env, checkpoint) -> policy`` that returns a callable from observation to action, so a
trained agent can be played without this module importing any agent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from paintrnn.config import parse_config
from paintrnn.media import draw_boxes, save_png, side_by_side, upscale, write_gif
from paintrnn.render import render_strokes
from paintrnn.svg import strokes_to_svg

from .canvas import to_uint8
from .paint import PaintSim, actions_to_strokes

Policy = Callable[[dict[str, np.ndarray]], Any]


@dataclass
class Episode:
    """What an episode left behind: frames, target, rewards and (stroke envs) the strokes painted."""

    frames: np.ndarray
    """Canvas after reset and after each step, uint8 ``(T + 1, H, W, C)``."""
    target: np.ndarray | None
    """Target image uint8 ``(H, W, C)``, if the env had a target source."""
    rewards: list[float]
    """Reward of each step."""
    strokes: np.ndarray | None
    """Strokes painted, ``(K, 10 + C)`` in the renderer's layout (None for Draw-v0)."""
    background: float = 0.0
    """Grey level of the blank canvas (stroke envs)."""
    boxes: list[np.ndarray] = field(default_factory=list)
    """Draw-v0: the write window ``(x0, y0, x1, y1)`` of each step, in pixels."""


def random_policy(env: gym.Env, seed: int) -> Policy:
    """Uniformly random actions from the env's action space, seeded."""
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def greedy_paint_policy(env: gym.Env, seed: int, candidates: int = 256) -> Policy:
    """Paint-v0 demo: of ``candidates`` random actions, the one whose strokes bring the canvas closest to
    the target (random search, one step ahead, on the observed canvas)."""
    sim = env.unwrapped.sim
    if not isinstance(sim, PaintSim) or sim.targets is None:
        raise ValueError("the greedy policy needs Paint-v0 with a target")
    gen = torch.Generator().manual_seed(seed)
    cfg = sim.config

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        canvas = torch.from_numpy(obs["canvas"]).permute(2, 0, 1)[None].float() / 255  # (1, C, H, W)
        target = torch.from_numpy(obs["target"]).permute(2, 0, 1)[None].float() / 255
        actions = torch.rand(candidates, *env.action_space.shape, generator=gen) * 2 - 1
        strokes = actions_to_strokes(actions, cfg.channels, cfg.radius_range, cfg.opacity_range)
        # eager: a few dozen calls cost less than torch.compile's stall of tens of seconds at the first one
        painted = render_strokes(strokes, canvas.expand(candidates, -1, -1, -1).contiguous(), backend="eager")
        best = (painted - target).square().mean(dim=(1, 2, 3)).argmin()
        return actions[best].numpy()

    return policy


def load_policy(spec: str, env: gym.Env, checkpoint: str | None, seed: int) -> Policy:
    """``"random"``, ``"greedy"`` (Paint-v0) or ``"module:function"`` with ``function(env, checkpoint) -> policy``."""
    if spec == "random":
        return random_policy(env, seed)
    if spec == "greedy":
        return greedy_paint_policy(env, seed)
    module, sep, name = spec.partition(":")
    if not sep:
        raise ValueError(f"policy must be 'random' or 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)(env, checkpoint)


def play_episode(env: gym.Env, policy: Policy, seed: int = 0) -> Episode:
    """Run one episode of a single env (made with ``gym.make``) and record it."""
    sim = env.unwrapped.sim
    obs, _ = env.reset(seed=seed)
    frames, rewards, boxes = [obs["canvas"]], [], []
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        frames.append(obs["canvas"])
        rewards.append(reward)
        if hasattr(sim, "window_boxes"):
            boxes.append(sim.window_boxes[0].cpu().numpy())
        done = terminated or truncated
    strokes = sim.stroke_history(0).cpu().numpy() if hasattr(sim, "stroke_history") else None
    return Episode(
        frames=np.stack(frames),
        target=obs.get("target"),
        rewards=rewards,
        strokes=strokes,
        background=float(getattr(sim.config, "background", 0.0)),
        boxes=boxes,
    )


def episode_frames(episode: Episode, scale: int = 1) -> np.ndarray:
    """GIF frames: each canvas (with the write window, for Draw-v0) beside the target, enlarged ``scale`` x."""
    out = []
    for t, canvas in enumerate(episode.frames):
        image = upscale(canvas[..., 0] if canvas.shape[-1] == 1 else canvas, scale)
        if 0 < t <= len(episode.boxes):
            image = draw_boxes(image, (episode.boxes[t - 1] + 0.5) * scale - 0.5, width=max(1, scale // 2))
        if episode.target is not None:
            target = episode.target[..., 0] if episode.target.shape[-1] == 1 else episode.target
            image = side_by_side(image, upscale(target, scale), pad=2 * scale)
        out.append(image if image.ndim == 3 else np.repeat(image[..., None], 3, -1))
    return np.stack(out)


def rerender(episode: Episode, height: int, width: int) -> np.ndarray:
    """The episode's strokes rendered on a fresh ``height x width`` canvas: uint8 ``(height, width, C)``."""
    if episode.strokes is None:
        raise ValueError("this episode has no strokes (Draw-v0 writes patches): nothing to re-render")
    strokes = torch.from_numpy(episode.strokes)[None]  # (1, K, 10 + C)
    channels = strokes.shape[-1] - 10
    canvas = torch.full((1, channels, height, width), episode.background)
    painted = render_strokes(strokes, canvas, backend="eager")  # one call: a compile would cost far more
    return to_uint8(painted)[0].permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class RenderEpisodeConfig:
    """Play one episode of a paintrnn environment and write it as GIF, SVG and a high-resolution PNG."""

    env: str = "paintrnn/Paint-v0"
    """Environment id."""
    policy: str = "random"
    """'random', 'greedy' (Paint-v0 random search) or 'module:function': function(env, checkpoint) -> policy."""
    checkpoint: str | None = None
    """Checkpoint handed to the policy loader."""
    seed: int = 0
    """Seed of the env (target choice) and of the random policy."""
    out_dir: str = "runs/episode"
    """Folder for the files."""
    name: str = "episode"
    """File name stem: <name>.gif, <name>.svg, <name>_x<k>.png."""
    scale: int = 4
    """GIF enlargement factor (nearest neighbour)."""
    rerender_scale: int = 4
    """The PNG re-renders the strokes at this many times the canvas resolution (stroke envs)."""
    height: int = 64
    """Canvas height."""
    width: int = 64
    """Canvas width."""
    channels: int = 1
    """1 (grey) or 3 (RGB)."""
    max_steps: int | None = None
    """Episode length (default: the env's)."""
    target: str | None = "mnist"
    """Target source ('mnist', 'texture:brick', 'folder:<path>', 'none')."""
    data_dir: str | None = None
    """Where MNIST files are looked for."""


def main(argv: list[str] | None = None) -> dict[str, Path]:
    cfg = parse_config(RenderEpisodeConfig, argv)
    import paintrnn.envs  # noqa: F401 - registers the ids

    options: dict[str, Any] = {"height": cfg.height, "width": cfg.width, "channels": cfg.channels}
    options["target"] = None if cfg.target in (None, "none") else cfg.target
    options["reward"] = "none" if options["target"] is None else "l2_delta"
    options["data_dir"] = cfg.data_dir
    if cfg.max_steps is not None:
        options["max_steps"] = cfg.max_steps
    env = gym.make(cfg.env, **options)
    episode = play_episode(env, load_policy(cfg.policy, env, cfg.checkpoint, cfg.seed), cfg.seed)
    out = Path(cfg.out_dir)
    written = {"gif": write_gif(out / f"{cfg.name}.gif", episode_frames(episode, cfg.scale), duration_ms=120)}
    if episode.strokes is not None:
        svg = strokes_to_svg(episode.strokes, cfg.height, cfg.width, background=episode.background)
        written["svg"] = out / f"{cfg.name}.svg"
        written["svg"].write_text(svg)
        k = cfg.rerender_scale
        written["png"] = save_png(out / f"{cfg.name}_x{k}.png", rerender(episode, cfg.height * k, cfg.width * k))
    print(f"{cfg.env}: {len(episode.rewards)} steps, return {sum(episode.rewards):.3f}")
    for kind, path in written.items():
        print(f"  {kind}: {path}")
    return written
