"""Sample quality of generated digits: a Fréchet distance in a small MNIST classifier's features (MNIST's FID).

A generative model of digits (DRAW, a VAE, a doodling painter) is judged by how its samples look to a digit
classifier trained once on MNIST and shipped with the package (``paintrnn/assets/checkpoints/digit-classifier.pt``,
:class:`DigitClassifier`, 99.34% test accuracy):

* **Fréchet distance** (FD) between Gaussians fitted to the classifier's penultimate features (128 numbers per
  image) of the samples and of the 10,000 MNIST test digits: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2)``
  (Heusel et al. 2017, with this classifier in place of Inception). 0 for identical sets; 2.2 for two shuffled
  halves of the test set and 2.9 for 10,000 training digits; 25 for the shipped DRAW's samples; about 890 for
  random strokes and 1,600 for uniform noise. The classifier was trained on digits drawn with other pens
  (blurred, sharpened, thickened, thinned, dimmed), so the distance follows the shapes more than the edges.
  The test set's mean and covariance are stored in the shipped checkpoint (buffers of the classifier), so
  :func:`sample_quality` works offline, without MNIST. Like FID it is biased upward for small sets (1,000
  training digits: 15): compare models at the same number of samples (the benchmarks use 10,000).
* **Mode coverage**: the histogram of predicted classes (a generator that draws only ones has a fraction 1.0
  at class 1), its smallest entry, and the **mean confidence** (mean top softmax probability; samples that
  look like no digit in particular score low).

Images are ``(N, 1, H, W)`` or ``(N, H, W)``, float in [0, 1] (uint8 is divided by 255), any size from 8 px:
they are resized to 28 x 28 (:func:`prepare_digits`): by plain bilinear interpolation up to 84 px (so 64 px
canvases are downsampled 2.3x), by averaging over each pixel's footprint (``area``) above. Strokes rendered at
64 px and shrunk so measure 0.8 from the same strokes rendered at 28 px (an antialiasing filter or ``area`` at
that ratio blurs edges that are antialiased already: 5.8, 5.3); rendered at 112 or 256 px, 0.1 and 0.5 with
``area`` (4.5 to 5.4 with an antialiased bilinear filter). MNIST frames each digit in a 20 px box centred in
28 px; a generator trained on MNIST resized to its canvas keeps that framing, and the resize gives it back.
Values outside [0, 1], NaN, other shapes or channel counts are a one-line ``ValueError``. Everything runs on the
images' device.

    >>> from paintrnn.metrics import sample_quality, frechet_distance
    >>> q = sample_quality(samples)          # (N, 1, H, W) in [0, 1]  # doctest: +SKIP
    >>> q.fd, q.min_class_fraction, q.mean_confidence  # doctest: +SKIP

The shipped classifier was trained (4 epochs, 20 minutes on one thread of a busy 2-core CPU) and exported by::

    python -m paintrnn.agents.digit_classifier_train --data-dir /path/to/data --run-dir runs/digit-classifier \
        --export paintrnn/assets/checkpoints/digit-classifier.pt

(:mod:`paintrnn.agents.digit_classifier_train`; the reference statistics are those of the exported weights on
the 10,000 test digits). This module is core: it imports neither the environments nor the agents.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paintrnn.training import CheckpointError, load_checkpoint

KIND = "digit-classifier"
"""Checkpoint kind of the digit classifier."""
CHECKPOINT = Path(__file__).parent / "assets" / "checkpoints" / "digit-classifier.pt"
"""The shipped classifier, with the feature statistics of the 10,000 MNIST test digits."""
SIZE = 28
"""Side the classifier sees: every image is resized to it."""
REFERENCES = ("mnist-test",)
"""Named reference sets whose feature statistics the shipped checkpoint holds."""


@dataclass(frozen=True)
class ClassifierSpec:
    """Architecture of the :class:`DigitClassifier` (saved in its checkpoint's ``config``)."""

    width: int = 32
    """Channels of the first convolution (the second and third have twice as many)."""
    features: int = 128
    """Size of the penultimate layer: the features the Fréchet distance compares."""
    classes: int = 10
    """Output classes."""


class DigitClassifier(nn.Module):
    """Three 3x3 convolutions (each followed by ReLU and 2x2 max-pooling, 28 -> 14 -> 7 -> 3 px), a fully connected
    layer of ``features`` units with ReLU (the features), and a linear layer to the class logits.

    The buffers ``reference_mean`` ``(F,)`` and ``reference_cov`` ``(F, F)`` hold the feature statistics of the
    MNIST test set (``reference_count`` images; 0 until :func:`set_reference` fills them)."""

    def __init__(self, spec: ClassifierSpec = ClassifierSpec()) -> None:
        super().__init__()
        self.spec = spec
        w = spec.width
        self.conv = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 3, 3)
        )  # fmt: skip
        self.fc = nn.Linear(2 * w * 9, spec.features)
        self.out = nn.Linear(spec.features, spec.classes)
        self.register_buffer("reference_mean", torch.zeros(spec.features, dtype=torch.float64))
        self.register_buffer("reference_cov", torch.zeros(spec.features, spec.features, dtype=torch.float64))
        self.register_buffer("reference_count", torch.zeros((), dtype=torch.int64))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, F)`` of ``(B, 1, 28, 28)`` images in [0, 1]."""
        return F.relu(self.fc(self.conv(x * 2 - 1).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, classes)`` of ``(B, 1, 28, 28)`` images in [0, 1]."""
        return self.out(self.features(x))

    def set_reference(self, features: Tensor) -> None:
        """Store the mean and covariance of reference features ``(N, F)`` (the MNIST test set's)."""
        mean, cov = feature_stats(features)
        self.reference_mean.copy_(mean)
        self.reference_cov.copy_(cov)
        self.reference_count.fill_(len(features))


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> DigitClassifier:
    """The digit classifier of a checkpoint (default: the shipped one), in eval mode on ``device``. A file of
    another kind or without reference statistics is a :class:`~paintrnn.training.CheckpointError`."""
    path = Path(CHECKPOINT if path is None else path)
    return _load_cached(str(path.resolve()), str(torch.device(device)))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> DigitClassifier:
    ckpt = load_checkpoint(path, map_location="cpu", kind=KIND)
    model = DigitClassifier(ClassifierSpec(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    if int(model.reference_count) < 2:
        raise CheckpointError(f"{path} holds no reference feature statistics (export it with the trainer's --export)")
    return model.to(device).eval().requires_grad_(False)


def prepare_digits(images: Tensor) -> Tensor:
    """Check images (see the module docstring) and return them as float ``(N, 1, 28, 28)`` in [0, 1]."""
    if not torch.is_tensor(images):
        raise ValueError(f"images must be a torch tensor (N, 1, H, W) or (N, H, W), got {type(images).__name__}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be grey (N, 1, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    if n < 1 or min(h, w) < 8:
        raise ValueError(f"images must hold at least one image of at least 8 x 8 px, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1] or uint8, got dtype {images.dtype}")
    images = images.float()
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or inf")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must lie in [0, 1] (probabilities, not logits), got values in [{lo:.3g}, {hi:.3g}]")
    if (h, w) != (SIZE, SIZE):
        if max(h, w) > 3 * SIZE:  # a large shrink: the average over each pixel's footprint
            images = F.interpolate(images, size=(SIZE, SIZE), mode="area")
        else:
            images = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return images.clamp(0, 1)


def _classifier(classifier: DigitClassifier | None, like: Tensor) -> DigitClassifier:
    if classifier is None:
        return load_classifier(device=like.device)
    return classifier


@torch.no_grad()
def classify(images: Tensor, classifier: DigitClassifier | None = None, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Penultimate features ``(N, F)`` float64 and class probabilities ``(N, classes)`` of images (any accepted
    shape), on the images' device."""
    model = _classifier(classifier, images)
    device = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        x = prepare_digits(images[i : i + batch_size]).to(device)
        f = model.features(x)
        feats.append(f.double())
        probs.append(torch.softmax(model.out(f), -1))
    if not feats:
        raise ValueError("images must hold at least one image")
    return torch.cat(feats), torch.cat(probs)


def digit_features(images: Tensor, classifier: DigitClassifier | None = None, batch_size: int = 500) -> Tensor:
    """The classifier's penultimate features ``(N, F)`` (float64) of images in [0, 1] (module docstring)."""
    return classify(images, classifier, batch_size)[0]


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(F,)`` and covariance ``(F, F)`` (unbiased, float64) of features ``(N, F)``, ``N >= 2``."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features (N, F) of at least two images, got shape {tuple(features.shape)}")
    x = features.double()
    mean = x.mean(0)
    d = x - mean
    return mean, d.T @ d / (len(x) - 1)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative rounding eigenvalues set to 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(sigma_a: Tensor, sigma_b: Tensor) -> float:
    """``tr((S_a S_b)^1/2)`` for covariances: the eigenvalues of ``S_a S_b`` are those of the symmetric
    ``S_a^1/2 S_b S_a^1/2``, whose square roots are summed (no general matrix square root needed)."""
    root = _psd_sqrt(sigma_a.double())
    values = torch.linalg.eigvalsh(root @ sigma_b.double() @ root)
    return float(values.clamp(min=0).sqrt().sum())


def frechet_distance_from_stats(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """The Fréchet distance of two Gaussians ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``."""
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (*mean_a.shape, *mean_a.shape):
        raise ValueError(f"statistics do not match: means {tuple(mean_a.shape)}, {tuple(mean_b.shape)}, "
                         f"covariances {tuple(cov_a.shape)}, {tuple(cov_b.shape)}")  # fmt: skip
    mean_a, mean_b = mean_a.double().cpu(), mean_b.double().cpu()
    cov_a, cov_b = cov_a.double().cpu(), cov_b.double().cpu()
    fd = float(((mean_a - mean_b) ** 2).sum()) + float(cov_a.trace() + cov_b.trace())
    return max(0.0, fd - 2 * trace_sqrt_product(cov_a, cov_b))


def frechet_distance(images_a: Tensor, images_b: Tensor, classifier: DigitClassifier | None = None) -> float:
    """Fréchet distance between the classifier features of two sets of images (at least two each)."""
    fa, fb = digit_features(images_a, classifier), digit_features(images_b, classifier)
    return frechet_distance_from_stats(*feature_stats(fa), *feature_stats(fb))


def reference_stats(
    reference: str | Tensor = "mnist-test", classifier: DigitClassifier | None = None, like: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Feature mean and covariance of a reference: ``"mnist-test"`` (stored in the classifier's checkpoint) or a
    tensor of images."""
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise ValueError(f"unknown reference {reference!r}: choose one of {', '.join(REFERENCES)}, or pass images")
        model = _classifier(classifier, like if like is not None else torch.zeros(()))
        if int(model.reference_count) < 2:
            raise ValueError("this classifier holds no reference statistics (set_reference was never called)")
        return model.reference_mean, model.reference_cov
    return feature_stats(digit_features(reference, classifier))


@dataclass(frozen=True)
class SampleQuality:
    """What :func:`sample_quality` measures of a set of images."""

    fd: float
    """Fréchet distance to the reference's features (lower is better; 0 for the reference itself)."""
    class_fractions: tuple[float, ...]
    """Fraction of the images predicted as each class 0..9 (mode coverage; 0.1 each for MNIST)."""
    min_class_fraction: float
    """The smallest entry of ``class_fractions`` (0: a digit the generator never draws)."""
    mean_confidence: float
    """Mean top class probability (about 0.99 on test digits; low for images that look like no digit)."""
    n: int
    """Images measured."""

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return {"fd": self.fd, "min_class_fraction": self.min_class_fraction, "mean_confidence": self.mean_confidence,
                "class_fractions": list(self.class_fractions), "n": self.n}  # fmt: skip


def sample_quality(
    images: Tensor, reference: str | Tensor = "mnist-test", classifier: DigitClassifier | None = None
) -> SampleQuality:
    """Fréchet distance of ``images`` (at least two; 10,000 to compare with the benchmarks) to ``reference``
    (``"mnist-test"``: the 10,000 test digits' statistics stored with the classifier; or images), their
    predicted-class histogram, its smallest fraction and the mean confidence."""
    model = _classifier(classifier, images)
    feats, probs = classify(images, model)
    if len(feats) < 2:
        raise ValueError(f"need at least two images for a covariance, got {len(feats)}")
    ref_mean, ref_cov = reference_stats(reference, model)
    fd = frechet_distance_from_stats(*feature_stats(feats), ref_mean, ref_cov)
    counts = torch.bincount(probs.argmax(-1).cpu(), minlength=probs.shape[-1]).double()
    fractions = tuple(float(c) for c in counts / len(probs))
    confidence = float(probs.max(-1).values.mean())
    if not math.isfinite(fd):
        raise ValueError("the Fréchet distance is not finite (features overflowed?)")
    return SampleQuality(fd, fractions, min(fractions), confidence, len(probs))
