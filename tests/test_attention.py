import pytest
import torch

from paintrnn.attention import filterbank, read, window_box, window_from_raw, write


def _raw(b, gx=0.0, gy=0.0, log_s2=0.0, log_d=0.0, log_g=0.0, dtype=torch.float64):
    return torch.tensor([[gx, gy, log_s2, log_d, log_g]] * b, dtype=dtype)


@pytest.mark.parametrize("h,w", [(28, 28), (21, 31)])
def test_full_window_reads_back_the_image(h, w):
    # N = image size, delta = 1, narrow filters centred on the image: the filterbank is the identity.
    n = max(h, w)
    x = torch.rand(2, 1, h, w, dtype=torch.float64)
    win = window_from_raw(_raw(2, log_s2=torch.log(torch.tensor(0.01)).item()), h, w, n)
    assert torch.allclose(win.gx, torch.full((2,), (w - 1) / 2, dtype=torch.float64))
    assert torch.allclose(win.delta, torch.ones(2, dtype=torch.float64))
    # a square n x n read of a non-square image: rows/cols beyond the image read the edge pixel
    fx, fy = filterbank(win, n, h, w)
    glimpse = read(x, fx, fy, win.gamma)
    oy, ox = (n - h) // 2, (n - w) // 2
    assert torch.allclose(glimpse[..., oy : oy + h, ox : ox + w], x, atol=1e-6)


def test_write_is_adjoint_of_read():
    torch.manual_seed(0)
    h, w, n = 17, 23, 5
    win = window_from_raw(torch.randn(3, 5, dtype=torch.float64) * 0.5, h, w, n)
    fx, fy = filterbank(win, n, h, w)
    x = torch.randn(3, 2, h, w, dtype=torch.float64)
    p = torch.randn(3, 2, n, n, dtype=torch.float64)
    lhs = (read(x, fx, fy, torch.ones(3, dtype=torch.float64)) * p).sum()
    rhs = (x * write(p, fx, fy, torch.ones(3, dtype=torch.float64))).sum()
    assert torch.allclose(lhs, rhs)
    # gamma scales read up and write down
    g = win.gamma
    assert torch.allclose(read(x, fx, fy, g), read(x, fx, fy, torch.ones_like(g)) * g[:, None, None, None])
    assert torch.allclose(write(p, fx, fy, g) * g[:, None, None, None], write(p, fx, fy, torch.ones_like(g)))


def test_filters_are_normalised_and_finite_even_when_very_narrow():
    win = window_from_raw(_raw(1, gx=0.9, log_s2=-60.0, log_d=2.0, dtype=torch.float32), 28, 28, 12)
    fx, fy = filterbank(win, 12, 28, 28)
    assert torch.isfinite(fx).all() and torch.isfinite(fy).all()
    assert torch.allclose(fx.sum(-1), torch.ones(1, 12))


def test_filter_centres_follow_the_paper_grid():
    h = w = 28
    n = 5
    win = window_from_raw(_raw(1, log_s2=0.0), h, w, n)
    fx, _ = filterbank(win, n, h, w)
    centres = (fx * torch.arange(w, dtype=fx.dtype)).sum(-1)[0]
    expected = (w - 1) / 2 + (torch.arange(n, dtype=fx.dtype) - (n - 1) / 2) * (w - 1) / (n - 1)
    assert torch.allclose(centres[1:-1], expected[1:-1], atol=1e-2)
    box = window_box(win, n)[0]
    assert box[0] < 1 and box[2] > w - 2


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        window_from_raw(torch.zeros(2, 4), 28, 28, 5)


def test_gradients_flow_through_every_parameter():
    raw = (torch.randn(2, 5, dtype=torch.float64) * 0.3).requires_grad_()
    x = torch.rand(2, 1, 9, 11, dtype=torch.float64)

    def f(r):
        win = window_from_raw(r, 9, 11, 3)
        fx, fy = filterbank(win, 3, 9, 11)
        return read(x, fx, fy, win.gamma)

    assert torch.autograd.gradcheck(f, (raw,))
