"""DRAW's read attention as a classifier (Gregor et al. 2015, section 4.1): glimpses that are differentiable.

A recurrent classifier whose glimpses are the Gaussian filterbank reads of :mod:`paintrnn.attention`. At each of
``T`` steps the LSTM state picks the next attention window (five numbers: grid centre, stride, filter variance,
intensity), the filterbank reads an ``N x N`` glimpse from the image, and the glimpse (with the window that took
it) updates the state; after the last glimpse a linear layer classifies. Everything is differentiable, so the
whole model, where to look included, is trained end to end by backpropagation of the cross-entropy (no
REINFORCE, unlike :class:`paintrnn.agents.glimpse.RAM`).

The window layer starts with zero weights: the first glimpse of an untrained model is centred on the image with
a stride that spreads the ``N x N`` grid over all of it and filters as wide as half that stride (a blurred,
coarse view), and training learns to zoom in. The glimpse
trainer builds it as ``--model draw-read`` (``python scripts/train_glimpse.py --model draw-read --task
cluttered100 --glimpses 8 --read-size 12``); :func:`reading_frames` draws the windows moving over the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paintrnn.attention import filterbank, read, window_box, window_from_raw
from paintrnn.media import draw_boxes, side_by_side, to_uint8, upscale


@dataclass(frozen=True)
class Reading:
    """What :meth:`DrawReader.forward` returns for B images and T glimpses."""

    logits: Tensor
    """Class scores after the last glimpse, ``(B, n_classes)``."""
    windows: Tensor
    """The raw attention parameters of each glimpse, ``(B, T, 5)`` (see :func:`paintrnn.attention.window_from_raw`)."""


class DrawReader(nn.Module):
    """A recurrent classifier reading ``height x width`` images through DRAW's ``read_size``-square filterbank."""

    def __init__(
        self,
        height: int,
        width: int,
        read_size: int = 12,
        hidden: int = 256,
        feature: int = 256,
        channels: int = 1,
        n_classes: int = 10,
    ) -> None:
        super().__init__()
        for name, value in (("height", height), ("width", width), ("read_size", read_size), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.height, self.width, self.read_size, self.hidden = height, width, read_size, hidden
        self.encode = nn.Linear(channels * read_size**2 + 5, feature)  # the glimpse and the window that took it
        self.core = nn.LSTMCell(feature, hidden)
        self.where = nn.Linear(hidden, 5)
        nn.init.zeros_(self.where.weight)  # the first window is the bias (learned): it starts as the whole image,
        with torch.no_grad():  # blurred over the stride between filters (sigma = delta / 2), not aliased
            self.where.bias.zero_()
            self.where.bias[2] = 2 * math.log((max(height, width) - 1) / max(read_size - 1, 1) / 2)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, images: Tensor, n_glimpses: int) -> Reading:
        """Read ``images`` ``(B, C, height, width)`` with ``n_glimpses`` glimpses; the class logits and windows."""
        if n_glimpses < 1:
            raise ValueError(f"n_glimpses must be >= 1, got {n_glimpses}")
        b, _, h, w = images.shape
        if (h, w) != (self.height, self.width):
            raise ValueError(f"this reader reads {self.height}x{self.width} images, got {h}x{w}")
        state = (images.new_zeros(b, self.hidden), images.new_zeros(b, self.hidden))
        windows = []
        for _ in range(n_glimpses):
            raw = self.where(state[0])  # (B, 5)
            window = window_from_raw(raw, h, w, self.read_size)
            fx, fy = filterbank(window, self.read_size, h, w)  # (B, N, W), (B, N, H)
            patch = read(images, fx, fy, window.gamma)  # (B, C, N, N)
            z = F.relu(self.encode(torch.cat([patch.flatten(1), raw], dim=1)))  # (B, feature)
            state = self.core(z, state)
            windows.append(raw)
        return Reading(logits=self.classifier(state[0]), windows=torch.stack(windows, dim=1))


def reading_frames(
    images: Tensor, windows: Tensor, predictions: Tensor, read_size: int, scale: int = 2
) -> np.ndarray:
    """GIF frames ``(T + 1, H', W', 3)``: per image the attention window (filter centres +- one sigma) moving over
    it, the earlier windows fainter, then the predicted class. ``images (N, 1, H, W)`` in [0, 1], ``windows
    (N, T, 5)`` raw, ``predictions (N,)``; the images are laid out in a row, each enlarged ``scale`` times."""
    from paintrnn.agents.glimpse import _stamp_digit

    n, _, h, w = images.shape
    t_total = windows.shape[1]
    frames = []
    for t in range(t_total + 1):
        tiles = []
        for i in range(n):
            tile = upscale(to_uint8(images[i, 0].cpu().numpy()), scale)
            shown = min(t, t_total - 1)
            win = window_from_raw(windows[i, : shown + 1].detach().cpu().double(), h, w, read_size)
            boxes = window_box(win, read_size).numpy() * scale + (scale - 1) / 2  # (shown + 1, 4)
            colours = [(90, 90, 160)] * shown + [(255, 60, 60)]
            tile = draw_boxes(tile, boxes, colours, width=2).copy()
            if t == t_total:
                tile = _stamp_digit(tile, int(predictions[i]))
            tiles.append(tile)
        frames.append(side_by_side(*tiles))
    return np.stack(frames)
