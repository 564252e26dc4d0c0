"""Gaussian mixtures fitted by EM (the doodler's prior): they find known components, draw what they fitted, and
refuse bad points."""

import math

import pytest
import torch

from paintrnn.mixture import GaussianMixture, fit_gaussian_mixture


def three_blobs(n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    scales = torch.tensor([[[1.0, 0.0], [0.8, 0.5]], [[0.3, 0.0], [0.0, 0.3]], [[1.5, 0.0], [0.0, 0.4]]])
    comp = torch.tensor([0, 1, 2]).repeat_interleave(torch.tensor([n // 2, n // 3, n - n // 2 - n // 3]))
    x = centres[comp] + (scales[comp] @ torch.randn(n, 2, 1, generator=g)).squeeze(-1)
    return x, centres


def test_em_finds_the_components_their_weights_and_covariances():
    x, centres = three_blobs()
    gm = fit_gaussian_mixture(x, 3, generator=torch.Generator().manual_seed(1))
    order = [int((gm.means - c).norm(dim=1).argmin()) for c in centres]
    assert sorted(order) == [0, 1, 2]
    assert torch.allclose(gm.means[order], centres, atol=0.15)
    assert torch.allclose(gm.log_weights[order].exp(), torch.tensor([1 / 2, 1 / 3, 1 / 6]), atol=0.02)
    cov = gm.chol[order[0]] @ gm.chol[order[0]].T  # the tilted blob: L L^T of its scale matrix
    assert torch.allclose(cov, torch.tensor([[1.0, 0.8], [0.8, 0.89]]), atol=0.12)
    assert gm.log_weights.exp().sum().item() == pytest.approx(1, abs=1e-5)


def test_log_prob_is_a_density_and_more_components_fit_better():
    x, _ = three_blobs()
    one, three = fit_gaussian_mixture(x, 1), fit_gaussian_mixture(x, 3)
    assert three.log_prob(x).mean() > one.log_prob(x).mean() + 0.3
    grid = torch.stack(torch.meshgrid(torch.linspace(-12, 12, 241), torch.linspace(-8, 14, 221), indexing="ij"), -1)
    mass = three.log_prob(grid.reshape(-1, 2)).exp().sum() * 0.1 * 0.1
    assert mass.item() == pytest.approx(1.0, abs=0.01)  # integrates to one
    # one component is the Gaussian of the points' mean and covariance
    assert torch.allclose(one.means[0], x.mean(0), atol=1e-4)
    assert torch.allclose(one.chol[0] @ one.chol[0].T, torch.cov(x.T, correction=0), atol=2e-3)  # maximum likelihood
    single = torch.distributions.MultivariateNormal(one.means[0], scale_tril=one.chol[0])
    assert torch.allclose(one.log_prob(x[:10]), single.log_prob(x[:10]), atol=1e-4)


def test_samples_follow_the_mixture_and_repeat_under_a_seed():
    gm = GaussianMixture(torch.log(torch.tensor([0.25, 0.75])), torch.tensor([[-10.0, 0.0], [10.0, 0.0]]),
                         torch.eye(2).expand(2, 2, 2) * torch.tensor([1.0, 2.0]).view(2, 1, 1))  # fmt: skip
    a = gm.sample(20000, torch.Generator().manual_seed(0))
    assert torch.equal(a, gm.sample(20000, torch.Generator().manual_seed(0)))
    left = a[:, 0] < 0
    assert left.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert a[left].std(0).mean().item() == pytest.approx(1.0, abs=0.05)
    assert a[~left].std(0).mean().item() == pytest.approx(2.0, abs=0.05)
    eps = torch.zeros(3, 2)
    assert set(map(tuple, gm.sample(3, torch.Generator().manual_seed(1), eps=eps).tolist())) <= {(-10, 0), (10, 0)}


def test_fits_repeat_under_a_seed_and_bad_points_are_refused():
    x, _ = three_blobs(600)
    a = fit_gaussian_mixture(x, 4, generator=torch.Generator().manual_seed(5))
    b = fit_gaussian_mixture(x, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.means, b.means) and torch.equal(a.chol, b.chol)
    for bad, match in [(torch.zeros(1, 2), "N >= 2"), (torch.zeros(5), "N >= 2"),
                       (torch.tensor([[0.0, math.nan], [1.0, 1.0]]), "NaN")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            fit_gaussian_mixture(bad, 1)
    with pytest.raises(ValueError, match="1 <= k"):
        fit_gaussian_mixture(x, 0)
    # identical points: the regulariser keeps every covariance positive definite
    same = fit_gaussian_mixture(torch.ones(50, 3), 2)
    assert torch.isfinite(same.chol).all() and torch.isfinite(same.log_prob(torch.ones(2, 3))).all()
