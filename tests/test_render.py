"""Stroke renderer: against a slow per-pixel reference, gradients, invariances, bad input."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from paintrnn.render import STROKE_FIELDS, render_strokes, stroke_coverage, stroke_size
from paintrnn.svg import strokes_to_svg


def random_strokes(b: int, k: int, c: int = 3, seed: int = 0, rmax: float = 0.2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(b, k, stroke_size(c), generator=g, dtype=dtype)
    s[..., 6:8] *= rmax / 0.5 * 0.5
    s[..., 8:10] = 0.3 + 0.7 * s[..., 8:10]
    return s


def reference_alpha(stroke: np.ndarray, height: int, width: int, samples: int = 2000) -> np.ndarray:
    """Obviously-correct hard coverage: loop over pixels, closest of ``samples`` points on the curve."""
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = stroke[:10]
    t = np.linspace(0.0, 1.0, samples)
    bx = ((1 - t) ** 2 * x0 + 2 * t * (1 - t) * x1 + t**2 * x2) * width
    by = ((1 - t) ** 2 * y0 + 2 * t * (1 - t) * y1 + t**2 * y2) * height
    side = min(height, width)
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            dist = np.hypot(bx - (j + 0.5), by - (i + 0.5))
            m = int(dist.argmin())
            d, tt = dist[m], t[m]
            r = ((1 - tt) * r0 + tt * r2) * side
            a = (1 - tt) * a0 + tt * a2
            cov = min(max(r - d + 0.5, 0.0), 1.0) - min(max(0.5 - r - d, 0.0), 1.0)
            out[i, j] = a * cov
    return out


def reference_render(strokes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sequential compositing, one stroke after another, on black canvases: (B, K, 10+C) -> (B, C, H, W)."""
    b, k, n = strokes.shape
    canvas = np.zeros((b, n - 10, height, width))
    for bi in range(b):
        for ki in range(k):
            a = reference_alpha(strokes[bi, ki], height, width)
            colour = strokes[bi, ki, 10:, None, None]
            canvas[bi] = canvas[bi] * (1 - a) + colour * a
    return canvas


@pytest.mark.parametrize("height,width", [(12, 19), (17, 10)])
def test_matches_per_pixel_reference(height, width):
    s = random_strokes(2, 3, c=3, seed=height, rmax=0.25)
    ours = render_strokes(s, height=height, width=width, backend="eager").numpy()
    ref = reference_render(s.numpy(), height, width)
    # Dense sampling puts the reference within ~0.01 px of the exact distance; medial-axis pixels of a
    # bent stroke may differ by the chord tolerance.
    err = np.abs(ours - ref)
    assert err.max() < 0.05 and err.mean() < 2e-3, (err.max(), err.mean())


def test_compositing_matches_sequential_definition():
    s = random_strokes(3, 5, c=1, seed=1)
    h, w = 16, 24
    alpha = stroke_coverage(s, h, w, backend="eager")  # (B, K, H, W)
    canvas = torch.full((3, 1, h, w), 0.25, dtype=s.dtype)
    expect = canvas.clone()
    for k in range(5):
        expect = expect * (1 - alpha[:, k, None]) + s[:, k, 10:, None, None] * alpha[:, k, None]
    out = render_strokes(s, canvas, backend="eager")
    torch.testing.assert_close(out, expect)
    assert torch.all(canvas == 0.25), "input canvas modified"


