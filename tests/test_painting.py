"""The painting pipeline: input conversion, the patch pyramid, exact budgets, crop-to-global mapping, tiled
rendering, outputs (PNG, GIF, SVG, strokes.json) and the stroke-proposer plug-in."""

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from paintrnn.image_metrics import psnr
from paintrnn.painting import (
    BRUSHES,
    ErrorMapProposer,
    ImageNotFoundError,
    MethodUnavailableError,
    PaintConfig,
    PaintError,
    Painting,
    crop_to_global,
    extract_crops,
    fit_size,
    level_batches,
    load_image,
    paint,
    plan_levels,
    register_proposer,
    split_evenly,
)
from paintrnn.photo_baselines import mosaic
from paintrnn.render import render_strokes
from paintrnn.tiles import render_frames, render_tiled

FAST = dict(device="cpu", backend="eager")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A small synthetic 'photo': smooth gradients, a disc and a bar, uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x)], -1)
    img[(x - 0.4) ** 2 + (y - 0.35) ** 2 < 0.04] = (0.9, 0.2, 0.1)
    img[int(0.7 * h) : int(0.8 * h), int(0.1 * w) : int(0.9 * w)] = (0.1, 0.1, 0.6)
    img += rng.normal(0, 0.01, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- input


def test_load_image_converts_every_mode_to_rgb_floats(tmp_path):
    grey = Image.fromarray(np.array([[0, 255], [128, 64]], np.uint8))
    assert torch.allclose(load_image(grey), torch.tensor([[0, 1], [128 / 255, 64 / 255]]).expand(3, 2, 2))
    rgba = Image.fromarray(np.array([[[0, 0, 0, 0], [0, 0, 0, 255]], [[0, 0, 0, 128], [255, 0, 0, 255]]], np.uint8))
    got = load_image(rgba)  # composited on white
    assert torch.allclose(got[:, 0, 0], torch.ones(3)) and torch.allclose(got[:, 0, 1], torch.zeros(3))
    assert torch.allclose(got[:, 1, 0], torch.full((3,), 1 - 128 / 255), atol=1e-6)
    assert torch.allclose(got[:, 1, 1], torch.tensor([1.0, 0, 0]))
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 0, 0))  # magenta
    assert torch.allclose(load_image(cmyk)[:, 0, 0], torch.tensor([1.0, 0, 1]))
    deep = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 65535], [32768, 1000]], np.uint16)).save(deep)
    assert Image.open(deep).mode.startswith("I")
    got = load_image(deep)
    assert got[0, 0, 1] == 1.0 and got[0, 0, 0] == 0.0 and abs(float(got[0, 1, 0]) - 32768 / 65535) < 1e-6
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="L").convert("P")
    pal.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    assert torch.allclose(load_image(pal)[:, 0, 1], torch.tensor([200, 100, 0]) / 255)
    assert load_image(Image.new("1", (4, 4), 1)).min() == 1.0
    one = load_image(np.array([[[12, 34, 56]]], np.uint8))
    assert one.shape == (3, 1, 1) and one.dtype == torch.float32
    assert load_image(torch.rand(1, 5, 7)).shape == (3, 5, 7)


def test_load_image_downscales_large_pictures_with_a_message(tmp_path, capsys):
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 40), (10, 200, 30)).save(path)
    got = load_image(path, max_side=100)
    assert got.shape == (3, 13, 100)
    assert "wide.png (300x40 px) is larger than 100 px; downscaled to 100x13" in capsys.readouterr().err
    assert load_image(path).shape == (3, 40, 300)


def test_bad_inputs_raise_one_line_errors(tmp_path):
    with pytest.raises(ImageNotFoundError, match="no such image file") as info:
        load_image(tmp_path / "missing.jpg")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    junk = tmp_path / "junk.png"
    junk.write_text("not a picture")
    with pytest.raises(PaintError, match="cannot read"):
        load_image(junk)
    with pytest.raises(PaintError, match="is a folder"):
        load_image(tmp_path)
    for kwargs, message in [
        (dict(strokes=0), "strokes must be"),
        (dict(strokes=-3), "strokes must be"),
        (dict(brush="crayon"), "unknown brush 'crayon'"),
        (dict(method="magic"), "unknown method 'magic'"),
        (dict(size=0), "size must be"),
        (dict(overlap=0.4), "overlap"),
    ]:
        with pytest.raises(PaintError, match=message) as info:
            PaintConfig(**kwargs)
        assert "\n" not in str(info.value)
    import paintrnn.painting

    saved = paintrnn.painting.AGENT_MODEL
    paintrnn.painting.AGENT_MODEL = "no-such-model"  # as if the colour painter were not installed
    try:
        with pytest.raises(MethodUnavailableError, match="needs the colour painter"):
            paint(_photo(), 10, method="agent", **FAST)
    finally:
        paintrnn.painting.AGENT_MODEL = saved


