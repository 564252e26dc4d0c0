"""TorchRL as a client (an optional test dependency: pip install torchrl): GymEnv(id) and GymWrapper on the
single envs, GymWrapper on the native vector envs (SAME_STEP and DISABLED autoreset), check_env_specs and
short rollouts across episode ends."""

import warnings

import gymnasium as gym
import numpy as np
import paintrnn.envs
import pytest
import torch

torchrl = pytest.importorskip("torchrl", reason="TorchRL is not installed (optional: pip install torchrl)")
from torchrl.envs import GymEnv, GymWrapper  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

SMALL = {"height": 16, "width": 24, "max_steps": 3}
# Read-v0 ends when the reader emits its end symbol, so the fixed-length rollout checks here do not fit it;
# tests/test_read_env.py covers it with both checkers and the vector env.
FIXED_LENGTH_IDS = [i for i in paintrnn.envs.ENV_IDS if i != "paintrnn/Read-v0"]
OPTIONS = {env_id: SMALL for env_id in paintrnn.envs.CANVAS_ENV_IDS} | {
    "paintrnn/Glimpse-v0": {"data_source": "sample", "glimpses": 3}
}
EPISODE = 3  # steps per episode of every env above

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # the bundled-MNIST-sample notice
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def check_rollout(td, batch: tuple[int, ...], steps: int, env_id: str) -> None:
    """A rollout's tensordict: its shape, done flags exactly at episode ends, and the step counter's values."""
    assert td.batch_size == torch.Size([*batch, steps])
    done = td["next", "done"].reshape(*batch, steps)
    expected = torch.tensor([(t + 1) % EPISODE == 0 for t in range(steps)]).expand_as(done)
    assert torch.equal(done, expected), done
    if env_id != "paintrnn/Glimpse-v0":
        step = td["step"].reshape(*batch, steps)  # (1,)-shaped Box entries, as TorchRL specs them
        assert torch.equal(step, (torch.arange(steps) % EPISODE).expand_as(step))
        assert td["canvas"].dtype == torch.uint8


@pytest.mark.parametrize("env_id", FIXED_LENGTH_IDS)
def test_torchrl_gym_env_by_id_passes_the_spec_check_and_rolls_out(env_id):
    env = GymEnv(env_id, **OPTIONS[env_id])  # passes frameskip first: our TypeError tells it to drop that
    check_env_specs(env, seed=0)
    if env_id != "paintrnn/Glimpse-v0":
        spec = env.observation_spec["step"]
        assert spec.shape == (1,) and spec.dtype == torch.int64
    env.set_seed(0)
    check_rollout(env.rollout(2 * EPISODE, break_when_any_done=False), (), 2 * EPISODE, env_id)


@pytest.mark.parametrize("env_id", FIXED_LENGTH_IDS)
def test_torchrl_gym_wrapper_on_the_single_env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = GymWrapper(gym.make(env_id, **OPTIONS[env_id]))
    check_env_specs(env, seed=0)
    td = env.rollout(10, break_when_any_done=True)  # stops at the first episode end
    assert td.batch_size == torch.Size([EPISODE]) and bool(td["next", "done"][-1])


@pytest.mark.parametrize("autoreset", ["same_step", "disabled"])
@pytest.mark.parametrize("env_id", FIXED_LENGTH_IDS)
def test_torchrl_gym_wrapper_on_the_native_vector_env(env_id, autoreset):
    n = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = gym.make_vec(env_id, n, autoreset_mode=autoreset, **OPTIONS[env_id])
    env = GymWrapper(vec)
    assert env.batch_size == torch.Size([n])
    check_env_specs(env, seed=0)
    env.set_seed(0)
    td = env.rollout(2 * EPISODE + 1, break_when_any_done=False)
    check_rollout(td, (n,), 2 * EPISODE + 1, env_id)
    assert np.isfinite(td["next", "reward"].numpy()).all()
