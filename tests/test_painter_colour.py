"""The colour stroke painter: synthetic targets, starting canvases, fitted colours, the patch proposer, the
shipped ``painter-colour`` checkpoint."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from paintrnn.agents import painter_backprop as bp
from paintrnn.agents.painter import (
    Painter,
    PainterSpec,
    choose_strokes,
    chord_coverage,
    fit_colours,
    load_model,
    paint,
)
from paintrnn.agents.painter_targets import TargetSource, parse_targets, random_crops, start_canvases
from PIL import Image

import paintrnn
from paintrnn.painting import PatchBatch
from paintrnn.render import render_strokes
from paintrnn.render import stroke_coverage as render_coverage
from paintrnn.synthetic import synthetic_mixed, synthetic_photos, synthetic_strokes

ASSETS = Path(paintrnn.__file__).parent / "assets"
COLOUR = dict(channels=3, strokes_per_step=3, colour="fit", taper=False, radius_range=(0.015, 0.2),
              opacity_range=(0.3, 1.0))  # fmt: skip


def tiny_colour_config(tmp_path, **kw) -> bp.BackpropConfig:
    base = dict(
        run_dir=str(tmp_path / "run"), device="cpu", targets="synthetic", channels=3, canvas_size=16,
        strokes_per_step=3, steps=2, hidden=32, width=8, batch_size=8, iters=6, eval_size=8, log_every=2,
        checkpoint_every=2, progress=False, start="refine", colour="fit", taper=False, head="spatial",
        radius_range=(0.015, 0.2), opacity_range=(0.3, 1.0),
    )  # fmt: skip
    base.update(kw)
    return bp.BackpropConfig(**base)


def photo_crop(size: int = 32) -> torch.Tensor:
    """A colour photo crop ``(1, 3, size, size)``: the bundled grass photo (greyscale), tinted."""
    grey = np.asarray(Image.open(ASSETS / "textures" / "grass.png").convert("L"), dtype=np.float32) / 255
    crop = torch.from_numpy(grey[100 : 100 + 4 * size, 200 : 200 + 4 * size])[None, None]
    crop = torch.nn.functional.avg_pool2d(crop, 4)  # (1, 1, size, size)
    tint, lift = torch.tensor([1.0, 0.8, 0.5])[None, :, None, None], torch.tensor([0.0, 0.1, 0.2])[None, :, None, None]
    return (crop * tint + lift).clamp(0, 1)


def patch_batch(B: int = 3, h: int = 40, w: int = 48, seed: int = 0, pad: int = 0) -> PatchBatch:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(B, 3, h, w, generator=g)
    canvas = torch.rand(B, 3, h, w, generator=g) * 0.5
    valid = torch.ones(B, 1, h, w)
    if pad:
        valid[..., :, w - pad :] = 0
        target, canvas = target * valid, canvas * valid
    region = torch.tensor([[4.5, 3.25, 30.0, 37.5], [0.0, 0.0, float(w - pad), float(h)], [10.0, 5.0, 21.0, 12.5]])[:B]
    return make_patches(canvas=canvas, target=target, valid=valid, region=region)


def make_patches(**fields) -> PatchBatch:
    """A PatchBatch from its fields by name (level 2, radii 0.5-6 px, a 24 px patch, the round brush's
    opacities), whatever other fields it has grown."""
    defaults = dict(radius=(0.5, 6.0), patch_side=24.0, opacity=(0.3, 1.0), level=2,
                    generator=torch.Generator().manual_seed(1))  # fmt: skip
    names = {f.name for f in dataclasses.fields(PatchBatch)}
    return PatchBatch(**{k: v for k, v in {**defaults, **fields}.items() if k in names})


# ---------------------------------------------------------------------------------------------- targets


def test_synthetic_targets_are_deterministic_in_range_and_varied():
    a = synthetic_strokes(16, 24, 3, torch.Generator().manual_seed(5))
    b = synthetic_strokes(16, 24, 3, torch.Generator().manual_seed(5))
    c = synthetic_strokes(16, 24, 3, torch.Generator().manual_seed(6))
    assert a.shape == (16, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert float(a.std((1, 2, 3)).min()) > 0.01  # every picture has content
    assert float((a[:, 0] - a[:, 1]).abs().mean()) > 0.02  # colour, not grey
    grey = synthetic_strokes(4, 16, 1, torch.Generator().manual_seed(0))
    assert grey.shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="stroke count"):
        synthetic_strokes(2, 16, 3, count=(5, 2))


def test_synthetic_photos_are_deterministic_smooth_and_varied():
    a = synthetic_photos(16, 32, 3, torch.Generator().manual_seed(5))
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, synthetic_photos(16, 32, 3, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, synthetic_photos(16, 32, 3, torch.Generator().manual_seed(6)))
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert float(a.std((1, 2, 3)).min()) > 0.01  # every picture has content
    assert float((a[:, 0] - a[:, 1]).abs().mean()) > 0.01  # colour, not grey
    # photo-like: neighbouring pixels are much closer than in a picture of independent pixels of the same spread
    step = (a[..., 1:] - a[..., :-1]).abs().mean()
    shuffled = a.flatten(2)[..., torch.randperm(32 * 32, generator=torch.Generator().manual_seed(0))].view_as(a)
    assert float(step) < 0.5 * float((shuffled[..., 1:] - shuffled[..., :-1]).abs().mean())
    mixed = synthetic_mixed(6, 16, 3, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    first = synthetic_strokes(3, 16, 3, g)
    assert torch.equal(mixed[:3], first) and torch.equal(mixed[3:], synthetic_photos(3, 16, 3, g))
    with pytest.raises(ValueError, match=">= 0"):
        synthetic_photos(-1)


def test_start_canvases_are_deterministic_partial_paintings():
    target = synthetic_strokes(32, 16, 3, torch.Generator().manual_seed(0))
    a = start_canvases(target, torch.Generator().manual_seed(3))
    b = start_canvases(target, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == target.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    err = ((a - target) ** 2).mean((1, 2, 3))
    flat = ((target.mean((2, 3), keepdim=True) - target) ** 2).mean((1, 2, 3))
    assert float(err.mean()) < float(flat.mean())  # closer than the flat mean colour, on average: partly painted
    assert float(err.min()) > 0  # but not the target itself


def test_target_sources(tmp_path):
    assert parse_targets("folder:/x") == ("folder", Path("/x"))
    with pytest.raises(ValueError, match="mnist, synthetic, photos, mixed or folder"):
        parse_targets("imagenet")
    with pytest.raises(ValueError, match="--channels"):
        tiny_colour_config(tmp_path, channels=2)
    for i in range(2):
        arr = (np.random.default_rng(i).random((40 + 10 * i, 60, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    source = TargetSource(f"folder:{tmp_path}", 3, 16)
    x = source.batch(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 3, 16, 16) and torch.equal(x, source.batch(5, torch.Generator().manual_seed(0)))
    assert torch.equal(source.eval_set(3), source.eval_set(3))
    crops = random_crops(source.images, 4, 8, torch.Generator().manual_seed(1))
    assert crops.shape == (4, 3, 8, 8) and float(crops.max()) <= 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no picture"):
        TargetSource(f"folder:{tmp_path / 'empty'}", 3, 16)
    synthetic = TargetSource("synthetic", 3, 16)
    assert torch.equal(synthetic.eval_set(4), synthetic.eval_set(4))
    for kind in ("photos", "mixed"):
        source = TargetSource(kind, 3, 16)
        x = source.batch(5, torch.Generator().manual_seed(0))
        assert x.shape == (5, 3, 16, 16) and torch.equal(x, source.batch(5, torch.Generator().manual_seed(0)))
        assert torch.equal(source.eval_set(3), source.eval_set(3))
    mnist = TargetSource("mnist", 3, 16, data_source="sample")
    assert mnist.batch(2, torch.Generator().manual_seed(0)).shape == (2, 3, 16, 16)


# ---------------------------------------------------------------------------------------------- colours


def test_fitted_colours_are_least_squares_and_render_as_the_renderer():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 24, 24, generator=g)
    canvas = torch.rand(2, 3, 24, 24, generator=g)
    strokes = torch.rand(2, 5, 13, generator=g)
    strokes[..., 6:8] = 0.05 + 0.1 * strokes[..., 6:8]
    coloured, out = fit_colours(strokes, canvas, target)
    assert torch.allclose(out, render_strokes(coloured, canvas), atol=1e-5)
    assert torch.equal(coloured[..., :10], strokes[..., :10])
    # one opaque stroke covering a uniform target: the fitted colour is the target's
    flat = torch.tensor([0.2, 0.6, 0.9])[None, :, None, None].expand(1, 3, 24, 24)
    one = torch.tensor([[[0.0, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0]]])
    coloured, _ = fit_colours(one, torch.zeros(1, 3, 24, 24), flat)
    assert torch.allclose(coloured[0, 0, 10:], torch.tensor([0.2, 0.6, 0.9]), atol=1e-4)


def test_fitted_colour_minimises_the_error_of_its_stroke():
    g = torch.Generator().manual_seed(1)
    target, canvas = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    stroke = torch.tensor([[[0.2, 0.3, 0.5, 0.6, 0.8, 0.4, 0.12, 0.12, 0.7, 0.7, 0.5, 0.5, 0.5]]])
    coloured, best = fit_colours(stroke, canvas, target)
    best_err = float(((best - target) ** 2).sum())
    for delta in torch.tensor([[0.03, 0, 0], [0, -0.03, 0], [0, 0, 0.03], [-0.03, 0.03, -0.03]]):
        other = coloured.clone()
        other[0, 0, 10:] = (other[0, 0, 10:] + delta).clamp(0, 1)
        assert float(((render_strokes(other, canvas) - target) ** 2).sum()) > best_err


def test_colour_painter_predicts_env_actions_with_fitted_colours():
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, head="spatial", **COLOUR)).eval()
    rng = np.random.default_rng(0)
    obs = {"canvas": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
           "target": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)}  # fmt: skip
    action, _ = painter.predict(obs)
    a = action.reshape(2, 3, 13)
    assert a.shape == (2, 3, 13) and np.abs(a).max() <= 1
    assert np.array_equal(a[..., 6], a[..., 7]) and np.array_equal(a[..., 8], a[..., 9])  # untapered
    canvas = torch.from_numpy(obs["canvas"]).permute(0, 3, 1, 2).float() / 255
    target = torch.from_numpy(obs["target"]).permute(0, 3, 1, 2).float() / 255
    out, _, _ = painter.step(canvas, painter.initial_state(2), target)
    fitted, _ = painter.paint_step(out.mean, canvas, target)
    assert np.allclose((a[..., 10:] + 1) / 2, fitted[..., 10:].detach().numpy(), atol=1e-5)


def test_colour_painter_spec_rules_and_untapered_strokes():
    with pytest.raises(ValueError, match="conditional"):
        Painter(PainterSpec(channels=3, conditional=False, colour="fit"))
    with pytest.raises(ValueError, match="spatial"):
        Painter(PainterSpec(action="grid", nvec=(4, 4), head="spatial"))
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, **COLOUR))
    s = painter.strokes(torch.randn(4, painter.action_dim) * 3)  # (4, k, 13)
    assert torch.equal(s[..., 6], s[..., 7]) and torch.equal(s[..., 8], s[..., 9])
    assert float(s[..., 6].min()) >= 0.015 - 1e-6 and float(s[..., 6].max()) <= 0.2 + 1e-6
    assert float(s[..., 8].min()) >= 0.3 - 1e-6
    target = torch.rand(2, 3, 16, 16)
    start = torch.full((2, 3, 16, 16), 0.5)
    frames, strokes = paint(painter, target, 2, canvas=start)
    assert frames.shape == (2, 6, 3, 16, 16) and strokes.shape == (2, 6, 13)
    assert torch.allclose(frames[:, -1], render_strokes(strokes, start), atol=1e-5)
    assert not torch.allclose(frames[:, 0], start)  # painted on top of the given canvas


# ---------------------------------------------------------------------------------------------- proposer


@pytest.mark.parametrize("n", [1, 3, 4, 13])
def test_propose_returns_n_strokes_inside_region_and_radius(n):
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, **{**COLOUR, "opacity_range": (0.0, 1.0)}))
    patches = patch_batch()
    strokes = painter.propose(patches, n)
    B, _, h, w = patches.target.shape
    assert strokes.shape == (B, n, 13) and strokes.dtype == torch.float32
    assert bool(torch.isfinite(strokes).all())
    reg = patches.region
    xs, ys = strokes[..., 0:6:2] * w, strokes[..., 1:6:2] * h
    assert bool((xs >= reg[:, None, 0:1] - 1e-4).all() and (xs <= reg[:, None, 2:3] + 1e-4).all())
    assert bool((ys >= reg[:, None, 1:2] - 1e-4).all() and (ys <= reg[:, None, 3:4] + 1e-4).all())
    r = strokes[..., 6:8] * min(h, w)
    assert float(r.min()) >= 0.5 - 1e-4 and float(r.max()) <= 6.0 + 1e-4
    assert float(strokes[..., 8:10].min()) >= 0.3 - 1e-6  # the brush's opacities
    assert float(strokes[..., 8:].min()) >= 0 and float(strokes[..., 8:].max()) <= 1
    painter.views = 1  # one view: nothing is chosen by the end result, so
    one, more = painter.propose(patches, n), painter.propose(patches, n + 2)
    assert torch.equal(more[:, :n], one)  # painting order: the first n strokes do not depend on n


def test_propose_with_perturbed_candidates_is_deterministic_and_keeps_painting_order():
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, head="spatial", **COLOUR)).eval()
    painter.views, painter.samples, painter.spread, painter.picks = 2, 3, 0.5, 2
    patches = patch_batch(seed=2)
    a, b = painter.propose(patches, 5), painter.propose(patches, 5)
    assert torch.equal(a, b)  # the perturbations come from the proposer's own stream, not the batch's
    assert torch.equal(painter.propose(patches, 7)[:, :5], a)
    painter.samples = 0
    assert not torch.equal(painter.propose(patches, 5), a)  # the perturbed candidates were chosen too


def test_chord_coverage_is_the_renderers_for_straight_strokes():
    g = torch.Generator().manual_seed(3)
    strokes = torch.rand(2, 6, 13, generator=g)
    strokes[..., 2:4] = (strokes[..., 0:2] + strokes[..., 4:6]) / 2  # straight: P1 midway
    strokes[..., 6:8] = 0.03 + 0.1 * strokes[..., 6:7]
    strokes[..., 9] = strokes[..., 8]
    exact = render_coverage(strokes, 24, 24, mode="hard", backend="eager").flatten(2)
    assert torch.allclose(chord_coverage(strokes, 24), exact, atol=1e-4)
    bent = strokes.clone()
    bent[..., 2:4] += 0.1  # bent: close, not equal
    exact = render_coverage(bent, 24, 24, mode="hard", backend="eager").flatten(2)
    assert float((chord_coverage(bent, 24) - exact).abs().mean()) < 0.02


def test_choose_strokes_takes_the_best_candidate_in_its_least_squares_colour():
    target = torch.full((1, 3, 16, 16), 0.5)
    target[..., 4:12, 4:12] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]  # a red square on grey
    canvas = torch.full((1, 3, 16, 16), 0.5)
    candidates = torch.tensor([
        [0.1, 0.1, 0.15, 0.1, 0.2, 0.1, 0.05, 0.05, 1.0, 1.0, 0.0, 0.0, 0.0],  # a dot in the grey corner
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2, 0.2, 1.0, 1.0, 0.0, 0.0, 0.0],  # a disc on the square
        [0.4, 0.5, 0.5, 0.5, 0.6, 0.5, 0.2, 0.2, 1.0, 1.0, 0.0, 0.0, 0.0],  # a short stroke on it
    ])[None]  # fmt: skip
    chosen, painted = choose_strokes(candidates, canvas, target, 2)
    assert chosen.shape == (1, 2, 13)
    assert torch.equal(chosen[0, 0, :10], candidates[0, 2, :10])  # it covers most of the square
    red, green, blue = chosen[0, 0, 10:].tolist()
    assert red > 0.85 and green < 0.3 and blue < 0.2  # the square's red (least squares: a little beyond it)
    assert not torch.equal(chosen[0, 1, :10], chosen[0, 0, :10])  # never the same candidate twice
    assert torch.allclose(painted, render_strokes(chosen, canvas), atol=1e-6)
    assert float(((painted - target) ** 2).mean()) < float(((canvas - target) ** 2).mean())


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    bp.train_backprop(tiny_colour_config(tmp_path / "a", iters=2))
    source = tmp_path / "a" / "run" / "checkpoint.pt"
    tuned = bp.train_backprop(tiny_colour_config(tmp_path / "b", iters=2, init=str(source), lr=1e-9))
    for x, y in zip(load_model(source).state_dict().values(), tuned.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-5)  # a vanishing learning rate: the weights it started from
    with pytest.raises(ValueError, match="--init"):
        bp.train_backprop(tiny_colour_config(tmp_path / "c", iters=2, init=str(source), hidden=16))


def test_symmetric_views_undo_onto_the_patch():
    from paintrnn.agents.painter import SYMMETRIES, _turn, _unturn_strokes

    g = torch.Generator().manual_seed(0)
    strokes = torch.rand(2, 3, 13, generator=g)
    strokes[..., 6:8] *= 0.2
    for sym in SYMMETRIES:
        picture = render_strokes(strokes, height=16, width=16)
        # the strokes a painter paints on the turned picture, undone, paint the picture itself
        x, y = strokes[..., 0:6:2], strokes[..., 1:6:2]
        transpose, mirror, flip = sym
        x, y = (y, x) if transpose else (x, y)
        x, y = (1 - x if mirror else x), (1 - y if flip else y)
        on_turned = torch.cat([torch.stack([x, y], -1).flatten(-2), strokes[..., 6:]], -1)
        assert torch.allclose(render_strokes(on_turned, height=16, width=16), _turn(picture, *sym), atol=1e-5)
        assert torch.allclose(_unturn_strokes(on_turned, *sym), strokes, atol=1e-6)


def test_more_views_paint_patches_no_worse():
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, head="spatial", **COLOUR)).eval()
    patches = patch_batch(seed=4)
    errors = []
    for views in (1, 8):
        painter.views = views
        out = render_strokes(painter.propose(patches, 6), patches.canvas)
        errors.append(((out - patches.target) ** 2).mean((1, 2, 3)))
    assert float(errors[1].mean()) <= float(errors[0].mean()) + 1e-3  # the identity view is one of the eight


def test_propose_ignores_padding():
    painter = Painter(PainterSpec(image_size=16, hidden=32, width=8, **COLOUR)).eval()
    patches = patch_batch(pad=12)
    a = painter.propose(patches, 5)
    noisy = patches.target + (1 - patches.valid) * torch.rand_like(patches.target)
    b = painter.propose(dataclasses.replace(patches, target=noisy), 5)
    assert torch.equal(a, b)


def test_tiny_colour_painter_beats_blank_canvas_and_its_untrained_self_on_a_photo(tmp_path):
    """A few seconds of training on synthetic strokes: six strokes on a blank (black) canvas bring a photo crop
    far closer than the blank canvas and than the untrained painter's six."""
    cfg = tiny_colour_config(tmp_path, iters=150, batch_size=32, canvas_size=32, hidden=128, width=16, lr=2e-3,
                             log_every=150, checkpoint_every=150, steps=2)  # fmt: skip
    painter = bp.train_backprop(cfg).eval()
    photo = photo_crop(32)
    blank = float((photo**2).mean())
    trained = float(((paint(painter, photo, 2)[0][:, -1] - photo) ** 2).mean())
    untrained = float(((paint(Painter(painter.spec).eval(), photo, 2)[0][:, -1] - photo) ** 2).mean())
    assert trained < 0.5 * blank and trained < 0.6 * untrained, (trained, untrained, blank)  # measured 0.28, 0.33


