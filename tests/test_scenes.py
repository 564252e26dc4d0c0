"""Scenes to read: cluttered MNIST (seeded, distractors off the digit's centre, cut from other digits) and digit
rows (labels, boxes, the ink inside the boxes)."""

import pytest
import torch

from paintrnn.scenes import CLUTTERED, END, RowSpec, cluttered, digit_rows, symbol_string


def _digits(n: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8)


def test_cluttered_scenes_are_fixed_by_the_seed():
    digits = _digits(16)
    a = cluttered(digits, 60, 4, torch.Generator().manual_seed(3))
    b = cluttered(digits, 60, 4, torch.Generator().manual_seed(3))
    c = cluttered(digits, 60, 4, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (16, 1, 60, 60) and a[0].dtype == torch.uint8


def test_the_digit_is_in_its_box_on_top_of_the_clutter():
    digits = _digits(32)
    images, boxes = cluttered(digits, 100, 8, torch.Generator().manual_seed(0))
    for i in range(32):
        x0, y0, x1, y1 = boxes[i].tolist()
        assert 0 <= x0 and x1 == x0 + 27 and y1 == y0 + 27 and x1 < 100 and y1 < 100
        inside = images[i, :, y0 : y1 + 1, x0 : x1 + 1]
        assert torch.equal(torch.maximum(inside, digits[i]), inside)  # max(clutter, digit): the digit is all there


@pytest.mark.parametrize("canvas,clutter", [(60, 4), (100, 8), (32, 30)])
def test_distractors_never_cover_the_digit_centre(canvas, clutter):
    blank = torch.zeros(400, 1, 28, 28)  # the target digits are blank: every lit pixel is a distractor
    pool = torch.ones(50, 1, 28, 28)
    images, boxes = cluttered(blank, canvas, clutter, torch.Generator().manual_seed(1), pool=pool)
    assert images.sum() > 0  # the pieces were pasted
    rows = torch.arange(400)
    for dy in (13, 14):
        for dx in (13, 14):  # the central 2 x 2 pixels of each 28 x 28 digit box
            assert images[rows, 0, boxes[:, 1] + dy, boxes[:, 0] + dx].eq(0).all()
    if canvas == 32:  # a crowded canvas: pieces do land right beside the centre, so the test above can fail
        assert images[rows, 0, boxes[:, 1] + 13, boxes[:, 0] + 12].sum() > 0


def test_distractors_come_from_other_digits():
    pool = torch.arange(1.0, 6.0).view(5, 1, 1, 1).expand(5, 1, 28, 28).contiguous()  # digit k is all k + 1
    index = torch.arange(5).repeat(40)
    blank = torch.zeros(200, 1, 28, 28)
    images, _ = cluttered(blank, 40, 6, torch.Generator().manual_seed(2), pool=pool, index=index)
    for i in range(200):
        assert (index[i] + 1).item() not in images[i].unique().tolist()
    with pytest.raises(ValueError, match="index"):
        cluttered(blank, 40, 6, pool=pool, index=index[:3])


def test_papers_tasks_and_bad_input():
    assert CLUTTERED["cluttered60"].canvas == 60 and CLUTTERED["cluttered60"].clutter == 4
    assert CLUTTERED["cluttered100"].canvas == 100 and CLUTTERED["cluttered100"].clutter == 8
    with pytest.raises(ValueError, match="smaller"):
        cluttered(_digits(2), 20, 1)
    with pytest.raises(ValueError, match="fragment"):
        cluttered(_digits(2), 40, 1, fragment=20)
    with pytest.raises(ValueError, match="tensor"):
        cluttered(torch.zeros(28, 28), 40, 1)


def test_digit_rows_labels_boxes_and_ink():
    pool = torch.ones(10, 1, 28, 28)  # solid squares: the ink fills each box exactly
    labels = torch.arange(10)
    spec = RowSpec(min_digits=2, max_digits=5, jitter=1.0)
    rows = digit_rows(pool, labels, 64, spec, torch.Generator().manual_seed(0))
    assert rows.images.shape == (64, 1, 32, 128) and rows.symbols.shape == (64, 6)
    assert rows.lengths.min() >= 2 and rows.lengths.max() <= 5 and len(set(rows.lengths.tolist())) == 4
    for i in range(64):
        n = int(rows.lengths[i])
        assert rows.symbols[i, n] == END and (rows.symbols[i, :n] >= 0).all() and (rows.symbols[i, n + 1 :] == -1).all()
        boxes = rows.boxes[i, :n]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 128 + 1e-4).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 32 + 1e-4).all()
        assert (boxes[1:, 0] > boxes[:-1, 0]).all()  # left to right
        assert (rows.boxes[i, n:] == 0).all()
        lit = rows.images[i, 0] > 0.5
        mask = torch.zeros(32, 128, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.tolist():  # every lit pixel lies in a box (to within the bilinear half pixel)
            mask[max(int(y0 - 0.5), 0) : int(y1 + 1.5), max(int(x0 - 0.5), 0) : int(x1 + 1.5)] = True
        assert not (lit & ~mask).any()
        x0, y0, x1, y1 = boxes[0].tolist()
        assert rows.images[i, 0, int((y0 + y1) / 2), int((x0 + x1) / 2)] > 0.99  # a box's middle is inked


def test_digit_rows_are_seeded_and_strings_read_back():
    pool, labels = _digits(30), torch.arange(30) % 10
    spec = RowSpec(clutter=3)
    a = digit_rows(pool, labels, 8, spec, torch.Generator().manual_seed(5))
    b = digit_rows(pool, labels, 8, spec, torch.Generator().manual_seed(5))
    assert torch.equal(a.images, b.images) and torch.equal(a.symbols, b.symbols) and a.images.dtype == torch.uint8
    assert [len(symbol_string(s)) for s in a.symbols] == a.lengths.tolist()
    assert [symbol_string(s) for s in torch.tensor([[3, 1, END, 4], [END, 2, 2, 2], [7, -1, 1, 1]])] == ["31", "", "7"]
    assert symbol_string([0, 5, END]) == "05"


def test_row_spec_refuses_rows_that_do_not_fit():
    with pytest.raises(ValueError, match="wide"):
        RowSpec(width=60)
    with pytest.raises(ValueError, match="high"):
        RowSpec(height=16)
    with pytest.raises(ValueError, match="min_digits"):
        RowSpec(min_digits=3, max_digits=2)