# ----------------------------------------------------------------------------------------------- pyramid


def test_budgets_are_split_exactly():
    for total, weights in [(10, [1, 4, 16]), (4000, [1, 4, 16, 64, 256]), (7, [1, 1, 1]), (1, [1, 4])]:
        parts = split_evenly(total, weights)
        assert sum(parts) == total and min(parts) >= 0
    for n in (1, 5, 250, 999, 4000, 10_007):
        for h, w in ((512, 512), (341, 512), (64, 1), (1, 1)):
            levels = plan_levels(n, h, w)
            assert sum(lv.strokes for lv in levels) == n
            assert [lv.grid for lv in levels] == [2**i for i in range(len(levels))]
            assert min(h, w) / levels[-1].grid >= 16 or len(levels) == 1
            patches = sum(lv.grid**2 for lv in levels)
            assert n // patches >= 8 or len(levels) == 1  # every patch of every level gets >= 8 strokes
    assert [lv.grid for lv in plan_levels(4000, 512, 512)] == [1, 2, 4, 8, 16]


def test_patches_of_one_batch_never_reach_the_same_pixel():
    brush = BRUSHES["tapered"]
    for h, w, grid in ((512, 512, 8), (300, 451, 4), (37, 100, 2)):
        from paintrnn.painting import Level

        batches = level_batches(Level(grid, 100), h, w, brush, overlap=0.125, sharpness=4.0)
        assert sum(len(b.owned) for b in batches) == grid * grid and len(batches) == min(4, grid * grid)
        for b in batches:
            ch, cw = b.crop
            assert ch % 8 == 0 and cw % 8 == 0
            o = b.origin.double()
            reach = b.region + o.repeat(1, 2) + torch.tensor([-1, -1, 1, 1]) * (b.radius[1] + 0.5)  # hard footprint
            owned = b.owned.double()
            assert bool((b.region[:, :2] + o <= owned[:, :2]).all() and (b.region[:, 2:] + o >= owned[:, 2:]).all())
            # the crop holds every pixel a stroke can touch inside the picture
            inside = reach.clone()
            inside[:, 0::2] = inside[:, 0::2].clamp(0, w)
            inside[:, 1::2] = inside[:, 1::2].clamp(0, h)
            assert bool((inside[:, :2] >= o).all() and (inside[:, 2] <= o[:, 0] + cw).all())
            assert bool((inside[:, 3] <= o[:, 1] + ch).all())
            for i in range(len(reach)):
                for j in range(i + 1, len(reach)):
                    a, c = reach[i], reach[j]
                    disjoint = a[2] <= c[0] or c[2] <= a[0] or a[3] <= c[1] or c[3] <= a[1]
                    assert disjoint, (h, w, grid, i, j)


def test_patch_strokes_mapped_to_global_coordinates_render_the_same_canvas():
    """Painting each crop in crop coordinates == painting the mapped strokes on the whole canvas (hard mode)."""
    from paintrnn.painting import Level, StrokeParams

    g = torch.Generator().manual_seed(3)
    H, W = 75, 101
    for grid in (1, 2, 4):
        for batch in level_batches(Level(grid, 40), H, W, BRUSHES["tapered"], overlap=0.125, sharpness=4.0):
            B, K = len(batch.owned), 6
            params = StrokeParams(batch, BRUSHES["tapered"], torch.ones(B, K, dtype=torch.bool), torch.device("cpu"))
            local = params.strokes(torch.randn(B, K, 13, generator=g) * 2)  # inside each patch's reach
            canvas = torch.rand(3, H, W, generator=g)
            crops, valid = extract_crops(canvas, batch.origin, batch.crop)
            per_patch = render_strokes(local, crops, mode="hard", backend="eager")  # (B, 3, ch, cw)
            glob = crop_to_global(local, batch.origin, batch.crop, H, W).reshape(1, -1, 13)
            whole = render_strokes(glob, canvas[None], mode="hard", backend="eager")[0]
            again, _ = extract_crops(whole, batch.origin, batch.crop)
            # compare where each patch's strokes can reach: its region +- (largest radius + 1/2)
            ch, cw = batch.crop
            box = batch.region + torch.tensor([-1.0, -1, 1, 1]) * (batch.radius[1] + 0.5)  # (B, 4) crop px
            ys, xs = torch.arange(ch)[:, None] + 0.5, torch.arange(cw)[None, :] + 0.5
            own = (xs >= box[:, 0, None, None]) & (xs <= box[:, 2, None, None])
            own = own & (ys >= box[:, 1, None, None]) & (ys <= box[:, 3, None, None])  # (B, ch, cw)
            diff = ((again - per_patch) * valid * own[:, None]).abs().max()
            assert diff < 1e-5, (grid, float(diff))
            assert float(((per_patch - crops) * valid).abs().max()) > 0.05  # the strokes did paint something


