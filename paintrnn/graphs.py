"""Whole training steps replayed as CUDA graphs.

Recurrent models such as DRAW (T = 64 steps of small LSTMs) launch thousands of tiny kernels per optimiser
step; on a GPU their cost is the launching, not the arithmetic. Capturing forward, backward, gradient
clipping and the optimiser update once as a CUDA graph and replaying it removes that overhead (PyTorch's
"whole network capture"). :class:`GraphedStep` wraps a step function that reads static input buffers and
returns a metrics tensor; on a CPU, or with ``enabled=False``, it simply calls the function.

Rules for the step function (the usual ones for graph capture): read inputs only from tensors that keep
their storage (fill them with ``copy_`` before each call), no host synchronisation (no ``.item()``, no
data-dependent Python branches), randomness from the default CUDA generator (seed it with
``torch.cuda.manual_seed`` before each call: a replay draws from the generator's state at that moment), and
an optimiser made capturable by :func:`prepare_optimizer` (learning rate set through :meth:`GraphedStep.set_lr`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def prepare_optimizer(optimizer: torch.optim.Optimizer, graphed: bool) -> None:
    """Make an Adam-style optimiser fit for graph capture (``capturable``, learning rate in a device tensor,
    step counts on the device) or plain again. Call it after ``load_state_dict`` too: a checkpoint carries the
    mode it was saved in."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        lr = float(group["lr"])
        group["capturable"] = graphed
        group["lr"] = torch.tensor(lr, device=device) if graphed else lr
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(device if graphed else "cpu", torch.float32)


class GraphedStep:
    """Call ``step_fn`` (forward, ``backward()``, clipping, ``optimizer.step()``; returns a metrics tensor) as
    one CUDA graph replay. Construction runs ``warmup`` eager steps on a side stream (needed before capture:
    it allocates the optimiser state and lets ``torch.compile`` finish), then restores the parameters and the
    optimiser state exactly, so the warm-up leaves no trace in the model. The returned metrics live in a
    static buffer that the next call overwrites: consume them (e.g. ``sums += metrics``) before calling again.
    """

    def __init__(
        self,
        step_fn: Callable[[], Tensor],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        enabled: bool = True,
        warmup: int = 3,
    ) -> None:
        self.step_fn, self.model, self.optimizer = step_fn, model, optimizer
        device = next(model.parameters()).device
        self.enabled = enabled and device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.metrics: Tensor | None = None
        if not self.enabled:
            return
        for group in optimizer.param_groups:
            if not (group.get("capturable") and torch.is_tensor(group["lr"])):
                raise ValueError("a graphed step needs a capturable optimiser: call prepare_optimizer(optimizer, True)")
        params = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state = {p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in optimizer.state.items()}
        lrs = [group["lr"].clone() for group in optimizer.param_groups]
        try:
            with torch.random.fork_rng(devices=[device]):
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(warmup):
                        optimizer.zero_grad(set_to_none=True)
                        step_fn()
                torch.cuda.current_stream(device).wait_stream(side)
                self._restore(params, state, lrs)
                optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's pool
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.metrics = step_fn()
        finally:  # capture runs no kernels, but a failed warm-up or capture must not leave a trace either
            torch.cuda.synchronize(device)
            self._restore(params, state, lrs)

    @torch.no_grad()
    def _restore(self, params: dict[str, Tensor], state: dict, lrs: list[Tensor]) -> None:
        """Put back the parameters, optimiser moments and step counts in place (the graph holds their storage)."""
        for key, value in self.model.state_dict().items():
            value.copy_(params[key])
        for p, s in self.optimizer.state.items():
            saved = state.get(p, {})
            for k, v in s.items():
                if torch.is_tensor(v) and k in saved:
                    v.copy_(saved[k])
                elif torch.is_tensor(v):
                    v.zero_()  # state the warm-up created: a fresh optimiser's moments and step are zero
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"].copy_(lr)

    def set_lr(self, lr: float) -> None:
        """Set every parameter group's learning rate (in place when graphed)."""
        for group in self.optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def __call__(self) -> Tensor:
        """One optimiser step; returns the step function's metrics."""
        if self.graph is None:
            self.optimizer.zero_grad(set_to_none=True)
            return self.step_fn()
        self.graph.replay()
        assert self.metrics is not None
        return self.metrics
