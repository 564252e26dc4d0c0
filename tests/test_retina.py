"""The glimpse sensor against a slow per-pixel reference, its boxes, gradients, and the canvas maker."""

import numpy as np
import pytest
import torch

from paintrnn.retina import box_pyramid, glimpse, glimpse_boxes, place_on_canvas, soft_glimpse


def reference_glimpse(image: np.ndarray, x: float, y: float, size: int, scales: int) -> np.ndarray:
    """Obviously correct: crop each patch pixel by pixel (zeros outside), then average s x s blocks."""
    c, h, w = image.shape
    cx, cy = int(np.round((x + 1) / 2 * w)), int(np.round((y + 1) / 2 * h))
    out = []
    for i in range(scales):
        s, f = size * 2**i, 2**i
        patch = np.zeros((c, s, s))
        for r in range(s):
            for q in range(s):
                yy, xx = cy - s // 2 + r, cx - s // 2 + q
                if 0 <= yy < h and 0 <= xx < w:
                    patch[:, r, q] = image[:, yy, xx]
        out.append(patch.reshape(c, size, f, size, f).mean(axis=(2, 4)))
    return np.concatenate(out, 0)


@pytest.mark.parametrize("size,scales,channels,hw", [(8, 1, 1, (28, 28)), (5, 3, 2, (17, 23)), (4, 2, 3, (60, 60))])
def test_glimpse_matches_reference(size, scales, channels, hw):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, channels, *hw, generator=gen, dtype=torch.float64)
    loc = torch.rand(6, 2, generator=gen, dtype=torch.float64) * 2 - 1
    loc[0] = torch.tensor([-1.0, -1.0])  # corners: most of the patch outside the image
    loc[1] = torch.tensor([1.0, 1.0])
    out = glimpse(images, loc, size, scales)
    assert out.shape == (6, scales * channels, size, size)
    for b in range(6):
        ref = reference_glimpse(images[b].numpy(), *loc[b].tolist(), size, scales)
        np.testing.assert_allclose(out[b].numpy(), ref, atol=1e-12)


def test_glimpse_centre_of_known_image():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    out = glimpse(image, torch.zeros(1, 2), 2, 2)
    assert out[0, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]  # the central 2x2
    assert out[0, 1].tolist() == [[2.5, 4.5], [10.5, 12.5]]  # the whole 4x4, pooled 2x2


def test_glimpse_gradcheck_in_images():
    images = torch.rand(2, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    loc = torch.tensor([[0.1, -0.3], [0.9, 0.8]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: glimpse(x, loc, 3, 2), (images,))


@pytest.mark.parametrize("size,scales,channels,hw", [(8, 1, 1, (28, 28)), (5, 3, 2, (17, 23)), (12, 3, 1, (32, 128))])
def test_soft_glimpse_equals_the_glimpse_on_pixel_boundaries(size, scales, channels, hw):
    gen = torch.Generator().manual_seed(0)
    h, w = hw
    images = torch.rand(8, channels, h, w, generator=gen, dtype=torch.float64)
    px = torch.stack([torch.randint(0, w + 1, (8,), generator=gen), torch.randint(0, h + 1, (8,), generator=gen)], 1)
    px[0], px[1] = torch.tensor([0, 0]), torch.tensor([w, h])  # the corners: mostly outside the image
    loc = 2 * px.double() / torch.tensor([w, h]) - 1
    np.testing.assert_allclose(soft_glimpse(images, loc, size, scales).numpy(),
                               glimpse(images, loc, size, scales).numpy(), atol=1e-12)  # fmt: skip
    pyramid = box_pyramid(images, size, scales)  # precomputed once, the same patches
    assert torch.equal(soft_glimpse(images, loc, size, scales, pyramid), soft_glimpse(images, loc, size, scales))


def test_soft_glimpse_blends_neighbours_and_passes_gradcheck_in_the_location():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 1, 20, 24, generator=gen, dtype=torch.float64)
    left = torch.tensor([[2 * 9 / 24 - 1, 2 * 7 / 20 - 1]] * 3, dtype=torch.float64)  # pixel boundary (9, 7)
    right = left + torch.tensor([2 / 24, 0.0], dtype=torch.float64)  # one pixel to the right
    mid = soft_glimpse(images, (left + right) / 2, 4, 2)
    np.testing.assert_allclose(mid.numpy(), ((glimpse(images, left, 4, 2) + glimpse(images, right, 4, 2)) / 2).numpy(),
                               atol=1e-12)  # fmt: skip
    loc = (left + torch.tensor([0.013, -0.021], dtype=torch.float64)).requires_grad_()  # between boundaries
    assert torch.autograd.gradcheck(lambda at, x: soft_glimpse(x, at, 4, 2), (loc, images.clone().requires_grad_()))
    soft_glimpse(images, loc, 4, 2).sum().backward()
    assert loc.grad.abs().min() > 0  # where it looks gets a gradient


def test_boxes_agree_with_the_crop():
    loc = torch.tensor([[0.0, 0.0], [-0.5, 0.25]])
    boxes = glimpse_boxes(loc, 28, 28, 8, 2)
    assert boxes.shape == (2, 2, 4)
    assert boxes[0, 0].tolist() == [10, 10, 17, 17] and boxes[0, 1].tolist() == [6, 6, 21, 21]
    image = torch.zeros(2, 1, 28, 28)
    for b in range(2):  # a patch of ones exactly inside box 0 fills the sharp glimpse
        x0, y0, x1, y1 = boxes[b, 0].tolist()
        image[b, 0, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    assert torch.equal(glimpse(image, loc, 8, 1), torch.ones(2, 1, 8, 8))


@pytest.mark.parametrize(
    "images,loc,msg",
    [
        (torch.zeros(2, 28, 28), torch.zeros(2, 2), "images"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, 2), "floating"),
        (torch.zeros(2, 1, 28, 28), torch.zeros(3, 2), "loc must have shape"),
        (torch.zeros(1, 1, 28, 28), torch.tensor([[float("nan"), 0.0]]), "NaN"),
        (torch.zeros(1, 1, 28, 28), torch.tensor([[1.5, 0.0]]), r"\[-1, 1\]"),
    ],
)
def test_glimpse_bad_input(images, loc, msg):
    with pytest.raises(ValueError, match=msg):
        glimpse(images, loc, 8)


def test_place_on_canvas_keeps_the_digit_and_is_seeded():
    digits = torch.rand(5, 1, 28, 28)
    a, corners = place_on_canvas(digits, 60, generator=torch.Generator().manual_seed(1))
    b, _ = place_on_canvas(digits, 60, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (5, 1, 60, 60)
    for i, (x, y) in enumerate(corners.tolist()):
        assert torch.equal(a[i, :, y : y + 28, x : x + 28], digits[i])
        assert a[i].sum() == pytest.approx(digits[i].sum().item(), rel=1e-5)  # nothing else on the canvas
    cluttered, corners = place_on_canvas(digits, 60, clutter=4, generator=torch.Generator().manual_seed(2))
    assert (cluttered.sum((1, 2, 3)) > digits.sum((1, 2, 3)) + 1).all()  # fragments add ink
    for i, (x, y) in enumerate(corners.tolist()):  # the digit is drawn over the clutter (pixelwise max)
        assert (cluttered[i, :, y : y + 28, x : x + 28] >= digits[i]).all()
    with pytest.raises(ValueError, match="smaller"):
        place_on_canvas(digits, 20)