def test_paint_honours_the_budget_exactly_and_is_deterministic():
    photo = _photo(40, 56)
    for n in (1, 7, 45):
        p = paint(photo, n, size=56, iters=2, **FAST)
        assert len(p) == n and sum(p.levels) == n
        assert (p.width, p.height) == (56, 40)
    a = paint(photo, 30, size=56, iters=3, seed=5, **FAST)
    b = paint(photo, 30, size=56, iters=3, seed=5, **FAST)
    c = paint(photo, 30, size=56, iters=3, seed=6, **FAST)
    assert torch.equal(a.strokes, b.strokes) and not torch.equal(a.strokes, c.strokes)


def test_a_one_pixel_picture_paints():
    p = paint(np.array([[[200, 10, 10]]], np.uint8), 5, size=16, iters=2, **FAST)
    assert len(p) == 5 and (p.height, p.width) == (16, 16)
    assert np.allclose(p.render(), np.array([200, 10, 10]) / 255, atol=0.02)


def test_optimisation_beats_its_proposals_and_the_mosaic():
    photo = _photo(64, 64)
    target = load_image(photo)
    raw = paint(photo, 80, size=64, iters=0, **FAST)
    fit = paint(photo, 80, size=64, iters=30, **FAST)
    assert fit.info["psnr"] > raw.info["psnr"] + 2
    assert fit.info["psnr"] > psnr(mosaic(target, 80)[0], target) + 1
    assert abs(fit.info["psnr"] - psnr(torch.from_numpy(fit.render()).permute(2, 0, 1), target)) < 1e-3
    for name in BRUSHES:  # every brush paints, within its opacity range
        p = paint(photo, 20, size=32, iters=2, brush=name, **FAST)
        lo, hi = BRUSHES[name].opacity
        a = p.strokes[:, 8:10]
        assert bool(((a >= lo - 1e-6) & (a <= hi + 1e-6)).all())
        if not BRUSHES[name].taper:
            assert torch.equal(p.strokes[:, 6], p.strokes[:, 7]) and torch.equal(a[:, 0], a[:, 1])


# ----------------------------------------------------------------------------------------------- proposers


class _FixedProposer:
    """Proposes opaque red horizontal strokes across each crop's region centre."""

    def __init__(self):
        self.calls = []

    def propose(self, patches, n):
        B, _, h, w = patches.target.shape
        self.calls.append((B, n, patches.level))
        r = patches.region
        cx, cy = (r[:, 0] + r[:, 2]) / 2 / w, (r[:, 1] + r[:, 3]) / 2 / h
        s = torch.zeros(B, n, 13)
        s[..., 0], s[..., 2], s[..., 4] = cx[:, None] - 0.05, cx[:, None], cx[:, None] + 0.05
        s[..., 1] = s[..., 3] = s[..., 5] = cy[:, None]
        s[..., 6:8], s[..., 8:10], s[..., 10] = 0.02, 1.0, 1.0
        return s


def test_a_registered_proposer_serves_the_agent_methods(monkeypatch):
    import paintrnn.painting as painting

    monkeypatch.setattr(painting, "_PROPOSERS", {})
    proposer = _FixedProposer()
    register_proposer("agent", lambda device: proposer)
    assert painting.available_methods() == ("optimize", "agent", "agent+optimize")
    p = paint(_photo(), 40, size=64, method="agent", iters=5, **FAST)
    assert (
        len(p) == 40
        and proposer.calls[0][2] == 0
        and len(proposer.calls) == sum(min(4, (2**i) ** 2) for i in range(len(p.levels)))
    )
    assert torch.allclose(p.strokes[:, 10:], torch.tensor([1.0, 0, 0]).expand(40, 3), atol=1e-2)  # not optimised
    q = paint(_photo(), 40, size=64, method="agent+optimize", iters=20, **FAST)
    assert (q.strokes[:, :6] - p.strokes[:, :6]).abs().max() > 0.01  # moved by the optimiser
    assert q.info["psnr"] > p.info["psnr"] + 1

    class Wrong:
        def propose(self, patches, n):
            return torch.zeros(1, n, 12)

    with pytest.raises(PaintError, match="proposer returned shape"):
        paint(_photo(), 40, size=64, method="agent", proposer=Wrong(), **FAST)


