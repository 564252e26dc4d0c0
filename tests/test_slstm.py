"""Spatial LSTM wavefront against a naive raster loop; discretised logistic mixture likelihood."""

import itertools
import math

import pytest
import torch

from paintrnn.distributions import DiscretizedLogisticMixture
from paintrnn.slstm import SpatialLSTM, front_rows, num_fronts, skew, unskew


def raster_reference(layer: SpatialLSTM, x: torch.Tensor) -> torch.Tensor:
    """The obviously-correct implementation: one cell at a time in raster order, zero states off the grid."""
    b, height, width, _ = x.shape
    zero = torch.zeros(b, layer.hidden_size, dtype=x.dtype)
    states = {}
    for i in range(height):
        for j in range(width):
            up = states.get((i - 1, j), (zero, zero))
            left = states.get((i, j - 1), (zero, zero))
            up_right = states.get((i - 1, j + 1), (zero, zero))  # read only by up_right layers
            states[i, j] = layer.cell(layer.input(x[:, i, j]), up, left, up_right)
    return torch.stack([torch.stack([states[i, j][0] for j in range(width)], 1) for i in range(height)], 1)


@pytest.mark.parametrize("slope", [1, 2, 3])
@pytest.mark.parametrize("shape", [(5, 7), (7, 4), (1, 6), (6, 1)])
def test_skew_places_row_i_at_offset_slope_i_and_unskew_inverts(slope, shape):
    h, w = shape
    x = torch.randn(2, h, w, 3)
    s = skew(x, slope)
    assert s.shape == (2, h, num_fronts(h, w, slope), 3)
    for i, j in itertools.product(range(h), range(w)):
        assert torch.equal(s[:, i, slope * i + j], x[:, i, j])
    assert torch.count_nonzero(s) == torch.count_nonzero(x)  # nothing else is non-zero
    assert torch.equal(unskew(s, slope, w), x)


@pytest.mark.parametrize("slope", [1, 2, 3])
def test_fronts_partition_the_grid_and_neighbours_come_earlier(slope):
    h, w = 6, 5
    seen = {}
    for t in range(num_fronts(h, w, slope)):
        lo, hi = front_rows(t, h, w, slope)
        for i in range(lo, hi):
            j = t - slope * i
            assert 0 <= j < w
            seen[i, j] = t
    assert sorted(seen) == list(itertools.product(range(h), range(w)))
    for (i, j), t in seen.items():
        assert i == 0 or seen[i - 1, j] < t
        assert j == 0 or seen[i, j - 1] < t


@pytest.mark.parametrize("slope, up_right", [(1, False), (2, False), (3, False), (2, True), (3, True)])
def test_wavefront_matches_raster_loop_outputs_and_gradients(slope, up_right):
    torch.manual_seed(0)
    layer = SpatialLSTM(3, 4, up_right).double()
    x = torch.randn(2, 5, 6, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 5, 6, 4, dtype=torch.float64)

    out = layer(x, slope)
    ref = raster_reference(layer, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)

    grads = torch.autograd.grad((out * weight).sum(), [x, *layer.parameters()])
    ref_grads = torch.autograd.grad((ref * weight).sum(), [x, *layer.parameters()])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-12)


