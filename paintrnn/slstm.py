"""Spatial LSTM layers (Theis & Bethge 2015, "Generative Image Modeling Using Spatial LSTMs").

A spatial LSTM runs over a grid. The cell at pixel `(i, j)` reads its own input and the hidden and
memory states of its upper neighbour `(i-1, j)` and its left neighbour `(i, j-1)`, with one forget
gate per direction:

    z = W x[i,j] + U [h[i-1,j], h[i,j-1]] + b            # five gate pre-activations
    f_up, f_left = σ(f) σ(s), σ(f) (1 - σ(s))            # forget gate per direction
    c[i,j] = f_up c[i-1,j] + f_left c[i,j-1] + σ(in) tanh(g)
    h[i,j] = σ(out) tanh(c[i,j])

The two forget gates are parameterised by a total `σ(f)` and a split `σ(s)`, so that
`f_up + f_left <= 1`. With two free sigmoid gates (as in the paper) the memory can grow like
`(f_up + f_left)^(i + j)` and overflows on images larger than those seen in training (an untrained
layer already gives infinities at 256 x 256); with the sum bounded, `|c| <= (i + j + 1) max |tanh g|`
for every image size.

States outside the grid are zero, so `h[i,j]` depends on exactly the pixels `(i', j')` with `i' <= i`
and `j' <= j`.

## The wavefront

A naive implementation visits the `H x W` cells one at a time in raster order. But the two states a
cell needs were computed on earlier *fronts*: with the front index `t = slope * i + j`, the upper
neighbour lies on front `t - slope` and the left neighbour on front `t - 1`. All cells of one front
are therefore independent and are updated in one batched step, so a whole grid takes
`slope * (H - 1) + W` sequential steps instead of `H * W`. `slope = 1` gives the anti-diagonals; a
larger slope costs more steps but lets a model keep more of the row above in its causal input (see
`paintrnn.agents.texture`). The output of the layer does not depend on the slope.

To make a front a contiguous slice, the per-pixel inputs are *skewed* once (row `i` shifted right by
`slope * i`, `skew`), the fronts are processed as columns of the skewed grid, and the outputs are
skewed back (`unskew`). The input projection `W x + b` of all pixels is one matrix product up front.

Tensors are channel-last: grids are `(B, H, W, C)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = tuple[Tensor, Tensor]
"""Hidden and memory state `(h, c)`, each `(..., hidden)`."""


def num_fronts(height: int, width: int, slope: int) -> int:
    """Number of sequential wavefront steps for an `height x width` grid."""
    return slope * (height - 1) + width


def front_rows(t: int, height: int, width: int, slope: int) -> tuple[int, int]:
    """Rows `[lo, hi)` of the cells `(i, t - slope * i)` of front `t` that lie inside the grid."""
    lo = max(0, -((width - 1 - t) // slope))  # ceil((t - width + 1) / slope)
    hi = min(height, t // slope + 1)
    return lo, hi


def skew(x: Tensor, slope: int) -> Tensor:
    """Shift row `i` of a `(B, H, W, C)` grid right by `slope * i`: `(B, H, T, C)`, `T = num_fronts`.

    `skew(x)[:, i, slope * i + j] == x[:, i, j]`; all other entries are zero. Column `t` of the result
    is front `t`.
    """
    b, h, w, c = x.shape
    length = slope * h + w  # row length before reshaping into rows of length T = length - slope
    flat = F.pad(x, (0, 0, 0, length - w)).reshape(b, h * length, c)
    return flat[:, : h * (length - slope)].reshape(b, h, length - slope, c)


def unskew(s: Tensor, slope: int, width: int) -> Tensor:
    """Inverse of `skew`: `(B, H, T, C)` -> `(B, H, width, C)`."""
    b, h, t, c = s.shape
    flat = F.pad(s.reshape(b, h * t, c), (0, 0, 0, slope * h))
    return flat.reshape(b, h, t + slope, c)[:, :, :width]


class SpatialLSTM(nn.Module):
    """One spatial LSTM layer: `(B, H, W, input_size)` -> `(B, H, W, hidden_size)`.

    `forward` runs the whole grid as a wavefront; `initial_state` and `step` expose the same
    recurrence one front at a time, carrying the last `slope` fronts, for sampling.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.input = nn.Linear(input_size, 5 * hidden_size)
        self.recurrent = nn.Linear(2 * hidden_size, 5 * hidden_size, bias=False)
        with torch.no_grad():  # gate order: in, out, forget total, forget split, candidate
            self.input.bias.zero_()
            self.input.bias[2 * hidden_size : 3 * hidden_size] = 1.0

    def cell(self, gates_x: Tensor, up: State, left: State) -> State:
        """Update cells given their input projection `(..., 5 * hidden)` and neighbour states."""
        n = self.hidden_size
        z = gates_x + self.recurrent(torch.cat([up[0], left[0]], dim=-1))  # (..., 5n)
        s = torch.sigmoid(z[..., : 4 * n])
        c = s[..., 2 * n : 3 * n] * (left[1] + s[..., 3 * n : 4 * n] * (up[1] - left[1]))
        c = c + s[..., :n] * torch.tanh(z[..., 4 * n :])
        return s[..., n : 2 * n] * torch.tanh(c), c

    def initial_state(
        self, batch: int, height: int, slope: int, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> tuple[State, ...]:
        """Zero states of the `slope` fronts before front 0, oldest first.

        Each front state is `(B, height + 1, hidden)`: row `r + 1` holds the cell of the front in grid
        row `r`, row 0 is a permanent zero row standing for the border above the grid.
        """
        zero = torch.zeros(batch, height + 1, self.hidden_size, device=device, dtype=dtype)
        return ((zero, zero),) * slope

    def step(self, gates_x: Tensor, state: tuple[State, ...], rows: tuple[int, int]) -> tuple[Tensor, tuple]:
        """Advance one front.

        `gates_x`: `(B, n, 5 * hidden)` input projection of the front's cells in rows `[lo, hi)`
        (`n = hi - lo`, see `front_rows`); `state`: the last `slope` front states from
        `initial_state`/`step`. Returns the cells' hidden states `(B, n, hidden)` and the new state.
        """
        lo, hi = rows
        (h_up, c_up), (h_left, c_left) = state[0], state[-1]  # fronts t - slope and t - 1
        up = h_up[:, lo:hi], c_up[:, lo:hi]  # grid rows lo-1 .. hi-2 (row -1 is the zero row)
        left = h_left[:, lo + 1 : hi + 1], c_left[:, lo + 1 : hi + 1]  # grid rows lo .. hi-1
        h, c = self.cell(gates_x, up, left)
        height = h_up.shape[1] - 1
        pad = (0, 0, lo + 1, height - hi)  # zeros off the grid, so borders read as zero states
        return h, state[1:] + ((F.pad(h, pad), F.pad(c, pad)),)

    def forward(self, x: Tensor, slope: int = 1) -> Tensor:
        """Run the layer over a `(B, H, W, input_size)` grid in `num_fronts(H, W, slope)` steps."""
        b, height, width, _ = x.shape
        gates = skew(self.input(x), slope)  # (B, H, T, 5n): all input projections at once
        state = self.initial_state(b, height, slope, x.device, x.dtype)
        fronts = []
        for t, front in enumerate(gates.unbind(2)):  # unbind: one cheap backward, not one per slice
            rows = front_rows(t, height, width, slope)
            _, state = self.step(front[:, rows[0] : rows[1]], state, rows)
            fronts.append(state[-1][0][:, 1:])  # (B, H, n) with zeros off the grid
        return unskew(torch.stack(fronts, dim=2), slope, width)  # (B, H, W, n)