def test_gradcheck_soft_all_parameters():
    s = random_strokes(1, 2, c=2, seed=3, rmax=0.3)
    s[..., :6] = 0.2 + 0.6 * s[..., :6]  # inside the range: no clamp kinks
    s[..., 6:8] = 0.1 + 0.2 * s[..., 6:8]
    s[..., 8:] = 0.2 + 0.6 * s[..., 8:]
    s.requires_grad_(True)
    canvas = torch.rand(1, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    f = lambda st, cv: render_strokes(st, cv, mode="soft", sharpness=3.0, backend="eager")
    assert torch.autograd.gradcheck(f, (s, canvas), eps=1e-6, atol=1e-5)
    render_strokes(s, canvas, mode="soft").sum().backward()
    assert (s.grad[..., :10].abs().sum(dim=(0, 1)) > 0).all(), "a geometric field gets no gradient"


def test_soft_converges_to_hard():
    s = random_strokes(2, 3, seed=4)
    hard = render_strokes(s, height=20, width=20, backend="eager")
    errs = [
        (render_strokes(s, height=20, width=20, mode="soft", sharpness=sh) - hard).abs().max().item()
        for sh in (2.0, 20.0, 200.0, 2000.0)
    ]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 2e-3


def test_reversed_stroke_renders_the_same():
    s = random_strokes(2, 4, seed=5)
    rev = s[..., [4, 5, 2, 3, 0, 1, 7, 6, 9, 8, 10, 11, 12]]
    a = render_strokes(s, height=24, width=31)
    b = render_strokes(rev, height=24, width=31)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_zero_opacity_changes_nothing():
    s = random_strokes(2, 3, seed=6)
    s[..., 8:10] = 0.0
    canvas = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    for mode in ("hard", "soft"):
        torch.testing.assert_close(render_strokes(s, canvas, mode=mode), canvas, atol=0, rtol=0)


@pytest.mark.parametrize("r", [0.05, 0.1])
def test_straight_stroke_covers_capsule_area(r):
    size = 64
    s = torch.tensor([[[0.25, 0.3, 0.5, 0.5, 0.75, 0.7, r, r, 1.0, 1.0, 1.0]]], dtype=torch.float64)
    area = stroke_coverage(s, size, size).sum().item()
    length = math.hypot(0.5, 0.4) * size
    rp = r * size
    expect = 2 * rp * length + math.pi * rp**2
    assert abs(area - expect) / expect < 0.01, (area, expect)


def test_double_resolution_then_average_matches():
    s = random_strokes(2, 3, seed=7, rmax=0.15)
    lo = render_strokes(s, height=24, width=32)
    hi = render_strokes(s, height=48, width=64)
    down = torch.nn.functional.avg_pool2d(hi, 2)
    err = (down - lo).abs()
    assert err.mean() < 0.01 and err.max() < 0.3, (err.mean(), err.max())


def test_batched_equals_per_item_and_float32_matches_float64():
    s = random_strokes(4, 3, seed=8)
    whole = render_strokes(s, height=20, width=28)
    for i in range(4):
        torch.testing.assert_close(whole[i : i + 1], render_strokes(s[i : i + 1], height=20, width=28))
    f32 = render_strokes(s.float(), height=20, width=28)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), whole, atol=2e-4, rtol=0)


def test_grey_and_rgb_and_colour():
    s = random_strokes(1, 1, c=3, seed=9)
    s[..., 8:10] = 1.0
    s[..., 6:8] = 0.3
    rgb = render_strokes(s, height=16, width=16)
    grey = render_strokes(s[..., :11], height=16, width=16)
    assert rgb.shape == (1, 3, 16, 16) and grey.shape == (1, 1, 16, 16)
    torch.testing.assert_close(rgb[:, :1], grey)
    full = rgb[0, :, 8, 8]  # the centre is inside a fat opaque stroke
    torch.testing.assert_close(full, s[0, 0, 10:], atol=1e-9, rtol=0)


def test_clamping_is_documented_ranges():
    s = random_strokes(1, 2, seed=10)
    wild = s.clone()
    wild[..., 0] = -0.5  # x0 -> 0
    wild[..., 6] = 3.0  # r0 -> 0.5
    wild[..., 9] = 1.7  # a2 -> 1
    wild[..., 11] = -2.0  # colour -> 0
    clamped = wild.clone()
    clamped[..., 0], clamped[..., 6], clamped[..., 9], clamped[..., 11] = 0.0, 0.5, 1.0, 0.0
    torch.testing.assert_close(render_strokes(wild, height=12, width=12), render_strokes(clamped, height=12, width=12))


