"""paintrnn.metrics: the Fréchet distance in the shipped digit classifier's features, and mode coverage."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paintrnn import metrics
from paintrnn.data import mnist_sample
from paintrnn.metrics import (
    CHECKPOINT,
    digit_features,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    load_classifier,
    prepare_digits,
    sample_quality,
    trace_sqrt_product,
)


@pytest.fixture(scope="module")
def digits():
    """The bundled sample's 2,000 training and 500 test digits, float (N, 1, 28, 28) in [0, 1], and labels."""
    s = mnist_sample()
    as_float = lambda a: torch.from_numpy(a.astype(np.float32) / 255)[:, None]  # noqa: E731
    return as_float(s["train_images"]), as_float(s["test_images"]), torch.from_numpy(s["test_labels"].astype(np.int64))


def one_line(exc):
    message = str(exc.value)
    assert message and "\n" not in message, message
    return message


def test_the_shipped_classifier_is_small_accurate_and_carries_its_reference(digits):
    assert CHECKPOINT.stat().st_size < 1e6
    model = load_classifier()
    assert not model.training and int(model.reference_count) == 10000
    assert model.reference_cov.shape == (model.spec.features, model.spec.features)
    raw = torch.load(CHECKPOINT, weights_only=True)
    assert raw["kind"] == "digit-classifier" and "optimizer" not in raw and raw["extra"]["test_accuracy"] >= 0.99
    assert raw["config"] == {"width": model.spec.width, "features": model.spec.features, "classes": 10}
    _, test, labels = digits
    accuracy = (model(test).argmax(-1) == labels).float().mean().item()
    assert accuracy >= 0.98  # the bundled 500 test digits


def test_identical_sets_are_at_distance_zero(digits):
    _, test, _ = digits
    assert frechet_distance(test, test) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(test, test.clone().flip(0)) == pytest.approx(0.0, abs=1e-6)  # order does not matter


def test_real_digits_are_close_and_noise_is_far(digits):
    train, test, _ = digits
    shuffled = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    real = frechet_distance(shuffled[:1000], shuffled[1000:])
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    far = frechet_distance(shuffled[:1000], noise)
    blank = frechet_distance(test, torch.zeros(500, 1, 28, 28) + 0.01 * noise[:500])
    assert 0 < real < 15, real  # 1000 against 1000: mostly the small-sample bias (10,000 each: below 3)
    assert far > 50 * real and blank > 50 * real, (real, far, blank)
    quality = sample_quality(noise)
    assert quality.fd > 50 * real and quality.n == 1000


def test_test_digits_score_well_against_the_stored_test_statistics(digits):
    _, test, _ = digits
    q = sample_quality(test)
    assert q.fd < 20 and q.mean_confidence > 0.95  # 500 digits: the small-sample bias
    assert sum(q.class_fractions) == pytest.approx(1.0) and len(q.class_fractions) == 10
    assert q.min_class_fraction == min(q.class_fractions) >= 0.05
    ones = test[torch.from_numpy(mnist_sample()["test_labels"]) == 1]
    collapsed = sample_quality(ones)
    assert collapsed.class_fractions[1] > 0.9 and collapsed.min_class_fraction == 0.0
    assert collapsed.fd > 10 * q.fd  # a generator that draws only ones is far from MNIST


def test_shuffled_halves_of_the_full_test_set_are_close(shared_data):
    from paintrnn.data import load_mnist

    images, _ = load_mnist("test", shared_data, source="full")
    test = torch.from_numpy(images).float()[:, None] / 255
    assert sample_quality(test).fd == pytest.approx(0.0, abs=1e-6)  # the stored statistics are these digits'
    shuffled = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))]
    halves = frechet_distance(shuffled[:5000], shuffled[5000:])
    assert 0 < halves < 6, halves
    assert frechet_distance(test[:5000], test[5000:]) > 3 * halves  # unshuffled halves: other writers, farther


def test_the_reference_can_be_images(digits):
    train, test, _ = digits
    assert sample_quality(test, reference=test).fd == pytest.approx(0.0, abs=1e-6)
    assert sample_quality(test, reference=train).fd == pytest.approx(frechet_distance(test, train), rel=1e-9)


def test_64_px_canvases_are_downsampled_to_the_classifiers_28(digits, one_torch_thread):
    from paintrnn.agents.painter import paint

    import paintrnn
    from paintrnn.render import render_strokes

    _, test, _ = digits
    _, strokes = paint(paintrnn.load("painter"), F.interpolate(test, size=(64, 64), mode="bilinear"), 2)
    at_28 = render_strokes(strokes, height=28, width=28, mode="hard")  # the same strokes at two sizes
    at_64 = render_strokes(strokes, height=64, width=64, mode="hard")
    assert prepare_digits(at_64).shape == (500, 1, 28, 28)
    assert prepare_digits(test[:, 0]).shape == (500, 1, 28, 28)  # (N, H, W) works too
    close = frechet_distance(at_28, at_64)
    blurred = frechet_distance(at_28, F.interpolate(at_64, size=(28, 28), mode="bilinear", antialias=True))
    assert close < 2 and blurred > 2 * close, (close, blurred)  # a 2.3x shrink is not antialiased again
    huge = render_strokes(strokes, height=256, width=256, mode="hard")
    assert frechet_distance(at_28, huge) < 2  # a 9x shrink averages each pixel's footprint
    assert sample_quality((test * 255).round().to(torch.uint8)).fd == pytest.approx(sample_quality(test).fd, abs=0.05)


