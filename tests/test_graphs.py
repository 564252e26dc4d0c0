"""CUDA-graph training steps: the eager fallback, optimiser mode switches and (on a GPU) graph replay."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paintrnn.graphs import GraphedStep, prepare_optimizer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def problem(device: str, seed: int = 0) -> tuple[nn.Module, torch.optim.Adam, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)).to(device)
    x, y = torch.randn(32, 6, device=device), torch.randn(32, 1, device=device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2), x, y


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    def step() -> torch.Tensor:
        loss = (model(x) - y).square().mean()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        return torch.stack([loss.detach(), norm.detach()])

    return step


def manual_steps(device: str, lrs: list[float]) -> tuple[nn.Module, list[float]]:
    model, opt, x, y = problem(device)
    losses = []
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        losses.append(make_step(model, opt, x, y)()[0].item())
    return model, losses


LRS = [1e-2, 1e-2, 5e-3, 2e-3, 1e-3]


def test_on_cpu_the_step_is_the_plain_function():
    model, opt, x, y = problem("cpu")
    runner = GraphedStep(make_step(model, opt, x, y), model, opt, enabled=True)  # no GPU: eager
    assert runner.graph is None
    losses = []
    for lr in LRS:
        runner.set_lr(lr)
        losses.append(runner()[0].item())
    reference, expected = manual_steps("cpu", LRS)
    assert losses == expected and losses[-1] < losses[0]
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_prepare_optimizer_switches_modes_both_ways():
    model, opt, x, y = problem("cpu")
    opt.zero_grad()
    make_step(model, opt, x, y)()
    prepare_optimizer(opt, True)
    group = opt.param_groups[0]
    assert group["capturable"] and torch.is_tensor(group["lr"]) and group["lr"].item() == pytest.approx(1e-2)
    saved = opt.state_dict()
    prepare_optimizer(opt, False)
    assert not group["capturable"] and group["lr"] == pytest.approx(1e-2)
    fresh_model, fresh, _, _ = problem("cpu")
    fresh.load_state_dict(saved)  # a checkpoint saved by a graphed run, resumed eagerly
    prepare_optimizer(fresh, False)
    fresh.zero_grad()
    make_step(fresh_model, fresh, x, y)()  # a plain Adam step works again
    assert all(torch.isfinite(p).all() for p in fresh_model.parameters())


def test_graphed_step_needs_a_capturable_optimiser_on_a_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model, opt, x, y = problem("cuda")
    with pytest.raises(ValueError, match="prepare_optimizer"):
        GraphedStep(make_step(model, opt, x, y), model, opt)


@cuda
def test_graph_replay_matches_eager_steps_and_warmup_leaves_no_trace():
    model, opt, x, y = problem("cuda")
    start = [p.detach().clone() for p in model.parameters()]
    prepare_optimizer(opt, True)
    runner = GraphedStep(make_step(model, opt, x, y), model, opt)
    assert runner.graph is not None
    for a, b in zip(model.parameters(), start):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the warm-up steps were undone
    assert all((s["step"] == 0).all() and (s["exp_avg"] == 0).all() for s in opt.state.values())
    losses = []
    for lr in LRS:
        runner.set_lr(lr)
        losses.append(runner()[0].item())
    reference, expected = manual_steps("cuda", LRS)
    assert losses == pytest.approx(expected, rel=1e-5, abs=1e-6)
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