def test_colour_training_resumes_exactly(tmp_path):
    full = bp.train_backprop(tiny_colour_config(tmp_path / "a"))
    bp.train_backprop(tiny_colour_config(tmp_path / "b", iters=2))
    resumed = bp.train_backprop(tiny_colour_config(tmp_path / "b", resume="force"))
    for x, y in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)
    painter = load_model(tmp_path / "b" / "run" / "checkpoint.pt")
    assert painter.spec.colour == "fit" and painter.spec.channels == 3 and not painter.spec.taper
    assert painter.spec.head == "spatial"


def test_proposals_follow_the_seed_of_the_batch_generator():
    """paint(seed=...) reaches the painter's perturbations through the batch's generator (its initial seed: the
    generator itself is never drawn from, so the same batch proposes the same strokes twice)."""
    painter = paintrnn.load("painter-colour")
    assert painter.samples > 0  # the shipped search perturbs its proposals
    one = make_patches(**{**vars_of(patch_batch()), "generator": torch.Generator().manual_seed(1)})
    two = make_patches(**{**vars_of(patch_batch()), "generator": torch.Generator().manual_seed(2)})
    a = painter.propose(one, 6)
    assert torch.equal(painter.propose(one, 6), a)
    assert not torch.equal(painter.propose(two, 6), a)


def vars_of(patches: PatchBatch) -> dict:
    return {f.name: getattr(patches, f.name) for f in dataclasses.fields(patches)}


def test_shipped_colour_painter_loads_and_proposes():
    painter = paintrnn.load("painter-colour")
    assert isinstance(painter, Painter) and painter.spec.channels == 3 and painter.spec.colour == "fit"
    patches = patch_batch()
    strokes = painter.propose(patches, 12)
    assert strokes.shape == (3, 12, 13)
    # it paints: its strokes, composited over the canvas, bring the crops closer to the photo
    before = ((patches.canvas - patches.target) ** 2).mean()
    after = ((render_strokes(strokes, patches.canvas) - patches.target) ** 2).mean()
    assert float(after) < float(before)
    assert math.isfinite(float(after))
