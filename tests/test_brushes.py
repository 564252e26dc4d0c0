"""Brushes: the registry, and the bristle texture everywhere a brush goes: the exact renderer against a slow
per-pixel reference, its hand-written gradients (gradcheck), tiles, crops, resolutions, the optimiser, PNG,
GIF, SVG (its band geometry against the renderer's model, and rasterised against the PNG) and the CLI."""

from __future__ import annotations

import io
import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from paintrnn import brushes
from paintrnn import stroke_kernels as sk
from paintrnn.brushes import BRISTLES, BRUSHES, get_brush
from paintrnn.image_metrics import psnr
from paintrnn.painting import PaintError, Painting, crop_to_global, load_image, paint
from paintrnn.render import render_strokes, stroke_coverage
from paintrnn.stroke_kernels import Bristles
from paintrnn.svg import strokes_to_svg
from paintrnn.tiles import render_frames, render_tiled

FAST = dict(device="cpu", backend="eager")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def strokes(k: int, seed: int, c: int = 3, rmin: float = 0.05, rmax: float = 0.2, bend: float = 0.15):
    """``(1, k, 10 + c)`` float64 strokes inside the canvas, with control points near the chord's middle."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(1, k, 10 + c, generator=g, dtype=torch.float64)
    s[..., 0:2] = 0.15 + 0.7 * s[..., 0:2]
    s[..., 4:6] = 0.15 + 0.7 * s[..., 4:6]
    s[..., 2:4] = (s[..., 0:2] + s[..., 4:6]) / 2 + bend * (2 * s[..., 2:4] - 1)
    s[..., 6:8] = rmin + (rmax - rmin) * s[..., 6:8]
    s[..., 8:10] = 0.4 + 0.6 * s[..., 8:10]
    return s


def reference_alpha(stroke: np.ndarray, height: int, width: int, tex: Bristles, samples: int = 4000) -> np.ndarray:
    """The bristle model by its definition, pixel by pixel: the closest of ``samples`` points on the curve, the
    lateral offset along the normal there, the box filter of the bands' loads as overlap lengths, the loads
    from ``atan2`` of the chord."""
    x0, y0, x1, y1, x2, y2, r0, r2, a0, a2 = stroke[:10]
    p = np.array([[x0 * width, y0 * height], [x1 * width, y1 * height], [x2 * width, y2 * height]])
    t = np.linspace(0.0, 1.0, samples)[:, None]
    curve = (1 - t) ** 2 * p[0] + 2 * t * (1 - t) * p[1] + t**2 * p[2]  # (samples, 2)
    tangent = (1 - t) * (p[1] - p[0]) + t * (p[2] - p[1])
    theta = math.atan2(p[2, 1] - p[0, 1], p[2, 0] - p[0, 0])
    w1, w2 = tex.waves
    h = [0.5 + 0.25 * math.sin(theta + j * w1) + 0.25 * math.sin(2 * theta + j * w2) for j in range(len(tex.edges) + 1)]
    loads = [1 - tex.depth * v**3 for v in h]
    side = min(height, width)
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            pix = np.array([j + 0.5, i + 0.5])
            m = int(np.hypot(*(curve - pix).T).argmin())
            tt, b, v = t[m, 0], curve[m], tangent[m]
            d = float(np.hypot(*(pix - b)))
            r = ((1 - tt) * r0 + tt * r2) * side
            a = ((1 - tt) * a0 + tt * a2) * (1 - tex.dry * tt**2)
            cov = min(max(r - d + 0.5, 0.0), 1.0) - min(max(0.5 - r - d, 0.0), 1.0)
            lat = float(np.array([-v[1], v[0]]) @ (pix - b)) / max(float(np.hypot(*v)), 1e-12)
            bounds = [-np.inf, *(e * r for e in tex.edges), np.inf]
            T = sum(
                rho * max(0.0, min(lat + 0.5, hi) - max(lat - 0.5, lo))
                for rho, lo, hi in zip(loads, bounds, bounds[1:])
            )
            out[i, j] = a * cov * T
    return out


# ----------------------------------------------------------------------------------------------- registry


def test_brushes_module_is_the_registry_and_painting_reexports_it():
    from paintrnn import painting

    assert painting.BRUSHES is BRUSHES and painting.Brush is brushes.Brush
    assert painting.get_brush("bristle") is BRUSHES["bristle"] is get_brush("bristle")
    assert BRUSHES["bristle"].texture is BRISTLES and not BRUSHES["bristle"].taper
    assert all(BRUSHES[n].texture is None for n in ("round", "marker", "tapered", "watercolor"))
    with pytest.raises(brushes.UnknownBrushError, match="unknown brush 'crayon'; choose one of round, .*bristle"):
        get_brush("crayon")
    with pytest.raises(PaintError, match="unknown brush 'crayon'"):
        painting.get_brush("crayon")
    with pytest.raises(PaintError, match="unknown brush 'crayon'"):
        Painting(torch.zeros(0, 13), 8, 8, brush="crayon")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(edges=()), "increasing"),
        (dict(edges=(0.2, 0.1)), "increasing"),
        (dict(edges=(-1.0, 0.0)), "inside"),
        (dict(edges=(0.0,), depth=1.5), "depth"),
        (dict(edges=(0.0,), dry=-0.1), "dry"),
        (dict(edges=(0.0,), waves=(1.0, float("nan"))), "waves"),
    ],
)
def test_bad_bristles_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Bristles(**kwargs)


def test_render_refuses_a_texture_that_is_not_bristles():
    s = strokes(1, 0)
    with pytest.raises(ValueError, match="texture must be None or a paintrnn.stroke_kernels.Bristles"):
        render_strokes(s, height=8, width=8, texture="oil")
    with pytest.raises(ValueError, match="texture must be None"):
        render_tiled(s[0], 8, 8, (0, 0, 0), texture=(0.1, 0.2))


# ----------------------------------------------------------------------------------------------- the renderer


@pytest.mark.parametrize("height,width", [(20, 27), (25, 16)])
def test_bristle_alpha_matches_per_pixel_reference(height, width):
    s = strokes(3, seed=height, rmin=0.1, rmax=0.3)
    s[0, 1, 7] = 0.5 * s[0, 1, 6]  # a tapered one
    s[0, 2, 9] = 0.3  # opacity varies
    ours = stroke_coverage(s, height, width, texture=BRISTLES, backend="eager")[0].numpy()
    for k in range(3):
        ref = reference_alpha(s[0, k].numpy(), height, width, BRISTLES)
        err = np.abs(ours[k] - ref)
        # Dense sampling puts the reference's closest point within ~0.005 px and its tangent within ~1e-3 rad.
        assert err.max() < 0.03 and err.mean() < 1e-3, (k, err.max(), err.mean())
        assert ref.max() > 0.2


def test_bristle_texture_is_streaks_within_the_plain_stroke():
    s = strokes(6, seed=1, rmin=0.15, rmax=0.3)
    plain = stroke_coverage(s, 48, 48, backend="eager")
    textured = stroke_coverage(s, 48, 48, texture=BRISTLES, backend="eager")
    floor = (1 - BRISTLES.depth) * (1 - BRISTLES.dry)
    assert (textured <= plain + 1e-12).all() and (textured >= floor * plain - 1e-12).all()
    ratio = (textured / plain)[plain > 0.3]
    assert ratio.std() > 0.1, "no streaks"  # the bands really differ
    no_fade = Bristles(BRISTLES.edges, depth=0.0, dry=0.0)
    torch.testing.assert_close(stroke_coverage(s, 48, 48, texture=no_fade, backend="eager"), plain)


def test_gradcheck_soft_bristle_all_parameters_and_the_canvas():
    s = strokes(3, seed=3, c=2, rmin=0.12, rmax=0.35)
    s[..., 8:] = 0.2 + 0.6 * s[..., 8:]
    s[0, 1, 7] = 1.3 * s[0, 1, 6]  # tapered: r and a vary along t
    s[0, 1, 9] = 0.5 * s[0, 1, 8]
    s.requires_grad_(True)
    canvas = torch.rand(1, 2, 8, 10, dtype=torch.float64, requires_grad=True)
    f = lambda st, cv: render_strokes(st, cv, mode="soft", sharpness=2.5, backend="eager", texture=BRISTLES)
    assert torch.autograd.gradcheck(f, (s, canvas), eps=1e-6, atol=1e-5)
    render_strokes(s, canvas, mode="soft", texture=BRISTLES, backend="eager").sum().backward()
    assert (s.grad[..., :10].abs().sum(dim=(0, 1)) > 0).all(), "a geometric field gets no gradient"


def test_gradcheck_bristle_on_large_bent_strokes_soft_and_hard():
    s = strokes(2, seed=4, c=1, rmin=0.25, rmax=0.4, bend=0.25)
    s.requires_grad_(True)
    for mode in ("soft", "hard"):  # hard: piecewise smooth; random float64 strokes never sit on a clamp's kink
        f = lambda st, m=mode: stroke_coverage(st, 14, 14, mode=m, sharpness=2.0, texture=BRISTLES)
        assert torch.autograd.gradcheck(f, (s,), eps=1e-6, atol=1e-5), mode


def test_soft_bristle_converges_to_hard():
    s = strokes(3, seed=5)
    hard = render_strokes(s, height=24, width=24, texture=BRISTLES, backend="eager")
    errs = [
        (render_strokes(s, height=24, width=24, mode="soft", sharpness=sh, texture=BRISTLES) - hard).abs().max().item()
        for sh in (2.0, 20.0, 200.0, 2000.0)
    ]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 2e-3


def test_bristle_pattern_is_the_same_in_a_crop_and_at_double_resolution():
    local = strokes(4, seed=6, rmin=0.1, rmax=0.2)  # in a 32 x 24 px crop whose top-left pixel is (13, 5)
    origin, crop = torch.tensor([[13, 5]]), (32, 24)
    s = crop_to_global(local, origin, crop, 40, 56)  # the same strokes in the whole 40 x 56 px picture
    whole = stroke_coverage(s, 40, 56, texture=BRISTLES, backend="eager")[0]  # (K, 40, 56)
    part = stroke_coverage(local, 32, 24, texture=BRISTLES, backend="eager")[0]
    torch.testing.assert_close(part, whole[:, 5:37, 13:37], atol=1e-9, rtol=0)
    assert part.amax((1, 2)).min() > 0.3
    # Twice the resolution, averaged back: the same picture up to the box filter's resampling.
    big = stroke_coverage(s, 80, 112, texture=BRISTLES, backend="eager")[0]
    err = (F.avg_pool2d(big[:, None], 2)[:, 0] - whole).abs()
    assert err.mean() < 0.01 and err.max() < 0.25, (err.mean(), err.max())


def test_compiled_bristle_forward_backward_matches_eager():
    s = strokes(3, seed=7).float()
    canvas = torch.rand(1, 3, 20, 28)
    grads = {}
    for backend in ("eager", "compiled"):
        p, cv = s.clone().requires_grad_(True), canvas.clone().requires_grad_(True)
        out = render_strokes(p, cv, mode="soft", backend=backend, texture=BRISTLES)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[backend] = (out.detach(), p.grad, cv.grad)
    for a, b in zip(grads["eager"], grads["compiled"]):
        torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bristle_matches_cpu():
    s = strokes(4, seed=8)
    cpu = render_strokes(s, height=40, width=40, mode="soft", texture=BRISTLES, backend="eager")
    gpu = render_strokes(s.cuda(), height=40, width=40, mode="soft", texture=BRISTLES, backend="eager")
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_tiled_bristle_render_equals_the_renderer_bit_for_bit():
    s = strokes(30, seed=9, rmin=0.01, rmax=0.1)[0].float()
    bg = (0.9, 0.8, 0.7)
    canvas = torch.tensor(bg)[None, :, None, None].expand(1, 3, 45, 70).contiguous()
    ref = render_strokes(s[None], canvas, mode="hard", backend="eager", texture=BRISTLES)[0].permute(1, 2, 0).numpy()
    tiled = render_tiled(s, 45, 70, bg, tile=16, backend="eager", texture=BRISTLES)
    np.testing.assert_array_equal(tiled, ref)
    plain = render_tiled(s, 45, 70, bg, tile=16, backend="eager")
    assert np.abs(plain - tiled).max() > 0.05  # the texture did reach the tiles
    frames = render_frames(s, 45, 70, bg, [0, 10, 30], texture=BRISTLES)
    np.testing.assert_array_equal(frames[-1], (np.clip(ref, 0, 1) * 255 + 0.5).astype(np.uint8))


# ----------------------------------------------------------------------------------------------- painting


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x)], -1)
    img[(x - 0.4) ** 2 + (y - 0.35) ** 2 < 0.04] = (0.9, 0.2, 0.1)
    img[int(0.7 * h) : int(0.8 * h), int(0.1 * w) : int(0.9 * w)] = (0.1, 0.1, 0.6)
    img += rng.normal(0, 0.01, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bristle_painting() -> Painting:
    torch.set_num_threads(1)
    return paint(_photo(), 60, size=64, iters=20, brush="bristle", method="optimize", **FAST)


def test_optimiser_improves_a_bristle_painting(bristle_painting):
    photo = _photo()
    raw = paint(photo, 60, size=64, iters=0, brush="bristle", method="optimize", **FAST)
    assert bristle_painting.info["psnr"] > raw.info["psnr"] + 1.5, (raw.info["psnr"], bristle_painting.info["psnr"])
    # info's PSNR is that of the canvas painted with the texture: the painting's render is that canvas.
    target = load_image(photo)
    again = psnr(torch.from_numpy(bristle_painting.render(backend="eager")).permute(2, 0, 1), target)
    assert abs(bristle_painting.info["psnr"] - again) < 1e-3
    strokes_ = bristle_painting.strokes
    assert torch.equal(strokes_[:, 6], strokes_[:, 7]) and bool((strokes_[:, 8] >= 0.5 - 1e-6).all())


def test_bristle_painting_png_gif_json_round_trip(bristle_painting, tmp_path):
    files = bristle_painting.save(tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["brush"] == "bristle"
    back = Painting.load(files["json"])
    np.testing.assert_array_equal(back.render(dtype=np.uint8), np.asarray(Image.open(files["png"])))
    plain = Painting(back.strokes, back.width, back.height, back.background, brush="round")
    assert np.abs(plain.render() - back.render()).mean() > 0.005  # the brush, not just the strokes, is recorded
    gif = Image.open(files["gif"])
    gif.seek(gif.n_frames - 1)
    assert psnr(np.asarray(gif.convert("RGB")), back.render(dtype=np.uint8)) > 30


def _band_paths(svg: str) -> list[tuple[list[np.ndarray], float, float]]:
    """Per stroke group of a bristle SVG: each band path's pieces as absolute quadratics ``(3, 2)``, width and
    opacity."""
    groups = []
    root = ET.fromstring(svg)
    for g in (e for e in root.iter() if e.tag.endswith("}g")):
        bands = []
        for path in g:
            tokens = re.findall(r"[MlqL]|-?[\d.]+", path.get("d"))
            pos, pieces, i = None, [], 0
            while i < len(tokens):
                cmd = tokens[i]
                n = {"M": 2, "l": 2, "q": 4}[cmd]
                nums = np.array([float(v) for v in tokens[i + 1 : i + 1 + n]]).reshape(-1, 2)
                if cmd == "M":
                    pos = nums[0]
                elif cmd == "l":
                    pos = pos + nums[0]
                else:
                    pieces.append(np.stack([pos, pos + nums[0], pos + nums[1]]))
                    pos = pos + nums[1]
                i += 1 + n
            bands.append((pieces, float(path.get("stroke-width")), float(path.get("stroke-opacity", 1.0))))
        groups.append(bands)
    return groups


def _min_curvature_radius(p: np.ndarray) -> float:
    """Smallest radius of curvature (px) of the quadratic Bézier with control points ``p`` (3, 2)."""
    t = np.linspace(0, 1, 401)[:, None]
    v, a = 2 * ((1 - t) * (p[1] - p[0]) + t * (p[2] - p[1])), 2 * (p[0] - 2 * p[1] + p[2])
    return float((np.hypot(*v.T) ** 3 / np.maximum(np.abs(v[:, 0] * a[1] - v[:, 1] * a[0]), 1e-12)).min())


def test_svg_bands_follow_the_renderer_bristle_model_stroke_by_stroke():
    """Every band path of the SVG runs at a constant lateral offset from its stroke (where the stroke's offset
    curves exist: radius below half its smallest radius of curvature), and the renderer's texture there
    (between the bands' edges) is the path's opacity."""
    s = strokes(16, seed=10, rmin=0.08, rmax=0.12, bend=0.1)[0]
    s[:, 7] = s[:, 6]  # one radius: the bands keep their offsets along the stroke
    H, W = 120, 150
    svg = strokes_to_svg(s, H, W, texture=BRISTLES)
    groups = _band_paths(svg)
    assert len(groups) == len(s)
    side, checked = min(H, W), 0
    for k, bands in enumerate(groups):
        row = s[k].numpy()
        r = float(row[6]) * side
        p = row[:6] * np.array([W, H] * 3)
        if r > 0.5 * _min_curvature_radius(p.reshape(3, 2)):
            continue
        checked += 1
        x0, y0, x1, y1, x2, y2 = (torch.tensor([[v]], dtype=torch.float64) for v in p)
        rho = torch.cat(sk.loads(x2 - x0, y2 - y0, BRISTLES)[0], 1)[0].numpy()
        assert 2 <= len(bands) <= len(rho)
        total = sum(w for _, w, _ in bands)
        assert abs(total - (2 * r + 2 * 1.5 + 0.2 * (len(bands) - 1))) < 0.05  # the bands tile the stroke
        for pieces, width, opacity in bands:
            u = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)[:, None]
            pts = torch.cat(
                [(1 - u) ** 2 * q[0] + 2 * u * (1 - u) * q[1] + u**2 * q[2] for q in map(torch.tensor, pieces)]
            )
            px, py = pts[:, 0][None], pts[:, 1][None]  # (1, P) points on the band's centre line
            t, _ = sk.closest(px, py, x0, y0, x1, y1, x2, y2)
            sp = 1 - t
            ex = sp * sp * x0 + 2 * sp * t * x1 + t * t * x2 - px
            ey = sp * sp * y0 + 2 * sp * t * y1 + t * t * y2 - py
            lat = sk.lateral(ex, ey, x1 - x0 + (x0 - 2 * x1 + x2) * t, y1 - y0 + (y0 - 2 * y1 + y2) * t)[0][0]
            assert float(lat.max() - lat.min()) < 0.1, "a band does not run parallel to its stroke"
            centre = float(lat.mean())
            lo, hi = centre - width / 2, centre + width / 2
            inner = (max(lo, -r) + 0.6, min(hi, r) - 0.6)  # in the band, half a pixel from its edges
            assert inner[1] > inner[0]
            grid = torch.linspace(*inner, 7, dtype=torch.float64)[None]
            T = sk.bristle(grid, torch.full_like(grid, r), [torch.tensor([[v]]) for v in rho], BRISTLES, False, 1.0)[0]
            assert float((T - opacity).abs().max()) < 0.1 + 1e-3, (k, T, opacity)  # merged: within 0.1
    assert checked >= 8


def test_svg_of_one_bristle_stroke_rasterised_matches_its_alpha():
    cairosvg = pytest.importorskip("cairosvg", exc_type=ImportError)
    s = strokes(10, seed=11, c=1, rmin=0.05, rmax=0.15, bend=0.1)[0]
    s[:, 7] = s[:, 6]  # the SVG draws one radius
    s[:, 10] = 1.0
    errors = []
    for row in s:
        alpha = stroke_coverage(row[None, None], 96, 96, texture=BRISTLES, backend="eager")[0, 0].numpy()
        svg = strokes_to_svg(row[None], 96, 96, background=0.0, texture=BRISTLES)
        raster = np.asarray(Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode()))).convert("L")) / 255
        errors.append(np.abs(raster - alpha).mean())
    # Straight or gently bent strokes: a mean alpha error of 0.2-0.5% per stroke (seams, cap slivers, the fade's
    # gradient along the chord); 1% bounds it.
    assert max(errors) < 0.01, errors


def test_svg_of_a_bristle_painting_rasterised_looks_like_the_png(bristle_painting):
    cairosvg = pytest.importorskip("cairosvg", exc_type=ImportError)
    svg = bristle_painting.svg()
    assert svg.count("<mask") == len(bristle_painting)
    raster = np.asarray(Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode()))).convert("RGB"))
    assert raster.shape == (48, 64, 3)
    png = bristle_painting.render(dtype=np.uint8)
    plain = Painting(bristle_painting.strokes, 64, 48, bristle_painting.background, brush="round").svg()
    plain_raster = np.asarray(Image.open(io.BytesIO(cairosvg.svg2png(bytestring=plain.encode()))).convert("RGB"))
    assert psnr(raster, png) > 35  # about 40 dB
    assert psnr(raster, png) > psnr(plain_raster, png) + 5  # the texture is in the SVG


def test_paint_and_render_cli_with_the_bristle_brush(tmp_path, capsys):
    from paintrnn.agents.paint_cli import paint_main, render_main

    Image.fromarray(_photo()).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    args = [str(tmp_path / "photo.png"), "--strokes", "20", "--size", "32", "--brush", "bristle", "--out", str(out)]
    fast = ["--iters", "2", "--backend", "eager", "--device", "cpu", "--threads", "1", "--no-progress"]
    assert paint_main([*args, *fast]) == 0
    assert "bristle" in capsys.readouterr().out
    assert json.loads((out / "strokes.json").read_text())["brush"] == "bristle"
    assert "<mask" in (out / "painting.svg").read_text()
    assert render_main([str(out / "strokes.json"), "--size", "32", "--out", str(tmp_path / "same.png")]) == 0
    same = np.asarray(Image.open(tmp_path / "same.png"))
    np.testing.assert_array_equal(same, np.asarray(Image.open(out / "painting.png")))
    assert render_main([str(out / "strokes.json"), "--size", "64", "--out", str(tmp_path / "big.png")]) == 0
    big = np.asarray(Image.open(tmp_path / "big.png"), dtype=np.float64)
    down = big.reshape(same.shape[0], 2, same.shape[1], 2, 3).mean((1, 3))
    assert psnr(down.astype(np.uint8), same) > 28  # the same painting, up to resampling
