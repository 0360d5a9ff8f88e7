import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkMixture
from torch.utils.data import DataLoader, TensorDataset

from zoo.layers.mixture import COVARIANCE_TYPES, GaussianMixture


@pytest.fixture(scope="module")
def blobs():
    """600 points in 3 dimensions from 3 well-separated, correlated clusters; labels 0..2."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 6.0, 0.0], [0.0, 6.0, 6.0]])
    labels = np.repeat(np.arange(3), 200)
    x = centers[labels] + rng.normal(size=(600, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.7]])
    return x, labels


def sklearn_fit(x, kind, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkMixture(3, covariance_type=kind, random_state=0, **kwargs).fit(x)


def ours_from(sk, kind):
    return GaussianMixture.from_params(torch.tensor(sk.weights_), torch.tensor(sk.means_),
                                       torch.tensor(sk.covariances_), covariance_type=kind)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_identical_parameters_give_scikit_learns_densities(blobs, kind):
    x, _ = blobs
    sk = sklearn_fit(x, kind, max_iter=5)
    gmm = ours_from(sk, kind)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        np.testing.assert_allclose(gmm.log_prob(xt).numpy(), sk.score_samples(x), rtol=1e-10)
        np.testing.assert_allclose(gmm.posterior(xt).numpy(), sk.predict_proba(x), atol=1e-10)
        np.testing.assert_array_equal(gmm.predict(xt).numpy(), sk.predict(x))
        np.testing.assert_allclose(gmm.covariances.numpy(), sk.covariances_, rtol=1e-10)
        np.testing.assert_allclose(gmm.precisions_cholesky.numpy(), sk.precisions_cholesky_, rtol=1e-10)
    assert gmm.bic(xt) == pytest.approx(sk.bic(x), rel=1e-12)
    assert gmm.aic(xt) == pytest.approx(sk.aic(x), rel=1e-12)
    # the E-step's expanded quadratic form agrees with the stable one
    assert gmm.e_step(xt)["log_likelihood"].item() == pytest.approx(sk.score(x) * len(x), rel=1e-10)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_em_iterations_match_scikit_learn(blobs, kind):
    x, _ = blobs
    start = sklearn_fit(x, kind, max_iter=1)  # a rough start, then 3 more EM iterations each
    warm = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=np.linalg.inv(start.covariances_) if kind in ("full", "tied") else 1 / start.covariances_)
    sk = sklearn_fit(x, kind, max_iter=3, tol=0, **warm)
    gmm = ours_from(start, kind).fit(torch.from_numpy(x), init=None, max_iter=3, tol=0)
    np.testing.assert_allclose(gmm.means.detach().numpy(), sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gmm.covariances.detach().numpy(), sk.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gmm.weights.detach().numpy(), sk.weights_, rtol=1e-8)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_em_never_decreases_the_log_likelihood(blobs, kind):
    x = torch.from_numpy(blobs[0])
    gmm = GaussianMixture(5, 3, kind).double().fit(x, max_iter=60, tol=1e-10, init="random", seed=1)
    history = np.array(gmm.history)
    assert len(history) > 5
    assert (np.diff(history) >= -1e-6 * np.abs(history[1:])).all(), history
    start = GaussianMixture(5, 3, kind).double()
    start.initialize(x, init="random", seed=1)
    double = GaussianMixture.from_params(start.weights.detach(), start.means.detach(), start.covariances.detach(), kind)
    single = GaussianMixture.from_params(start.weights.detach().float(), start.means.detach().float(),
                                         start.covariances.detach().float(), kind)
    double.fit(x, init=None, max_iter=15, tol=0)
    single.fit(x.float(), init=None, max_iter=15, tol=0)  # float32 follows float64's trajectory closely
    np.testing.assert_allclose(single.history, double.history, rtol=1e-4)


def test_kmeans_plus_plus_recovers_separated_clusters(blobs):
    x, labels = blobs
    gmm = GaussianMixture(3, 3).fit(torch.from_numpy(x).float(), seed=0)
    pred = gmm.predict(torch.from_numpy(x).float()).numpy()
    agreement = max((pred == perm[labels]).mean() for perm in map(np.array, __import__("itertools").permutations(range(3))))
    assert agreement > 0.99 and gmm.converged and abs(gmm.history[-1] - (-4.95)) < 0.2


def test_streaming_minibatches_and_dataloader_equal_full_batch_em(blobs):
    x = torch.from_numpy(blobs[0])
    start = GaussianMixture(3, 3).double()
    start.initialize(x, seed=0)
    full = GaussianMixture.from_params(start.weights.detach(), start.means.detach(), start.covariances.detach())
    full.fit(x, init=None, max_iter=4, tol=0)
    for source, kwargs in [(x, {"batch_size": 77}), (DataLoader(TensorDataset(x), batch_size=50), {})]:
        gmm = GaussianMixture.from_params(start.weights.detach(), start.means.detach(), start.covariances.detach())
        gmm.fit(source, init=None, max_iter=4, tol=0, **kwargs)
        for a, b in zip(gmm.state_dict().values(), full.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    loader_init = GaussianMixture(3, 3).double().fit(DataLoader(TensorDataset(x), batch_size=64), max_iter=2, seed=0)
    assert np.isfinite(loader_init.history).all()


def test_gradient_training_improves_the_likelihood_and_stays_valid(blobs):
    x = torch.from_numpy(blobs[0]).float()
    torch.manual_seed(0)
    gmm = GaussianMixture(3, 3, "full")
    opt = torch.optim.Adam(gmm.parameters(), lr=0.05)
    first = None
    for _ in range(150):
        loss = -gmm.log_prob(x).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 5  # from ~ -30 nats to ~ -6
    cov = gmm.covariances.detach()
    assert torch.linalg.eigvalsh(cov).min() > 0 and torch.allclose(gmm.weights.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_samples_are_seeded_and_follow_the_parameters(kind):
    gmm = GaussianMixture.from_params([0.25, 0.75], torch.tensor([[0.0, 0.0], [10.0, -5.0]], dtype=torch.float64),
                                      {"full": [[[1.0, 0.8], [0.8, 1.0]], [[2.0, 0.0], [0.0, 0.5]]],
                                       "tied": [[1.0, 0.8], [0.8, 1.0]], "diag": [[1.0, 2.0], [0.5, 0.5]],
                                       "spherical": [1.0, 2.0]}[kind], covariance_type=kind)
    x, comp = gmm.sample(20000, seed=0, return_components=True)
    assert torch.equal(x, gmm.sample(20000, seed=0)) and not torch.equal(x, gmm.sample(20000, seed=1))
    assert (comp == 1).double().mean().item() == pytest.approx(0.75, abs=0.01)
    for k in range(2):
        sel = x[comp == k]
        torch.testing.assert_close(sel.mean(0), gmm.means[k].detach(), atol=0.06, rtol=0)
        cov = gmm.covariances.detach()
        expected = {"full": lambda: cov[k], "tied": lambda: cov, "diag": lambda: torch.diag(cov[k]),
                    "spherical": lambda: cov[k] * torch.eye(2, dtype=cov.dtype)}[kind]()
        torch.testing.assert_close(torch.cov(sel.T), expected, atol=0.08, rtol=0)


def test_a_singular_covariance_is_regularised_not_a_crash():
    x = torch.tensor([[1.0, 2.0]] * 50 + [[3.0, 3.0]] * 50)  # each cluster is a single repeated point
    gmm = GaussianMixture(2, 2, reg_covar=1e-6).fit(x, seed=0)
    assert torch.isfinite(gmm.log_prob(x)).all() and gmm.covariances.min() > -1e-6
    flat = GaussianMixture.from_params([1.0], [[0.0, 0.0]], [[[1.0, 1.0], [1.0, 1.0]]])  # rank 1
    assert torch.isfinite(flat.log_prob(torch.zeros(1, 2))).all()


@pytest.mark.parametrize("call, match", [
    (lambda g: g.log_prob(torch.tensor([[float("nan"), 0.0, 0.0]])), "x contains NaN or inf"),
    (lambda g: g.log_prob(torch.zeros(4, 2)), r"x must have shape \(N, 3\), got \(4, 2\)"),
    (lambda g: g.fit(torch.zeros(2, 3)), "x has 2 samples, fewer than n_components=3"),
    (lambda g: g.e_step(torch.zeros(0, 3)), "x is an empty batch"),
    (lambda g: g.fit(torch.randn(10, 3), init="kmeans+"), "init must be 'kmeans\\+\\+', 'kmeans', 'random' or None"),
    (lambda g: g.fit(torch.randn(10, 3), max_iter=0), "max_iter must be an integer >= 1"),
    (lambda g: g.sample(0), "n must be an integer >= 1"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(GaussianMixture(3, 3))


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, 2, "ful")
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        GaussianMixture(0, 2)
    with pytest.raises(ValueError, match="weights must be 2 non-negative numbers summing to 1"):
        GaussianMixture.from_params([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match=r"covariances must have shape \(2, 1\) for covariance_type='diag'"):
        GaussianMixture.from_params([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], covariance_type="diag")