def test_the_error_map_proposer_puts_strokes_where_the_error_is():
    from paintrnn.painting import PatchBatch

    target = torch.zeros(2, 3, 32, 32)
    target[0, :, 20:28, 4:12] = 1.0  # a white square in the lower left of crop 0
    target[1, :, 2:6, 24:30] = 1.0  # upper right of crop 1
    batch = PatchBatch(
        canvas=torch.zeros_like(target), target=target, valid=torch.ones(2, 1, 32, 32),
        region=torch.tensor([[0.0, 0, 32, 32]] * 2), radius=(0.5, 8.0), patch_side=32.0, opacity=(0.3, 1.0), level=0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip

    def in_squares(s, margin=2):  # within the squares grown by the 5x5 blur of the error map
        cx, cy = s[..., 2] * 32, s[..., 3] * 32
        first = (cx[0] >= 4 - margin) & (cx[0] <= 12 + margin) & (cy[0] >= 20 - margin) & (cy[0] <= 28 + margin)
        second = (cx[1] >= 24 - margin) & (cx[1] <= 30 + margin) & (cy[1] >= 2 - margin) & (cy[1] <= 6 + margin)
        return float(first.float().mean()), float(second.float().mean())

    s = ErrorMapProposer(greedy=False).propose(batch, 16)  # (2, 16, 13), all from the first error map
    assert s.shape == (2, 16, 13)
    assert min(in_squares(s)) > 0.9  # uniform placement would hit ~14% and ~8%
    assert float(s[0, :, 10:].mean()) > 0.6  # the colour of the photo where they sit (mostly white)
    greedy = ErrorMapProposer().propose(batch, 2)  # one by one, each the best of 8, in its best colour
    assert in_squares(greedy) == (1.0, 1.0)
    before = ((target - batch.canvas) ** 2).sum((1, 2, 3))
    after = ((render_strokes(greedy, batch.canvas, mode="hard") - target) ** 2).sum((1, 2, 3))
    assert bool((after < 0.95 * before).all()), (before, after)  # each stroke lowers the error


# ----------------------------------------------------------------------------------------------- rendering


def test_tiled_rendering_equals_the_untiled_renderer_exactly():
    g = torch.Generator().manual_seed(0)
    for H, W, K, tile in ((37, 61, 60, 16), (64, 64, 80, 24), (100, 33, 50, 512), (1, 1, 3, 8)):
        s = torch.rand(K, 13, generator=g)
        s[:, 6:8] *= 0.2
        s[:4, 0] = -0.3  # out of range: clamped like the renderer does
        s[:2, 7] = 0.9
        bg = torch.tensor([0.2, 0.5, 0.9])
        ref = render_strokes(s[None], bg.view(1, 3, 1, 1).expand(1, 3, H, W).contiguous(), mode="hard", backend="eager")
        got = render_tiled(s, H, W, bg, tile=tile)
        assert np.array_equal(got, ref[0].permute(1, 2, 0).numpy()), (H, W, tile)
        u8 = render_tiled(s, H, W, bg, tile=tile, dtype=np.uint8)
        assert np.array_equal(u8, (np.clip(got, 0, 1) * 255 + 0.5).astype(np.uint8))
        frames = render_frames(s, H, W, bg, [0, K // 2, K])
        assert np.array_equal(frames[-1], u8) and np.all(frames[0] == (bg.numpy() * 255 + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="multiple of 8"):
        render_tiled(s, 8, 8, bg, tile=12)


@pytest.mark.slow
def test_compiled_tiled_rendering_agrees_with_eager():
    g = torch.Generator().manual_seed(1)
    s = torch.rand(40, 13, generator=g)
    s[:, 6:8] *= 0.1
    eager = render_tiled(s, 72, 96, (1.0, 1.0, 1.0), tile=32, backend="eager")
    compiled = render_tiled(s, 72, 96, (1.0, 1.0, 1.0), tile=32, backend="compiled")
    assert np.abs(eager - compiled).max() < 1e-3 and np.abs(eager - 1).max() > 0.5


def test_painting_renders_at_any_size_keeping_the_aspect():
    p = paint(_photo(30, 60), 25, size=60, iters=2, **FAST)
    assert p.render().shape == (30, 60, 3)
    big = p.render(240)
    assert big.shape == (120, 240, 3)
    small = torch.nn.functional.avg_pool2d(torch.from_numpy(big).permute(2, 0, 1)[None], 4)[0]
    assert psnr(small, torch.from_numpy(p.render()).permute(2, 0, 1)) > 25  # the same picture, finer
    assert fit_size(30, 60, 7) == (4, 7) and fit_size(1, 1000, 10) == (1, 10)


# ----------------------------------------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def painting() -> Painting:
    torch.set_num_threads(1)
    return paint(_photo(48, 64), 60, size=64, iters=5, **FAST)


def test_strokes_json_round_trips_exactly_and_rerenders(painting, tmp_path):
    path = painting.save_json(tmp_path / "strokes.json")
    data = json.loads(path.read_text())
    assert data["format"] == "paintrnn-strokes" and data["version"] == 1
    assert (data["width"], data["height"]) == (64, 48) and len(data["strokes"]) == 60
    back = Painting.load(path)
    assert torch.equal(back.strokes, painting.strokes)
    assert back.background == painting.background
    assert (back.levels, back.brush, back.width, back.height) == (painting.levels, "round", 64, 48)
    assert np.array_equal(back.render(128), painting.render(128))
    weird = Painting(torch.rand(200, 13) * torch.tensor([1.0] * 6 + [0.5] * 2 + [1.0] * 5), 3, 2)
    weird.strokes[0, 0] = 1e-30
    weird.save_json(tmp_path / "w.json")
    assert torch.equal(Painting.load(tmp_path / "w.json").strokes, weird.strokes)
    bad = dict(data, version=99)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(PaintError, match="version 99"):
        Painting.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(PaintError, match="not a paintrnn strokes file"):
        Painting.load(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:100])
    with pytest.raises(PaintError, match="not valid JSON"):
        Painting.load(tmp_path / "cut.json")


def test_svg_paths_are_the_strokes(painting, tmp_path):
    text = painting.save_svg(tmp_path / "p.svg").read_text()
    paths = re.findall(r'<path d="M ([^"]+)" fill="none" stroke="rgb\((\d+),(\d+),(\d+)\)" stroke-width="([^"]+)"'
                       r' stroke-linecap="round" stroke-opacity="([^"]+)"/>', text)  # fmt: skip
    assert len(paths) == len(painting)
    s = painting.strokes.double()
    for (d, r, g, b, width, opacity), k in zip(paths, s):
        xy = [float(v) for v in d.replace("Q", "").split()]
        assert np.allclose(xy[0::2], (k[0:6:2] * 64).numpy(), atol=1e-3)
        assert np.allclose(xy[1::2], (k[1:6:2] * 48).numpy(), atol=1e-3)
        assert abs(float(width) - float(k[6] + k[7]) * 48) < 1e-3  # diameter, in px of the shorter side
        assert abs(float(opacity) - float(k[8])) < 1e-3
        assert np.allclose([int(r), int(g), int(b)], (k[10:] * 255).numpy(), atol=0.51)


def test_svg_rasterised_looks_like_the_png(painting):
    try:
        import cairosvg
    except (ImportError, OSError):  # OSError: the package is there but not the cairo library
        pytest.skip("needs cairosvg (and the cairo library) to rasterise SVG")
    png = cairosvg.svg2png(bytestring=painting.svg().encode())
    raster = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert raster.shape == (48, 64, 3)
    assert psnr(raster, painting.render(dtype=np.uint8)) > 35


def test_gif_is_coarse_to_fine_and_bounded(painting, tmp_path):
    path = painting.save_gif(tmp_path / "p.gif")
    gif = Image.open(path)
    assert gif.n_frames <= 60 and gif.size == (64, 48) and path.stat().st_size < 8_000_000
    first = np.asarray(gif.convert("RGB"), dtype=np.float64)
    assert np.abs(first - np.array(painting.background) * 255).mean() < 3  # the bare canvas
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB"))
    assert psnr(last, painting.render(dtype=np.uint8)) > 30
    marks = painting.frame_marks(60)
    assert marks[0] == 0 and marks[-1] == len(painting) and len(marks) <= 60
    assert set(np.cumsum(painting.levels).tolist()) <= set(marks)  # every level's end is a frame
    tiny = painting.save_gif(tmp_path / "tiny.gif", max_bytes=3000)
    assert tiny.stat().st_size <= 3000 or Image.open(tiny).size[0] <= 16
    smallest = Image.open(painting.save_gif(tmp_path / "smallest.gif", max_bytes=1))  # cannot fit: ends smallest
    assert max(smallest.size) <= 16 and smallest.n_frames <= 2


def test_the_core_never_imports_agents_or_envs():
    code = (
        "import sys, paintrnn.painting, paintrnn.photo_baselines, paintrnn.tiles, paintrnn.image_metrics\n"
        "bad = [m for m in sys.modules if m.startswith(('paintrnn.agents', 'paintrnn.envs'))]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