def test_stacked_wavefront_matches_raster_for_rectangular_grid():
    torch.manual_seed(1)
    l1, l2 = SpatialLSTM(2, 3).double(), SpatialLSTM(3, 3).double()
    x = torch.randn(1, 3, 8, 2, dtype=torch.float64)
    torch.testing.assert_close(l2(l1(x, 2), 2), raster_reference(l2, raster_reference(l1, x)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("up_right", [False, True])
def test_layer_gradcheck(up_right):
    torch.manual_seed(2)
    layer = SpatialLSTM(2, 3, up_right).double()
    x = torch.randn(1, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_state_depends_on_exactly_the_upper_left_quadrant():
    torch.manual_seed(3)
    layer = SpatialLSTM(1, 4).double()
    x = torch.randn(1, 6, 6, 1, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x, 1)[0, 3, 2].sum(), x)
    nonzero = grad[0, ..., 0] != 0
    i, j = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    assert torch.equal(nonzero, (i <= 3) & (j <= 2))


def test_up_right_state_depends_on_exactly_the_cone_reaching_right_in_the_rows_above():
    torch.manual_seed(3)
    layer = SpatialLSTM(1, 4, up_right=True).double()
    x = torch.randn(1, 6, 8, 1, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0, 4, 2].sum(), x)
    i, j = torch.meshgrid(torch.arange(6), torch.arange(8), indexing="ij")
    assert torch.equal(grad[0, ..., 0] != 0, (i <= 4) & (j <= 2 + (4 - i)))
    with pytest.raises(ValueError, match="slope >= 2"):
        layer(x, 1)  # the upper-right neighbour would lie on the same anti-diagonal


def test_memory_stays_bounded_on_a_large_grid():
    torch.manual_seed(4)
    layer = SpatialLSTM(1, 8)
    with torch.no_grad():
        layer.input.bias[16:24] = 30.0  # forget gates fully open: the worst case for growth
        out = layer(torch.randn(1, 128, 128, 1), 1)
        assert torch.isfinite(out).all()
        # one cell: the two forget gates together keep at most the larger neighbour memory, plus 1
        big = torch.full((4, 8), 1e3)
        _, c = layer.cell(layer.input(torch.randn(4, 1)), (torch.zeros(4, 8), big), (torch.zeros(4, 8), big))
        assert c.abs().max() <= 1e3 + 1
        three = SpatialLSTM(1, 8, up_right=True)
        three.input.bias[16:24] = 30.0
        assert torch.isfinite(three(torch.randn(1, 128, 128, 1))).all()
        _, c = three.cell(three.input(torch.randn(4, 1)), *[(torch.zeros(4, 8), big)] * 3)
        assert c.abs().max() <= 1e3 + 1


# --- discretised logistic mixture -------------------------------------------------------------------------


def test_grey_probabilities_sum_to_one_over_all_256_values():
    torch.manual_seed(0)
    d = DiscretizedLogisticMixture(1, 4)
    params = torch.randn(5, d.num_params, dtype=torch.float64) * 2
    params[:, 8:] -= 2.0  # some narrow components too
    values = torch.arange(256).view(256, 1, 1).expand(256, 5, 1)
    probs = d.log_prob(params.expand(256, 5, -1), values).exp()
    torch.testing.assert_close(probs.sum(0), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-10)


def test_rgb_probabilities_sum_to_one_over_all_colours():
    torch.manual_seed(1)
    d = DiscretizedLogisticMixture(3, 3, levels=8)
    params = torch.randn(2, d.num_params, dtype=torch.float64)
    values = torch.tensor(list(itertools.product(range(8), repeat=3)))  # (512, 3)
    probs = d.log_prob(params[:, None].expand(2, 512, -1), values.expand(2, 512, 3)).exp()
    torch.testing.assert_close(probs.sum(1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-10)


def test_log_prob_matches_direct_cdf_differences():
    """Against the textbook formula `sum_k pi_k (F_k(x + h) - F_k(x - h))` with open outer bins."""
    torch.manual_seed(2)
    d = DiscretizedLogisticMixture(1, 3)
    params = torch.randn(d.num_params, dtype=torch.float64)
    logits, means, log_s = params[:3], params[3:6], params[6:9]
    values = torch.tensor([0, 1, 37, 128, 254, 255])
    x = values.double() / 127.5 - 1
    upper = torch.where(values[:, None] == 255, 1.0, torch.sigmoid((x[:, None] + 1 / 255 - means) / log_s.exp()))
    lower = torch.where(values[:, None] == 0, 0.0, torch.sigmoid((x[:, None] - 1 / 255 - means) / log_s.exp()))
    expected = ((upper - lower) * torch.softmax(logits, 0)).sum(1).log()
    torch.testing.assert_close(d.log_prob(params.expand(6, -1), values[:, None]), expected)


@pytest.mark.parametrize("channels", [1, 3])
def test_samples_follow_the_probabilities(channels):
    torch.manual_seed(3)
    d = DiscretizedLogisticMixture(channels, 2, levels=6)
    params = torch.randn(d.num_params)
    draws = d.sample(params.expand(40000, -1), torch.Generator().manual_seed(0))  # (N, C)
    assert draws.dtype == torch.int64 and draws.min() >= 0 and draws.max() <= 5
    grid = torch.tensor(list(itertools.product(range(6), repeat=channels)))
    probs = d.log_prob(params.expand(len(grid), -1), grid).exp()
    index = sum(draws[:, c] * 6 ** (channels - 1 - c) for c in range(channels))
    freq = torch.bincount(index, minlength=len(grid)).float() / len(draws)
    assert 0.5 * (freq - probs).abs().sum() < 0.03  # total variation; a wrong coupling gives > 0.1


def test_temperature_sharpens_and_zero_like_temperature_picks_the_mode():
    d = DiscretizedLogisticMixture(1, 1)
    params = torch.tensor([0.0, 0.2, math.log(0.1)])
    gen = torch.Generator().manual_seed(0)
    hot = d.sample(d.with_temperature(params.expand(5000, -1), 1.0), gen).float().std()
    cold = d.sample(d.with_temperature(params.expand(5000, -1), 0.1), gen).float()
    assert cold.std() < 0.2 * hot
    assert (cold - round(1.2 * 127.5)).abs().mean() < 2
    with pytest.raises(ValueError, match="temperature"):
        d.with_temperature(params, 0.0)


def test_log_prob_gradcheck():
    d = DiscretizedLogisticMixture(3, 2)
    params = torch.randn(4, d.num_params, dtype=torch.float64, requires_grad=True)
    values = torch.randint(0, 256, (4, 3))
    values[0] = torch.tensor([0, 255, 7])  # both edge bins
    assert torch.autograd.gradcheck(lambda p: d.log_prob(p, values), (params,))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="channels"):
        DiscretizedLogisticMixture(2, 3)
    d = DiscretizedLogisticMixture(1, 3)
    with pytest.raises(ValueError, match="params last dim"):
        d.log_prob(torch.zeros(4, 10), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="channels"):
        d.log_prob(torch.zeros(4, 9), torch.zeros(4, 3, dtype=torch.long))