def test_compiled_backend_matches_eager():
    s = random_strokes(3, 2, seed=11).float()
    eager = render_strokes(s, height=24, width=16, mode="soft", backend="eager")
    comp = render_strokes(s, height=24, width=16, mode="soft", backend="compiled")
    torch.testing.assert_close(comp, eager, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    s = random_strokes(2, 3, seed=12)
    cpu = render_strokes(s, height=20, width=30, mode="soft")
    gpu = render_strokes(s.cuda(), height=20, width=30, mode="soft", backend="eager")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_bad_input_raises_naming_the_field():
    s = random_strokes(1, 2, seed=13)
    for i, name in enumerate(STROKE_FIELDS + ("c0",)):
        bad = s.clone()
        bad[0, 1, i] = float("nan") if i % 2 else float("inf")
        with pytest.raises(ValueError, match=f"'{name}'"):
            render_strokes(bad, height=8, width=8)
    with pytest.raises(ValueError, match="10 \\+ C"):
        render_strokes(s[..., :10], height=8, width=8)
    with pytest.raises(ValueError, match="10 \\+ C"):
        render_strokes(s[0], height=8, width=8)
    with pytest.raises(ValueError, match="float32 or float64"):
        render_strokes(s.to(torch.int64), height=8, width=8)
    with pytest.raises(ValueError, match="height"):
        render_strokes(s)
    with pytest.raises(ValueError, match="channels"):
        render_strokes(s, torch.zeros(1, 1, 8, 8, dtype=s.dtype))
    with pytest.raises(ValueError, match="dtype"):
        render_strokes(s, torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="canvas contains NaN"):
        render_strokes(s, torch.full((1, 3, 8, 8), float("nan"), dtype=s.dtype))
    with pytest.raises(ValueError, match="mode"):
        render_strokes(s, height=8, width=8, mode="fuzzy")
    with pytest.raises(ValueError, match="sharpness"):
        render_strokes(s, height=8, width=8, mode="soft", sharpness=0.0)


def test_svg_export():
    s = random_strokes(1, 4, seed=14)[0]
    svg = strokes_to_svg(s, height=60, width=80)
    root = ET.fromstring(svg)
    assert root.get("viewBox") == "0 0 80 60"
    paths = [e for e in root.iter() if e.tag.endswith("path")]
    assert len(paths) == 4
    for p, st in zip(paths, s.numpy()):
        nums = [float(v) for v in p.get("d").replace("M", " ").replace("Q", " ").split()]
        expect = st[:6] * np.array([80, 60, 80, 60, 80, 60])
        np.testing.assert_allclose(nums, expect, atol=1e-3)
        assert p.get("stroke-linecap") == "round"
        np.testing.assert_allclose(float(p.get("stroke-width")), (st[6] + st[7]) * 60, atol=1e-3)
    with pytest.raises(ValueError, match="strokes"):
        strokes_to_svg(np.zeros((2, 9)), height=4, width=4)


def _curve_families(n: int, size: float, g: torch.Generator) -> dict[str, torch.Tensor]:
    """``(n, 6)`` control points in px: random, nearly straight, folded (P2 = P0), degenerate and tiny curves."""
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    out = {"random": rand(n, 6) * size}
    for eps in (1e-3, 1e-7):
        p = rand(n, 6) * size
        p[:, 2:4] = (p[:, :2] + p[:, 4:]) / 2 + eps * size * (rand(n, 2) - 0.5)
        out[f"straight {eps}"] = p
    fold = rand(n, 6) * size
    fold[:, 4:] = fold[:, :2]
    out["fold"] = fold
    out["dot"] = (rand(n, 2) * size).repeat(1, 3)
    out["tiny"] = (rand(n, 2) * size).repeat(1, 3) + rand(n, 6) - 0.5
    return out


def test_closed_form_closest_point_matches_dense_sampling():
    from paintrnn.stroke_kernels import closest as _closest

    g = torch.Generator().manual_seed(15)
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    for name, curves in _curve_families(12, 64.0, g).items():
        px, py = torch.rand(2, 12, 300, generator=g, dtype=torch.float64) * 80 - 8  # also outside the canvas
        c = [curves[:, i, None] for i in range(6)]
        t64, d64 = _closest(px, py, *c)
        assert ((t64 >= 0) & (t64 <= 1)).all(), name
        bx = (1 - t) ** 2 * c[0] + 2 * t * (1 - t) * c[2] + t**2 * c[4]  # (12, 4001) dense samples
        by = (1 - t) ** 2 * c[1] + 2 * t * (1 - t) * c[3] + t**2 * c[5]
        dense = torch.hypot(px[..., None] - bx[:, None], py[..., None] - by[:, None]).amin(-1)  # (12, 300)
        ours = d64.sqrt()
        # Never farther than any sample (the closed form is exact), and within the sample spacing of them.
        assert (ours <= dense + 1e-9).all(), (name, (ours - dense).max())
        assert (dense - ours).max() < 0.05, (name, (dense - ours).max())
        # The returned t is the closest point's parameter: B(t) is at distance d.
        ex = (1 - t64) ** 2 * c[0] + 2 * t64 * (1 - t64) * c[2] + t64**2 * c[4] - px
        ey = (1 - t64) ** 2 * c[1] + 2 * t64 * (1 - t64) * c[3] + t64**2 * c[5] - py
        torch.testing.assert_close(ex**2 + ey**2, d64, atol=1e-9, rtol=1e-9)
        _, d32 = _closest(px.float(), py.float(), *(v.float() for v in c))
        assert (d32.double().sqrt() - ours).abs().max() < 1e-4, name


def test_thin_and_degenerate_strokes_match_per_pixel_reference():
    s = random_strokes(2, 3, c=1, seed=16)
    s[..., 6:8] = 0.03 * s[..., 6:8]  # radius below 0.5 px on 16 px
    s[1, 0, 2:6] = s[1, 0, 0:2].repeat(2)  # a dot: P0 = P1 = P2
    s[1, 1, 2:4] = (s[1, 1, 0:2] + s[1, 1, 4:6]) / 2  # a straight segment
    ours = render_strokes(s, height=16, width=16, backend="eager").numpy()
    ref = reference_render(s.numpy(), 16, 16)
    err = np.abs(ours - ref)
    assert err.max() < 0.02 and err.mean() < 1e-3, (err.max(), err.mean())
    assert ours.max() > 0.05, "thin strokes vanished"


def test_soft_coverage_matches_softplus_definition_and_its_derivatives():
    from paintrnn.stroke_kernels import coverage as _coverage

    g = torch.Generator().manual_seed(17)
    r = (torch.rand(400, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    d = (torch.rand(400, generator=g, dtype=torch.float64) * 6).requires_grad_(True)
    softplus = torch.nn.functional.softplus
    for s in (0.5, 4.0, 60.0):
        ref = sum(
            sign * (softplus(s * (x + 0.5)) - softplus(s * (x - 0.5))) / s for sign, x in ((1, r - d), (-1, -r - d))
        )
        cov, cov_r, cov_d = _coverage(r, d, True, s)
        torch.testing.assert_close(cov, ref)
        ref_r, ref_d = torch.autograd.grad(ref.sum(), (r, d))
        torch.testing.assert_close(cov_r, ref_r)
        torch.testing.assert_close(cov_d, ref_d)


def test_compiled_forward_backward_matches_eager():
    s = random_strokes(3, 3, seed=18, rmax=0.3).float()
    canvas = torch.rand(3, 3, 20, 28)
    grads = {}
    for backend in ("eager", "compiled"):
        p, cv = s.clone().requires_grad_(True), canvas.clone().requires_grad_(True)
        out = render_strokes(p, cv, mode="soft", backend=backend)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[backend] = (out.detach(), p.grad, cv.grad)
    for a, b in zip(grads["eager"], grads["compiled"]):
        torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-3)


def test_auto_backend_compiles_only_large_calls():
    from paintrnn.render import _pick

    assert not _pick("auto", 4 * 5 * 64 * 64).compiled  # the sizes of these tests: eager, no compile wait
    assert _pick("auto", 256 * 64 * 64).compiled  # the benchmark: batch 256 at 64 px
    assert not _pick("eager", 10**9).compiled and _pick("compiled", 1).compiled
