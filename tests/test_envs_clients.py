"""Real clients: Stable-Baselines3 PPO on Paint-v0, a CleanRL-style loop on the native vector env (SAME_STEP)."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs  # noqa: F401 - registers the ids
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stable_baselines3_ppo_runs_a_few_hundred_steps_on_paint():
    from stable_baselines3 import PPO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("paintrnn/Paint-v0", max_steps=8)  # the defaults: 64 x 64 grey, MNIST targets
    model = PPO("MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (11,) and env.action_space.contains(action)
    assert obs["canvas"].shape == (64, 64, 1)


class Agent(nn.Module):
    """A tiny Gaussian policy and value head on a pooled canvas and target (CleanRL's continuous PPO shape)."""

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 6, 32), nn.Tanh())
        self.mean, self.value = nn.Linear(32, action_dim), nn.Linear(32, 1)
        self.log_std = nn.Parameter(torch.full((action_dim,), -0.5))

    def features(self, obs: dict) -> torch.Tensor:
        x = torch.cat([torch.as_tensor(obs["canvas"]), torch.as_tensor(obs["target"])], dim=-1)  # (N, H, W, 2)
        x = nn.functional.avg_pool2d(x.permute(0, 3, 1, 2).float() / 255, 4)  # (N, 2, 4, 6)
        return self.body(x)

    def act(self, obs: dict):
        h = self.features(obs)
        dist = torch.distributions.Normal(torch.tanh(self.mean(h)), self.log_std.exp())
        action = dist.sample()
        return action, dist.log_prob(action).sum(-1), self.value(h).squeeze(-1)


def test_cleanrl_style_loop_on_the_native_vector_env_with_same_step_autoreset():
    n, steps, horizon = 8, 4, 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envs = gym.make_vec("paintrnn/Paint-v0", n, autoreset_mode="same_step", height=16, width=24, max_steps=steps)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    torch.manual_seed(0)
    agent = Agent(envs.single_action_space.shape[0])
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-3)
    obs, info = envs.reset(seed=0)
    d0 = info["l2"].copy()
    returns, episode_return = [], np.zeros(n)
    logps, values, rewards, dones = [], [], [], []
    for _ in range(horizon):
        action, logp, value = agent.act(obs)
        obs, reward, terminated, truncated, info = envs.step(action.clamp(-1, 1))  # torch actions, on any device
        episode_return += reward
        done = terminated | truncated
        if done.any():
            # SAME_STEP: `obs` already starts the next episode; the finished one is in final_obs / final_info.
            assert info["_final_obs"].tolist() == done.tolist()
            final_l2 = info["final_info"]["l2"][done]
            # l2_delta rewards telescope: an episode's return is 1 - d_T / d_0.
            np.testing.assert_allclose(episode_return[done], 1 - final_l2 / d0[done], rtol=1e-4, atol=1e-6)
            assert all(info["final_obs"][i]["step"] == steps for i in np.flatnonzero(done))
            assert (obs["step"][done] == 0).all()
            returns += episode_return[done].tolist()
            episode_return[done] = 0.0
            d0[done] = info["l2"][done]
        logps.append(logp)
        values.append(value)
        rewards.append(torch.as_tensor(reward, dtype=torch.float32))
        dones.append(torch.as_tensor(done, dtype=torch.float32))
    assert len(returns) == n * (horizon // steps)
    # One policy-gradient update with discounted returns that stop at episode ends.
    ret, running = [], torch.zeros(n)
    for r, d in zip(reversed(rewards), reversed(dones)):
        running = r + 0.99 * running * (1 - d)
        ret.append(running)
    ret = torch.stack(ret[::-1])  # (T, N)
    values, logps = torch.stack(values), torch.stack(logps)
    advantage = (ret - values).detach()
    loss = -(logps * advantage).mean() + 0.5 * (ret - values).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in agent.parameters())


@pytest.mark.parametrize("env_id", ["paintrnn/PaintGrid-v0", "paintrnn/Draw-v0"])
def test_stable_baselines3_ppo_also_runs_on_the_other_envs(env_id):
    from stable_baselines3 import PPO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id, height=40, width=40, max_steps=4, target=None, reward="none")
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
