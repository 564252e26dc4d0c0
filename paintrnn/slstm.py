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

Optionally (`up_right=True`) the cell also reads the upper-right neighbour `(i-1, j+1)`, with a third
share of the forget gate; `h[i,j]` then depends on the cone `i' <= i, j' <= j + (i - i')`, which
reaches the rows above to the right of `j`, context a raster-order model can use and the plain layer
only gets through its input window. The cone is as causal as the plain quadrant in raster order and for
any wavefront of slope >= 2.

## The wavefront

A naive implementation visits the `H x W` cells one at a time in raster order. But the two states a
cell needs were computed on earlier *fronts*: with the front index `t = slope * i + j`, the upper
neighbour lies on front `t - slope`, the left neighbour on front `t - 1` (and the upper-right one on
front `t - slope + 1`, earlier when `slope >= 2`). All cells of one front
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

    With `up_right=True` each cell also reads the upper-right neighbour `(i-1, j+1)` (see the module
    docstring): its state then summarises a cone that widens to the right by one column per row above.
    `forward` runs the whole grid as a wavefront; `initial_state` and `step` expose the same
    recurrence one front at a time, carrying the last `slope` fronts, for sampling.
    """

    def __init__(self, input_size: int, hidden_size: int, up_right: bool = False) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.up_right = up_right
        gates = 6 if up_right else 5
        self.input = nn.Linear(input_size, gates * hidden_size)
        self.recurrent = nn.Linear((3 if up_right else 2) * hidden_size, gates * hidden_size, bias=False)
        with torch.no_grad():  # gate order: in, out, forget total, forget split, candidate[, up-right share]
            self.input.bias.zero_()
            self.input.bias[2 * hidden_size : 3 * hidden_size] = 1.0

    @property
    def min_slope(self) -> int:
        """The smallest wavefront slope for which every neighbour lies on an earlier front."""
        return 2 if self.up_right else 1

    def cell(self, gates_x: Tensor, up: State, left: State, up_right: State | None = None) -> State:
        """Update cells given their input projection `(..., gates * hidden)` and neighbour states."""
        n = self.hidden_size
        neighbours = (up[0], left[0], up_right[0]) if self.up_right else (up[0], left[0])
        z = gates_x + self.recurrent(torch.cat(neighbours, dim=-1))  # (..., gates * n)
        s = torch.sigmoid(z[..., : 4 * n])
        memory = left[1] + s[..., 3 * n : 4 * n] * (up[1] - left[1])  # a convex mix of the neighbours' cells
        if self.up_right:
            memory = memory + torch.sigmoid(z[..., 5 * n :]) * (up_right[1] - memory)
        c = s[..., 2 * n : 3 * n] * memory + s[..., :n] * torch.tanh(z[..., 4 * n : 5 * n])
        return s[..., n : 2 * n] * torch.tanh(c), c

    def initial_state(
        self, batch: int, height: int, slope: int, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> tuple[State, ...]:
        """Zero states of the `slope` fronts before front 0, oldest first.

        Each front state is `(B, height + 1, hidden)`: row `r + 1` holds the cell of the front in grid
        row `r`, row 0 is a permanent zero row standing for the border above the grid.
        """
        if slope < self.min_slope:
            raise ValueError(f"this layer needs a wavefront slope >= {self.min_slope}, got {slope}")
        zero = torch.zeros(batch, height + 1, self.hidden_size, device=device, dtype=dtype)
        return ((zero, zero),) * slope

    def step(self, gates_x: Tensor, state: tuple[State, ...], rows: tuple[int, int]) -> tuple[Tensor, tuple]:
        """Advance one front.

        `gates_x`: `(B, n, gates * hidden)` input projection of the front's cells in rows `[lo, hi)`
        (`n = hi - lo`, see `front_rows`); `state`: the last `slope` front states from
        `initial_state`/`step`. Returns the cells' hidden states `(B, n, hidden)` and the new state.
        """
        lo, hi = rows
        (h_up, c_up), (h_left, c_left) = state[0], state[-1]  # fronts t - slope and t - 1
        up = h_up[:, lo:hi], c_up[:, lo:hi]  # grid rows lo-1 .. hi-2 (row -1 is the zero row)
        left = h_left[:, lo + 1 : hi + 1], c_left[:, lo + 1 : hi + 1]  # grid rows lo .. hi-1
        up_right = (state[1][0][:, lo:hi], state[1][1][:, lo:hi]) if self.up_right else None  # front t - slope + 1
        h, c = self.cell(gates_x, up, left, up_right)
        height = h_up.shape[1] - 1
        pad = (0, 0, lo + 1, height - hi)  # zeros off the grid, so borders read as zero states
        return h, state[1:] + ((F.pad(h, pad), F.pad(c, pad)),)

    def forward(self, x: Tensor, slope: int | None = None) -> Tensor:
        """Run the layer over a `(B, H, W, input_size)` grid in `num_fronts(H, W, slope)` steps.

        `slope` defaults to `min_slope`, the fewest steps; the output does not depend on it.
        """
        slope = self.min_slope if slope is None else slope
        b, height, width, _ = x.shape
        state = self.initial_state(b, height, slope, x.device, x.dtype)
        gates = skew(self.input(x), slope)  # (B, H, T, gates * n): all input projections at once
        fronts = []
        for t, front in enumerate(gates.unbind(2)):  # unbind: one cheap backward, not one per slice
            rows = front_rows(t, height, width, slope)
            _, state = self.step(front[:, rows[0] : rows[1]], state, rows)
            fronts.append(state[-1][0][:, 1:])  # (B, H, n) with zeros off the grid
        return unskew(torch.stack(fronts, dim=2), slope, width)  # (B, H, W, n)