def test_frechet_distance_of_known_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_distance_from_stats(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[1.0]])
    )
    assert fd == pytest.approx(4.0 + 1.0)
    # diagonal: sum over dimensions
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    expected = float(((m1 - m2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())
    assert frechet_distance_from_stats(m1, torch.diag(v1), m2, torch.diag(v2)) == pytest.approx(expected)


def _random_cov(n, rank, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, rank, generator=g, dtype=torch.float64)
    return a @ a.T / rank


@pytest.mark.parametrize("rank", [40, 8])  # full rank and singular (fewer samples than features)
def test_trace_of_the_matrix_square_root_matches_a_reference(rank):
    a, b = _random_cov(20, rank, 0), _random_cov(20, rank, 1)
    ours = trace_sqrt_product(a, b)
    # slow reference: the eigenvalues of the (non-symmetric) product, square-rooted and summed
    eig = np.linalg.eigvals(a.numpy() @ b.numpy())
    assert ours == pytest.approx(float(np.sqrt(np.clip(eig.real, 0, None)).sum()), rel=1e-6)
    try:
        from scipy.linalg import sqrtm
    except ImportError:  # pragma: no cover - scipy is optional
        return
    root = sqrtm(a.numpy() @ b.numpy())
    assert ours == pytest.approx(float(np.trace(root).real), rel=1e-5)


def test_feature_stats_are_the_sample_mean_and_covariance():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, cov = feature_stats(x)
    assert torch.allclose(mean, x.mean(0)) and torch.allclose(cov, torch.from_numpy(np.cov(x.numpy().T)))


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.rand(4, 3, 28, 28), "grey"),
        (torch.rand(28, 28)[None, None, None], "grey"),
        (torch.rand(4, 1, 4, 4), "at least 8"),
        (torch.full((4, 1, 28, 28), float("nan")), "NaN"),
        (torch.randn(4, 1, 28, 28) * 5, r"\[0, 1\]"),
        (torch.ones(4, 1, 28, 28, dtype=torch.int32), "dtype"),
        (np.zeros((4, 28, 28)), "torch tensor"),
    ],
)
def test_bad_images_are_one_line_errors(images, match):
    with pytest.raises(ValueError, match=match) as exc:
        digit_features(images)
    one_line(exc)


def test_too_few_images_or_mismatched_statistics_are_one_line_errors(digits):
    _, test, _ = digits
    with pytest.raises(ValueError, match="at least two") as exc:
        sample_quality(test[:1])
    one_line(exc)
    with pytest.raises(ValueError, match="do not match") as exc:
        frechet_distance_from_stats(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    one_line(exc)
    with pytest.raises(ValueError, match="unknown reference") as exc:
        sample_quality(test, reference="cifar")
    one_line(exc)


def test_features_run_on_the_images_device_and_do_not_need_gradients(digits):
    _, test, _ = digits
    f = digit_features(test[:10].requires_grad_(True))
    assert f.shape == (10, load_classifier().spec.features) and f.dtype == torch.float64 and not f.requires_grad


def test_the_core_module_imports_no_agents_or_envs():
    code = ("import sys, paintrnn.metrics; bad = [m for m in sys.modules if m.startswith(('paintrnn.agents', "
            "'paintrnn.envs'))]; assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_trainer_exports_a_classifier_that_metrics_loads(tmp_path, one_torch_thread):
    from paintrnn.agents.digit_classifier_train import main, shifted

    out = tmp_path / "clf.pt"
    argv = ["--run-dir", str(tmp_path / "run"), "--data-source", "sample", "--epochs", "1", "--batch-size", "200",
            "--width", "8", "--features", "16", "--eval-size", "100", "--no-progress",
            "--export", str(out)]  # fmt: skip
    assert main(argv) == 0
    model = load_classifier(out)
    assert model.spec == metrics.ClassifierSpec(width=8, features=16) and int(model.reference_count) == 100
    q = sample_quality(torch.rand(20, 1, 28, 28), classifier=model)
    assert q.fd > 0 and len(q.class_fractions) == 10
    # the augmentation moves digits by whole pixels, within the bound
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1
    moved = shifted(x, 2, torch.Generator().manual_seed(0))
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28, where % 28
    assert moved.sum() == 64 and (rows - 14).abs().max() <= 2 and (cols - 14).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10
