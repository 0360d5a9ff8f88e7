import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn import naive_bayes as sk
from sklearn.datasets import load_digits

import zoo
from zoo.data.digits import SPEC as DIGITS
from zoo.layers.naive_bayes import (BernoulliNaiveBayes, CategoricalNaiveBayes, GaussianNaiveBayes,
                                    MultinomialNaiveBayes)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data, data.target  # (1797, 64) pixel values 0..16, labels 0..9


KINDS = {
    "gaussian": (lambda: GaussianNaiveBayes(10, 64), lambda: sk.GaussianNB()),
    "multinomial": (lambda: MultinomialNaiveBayes(10, 64, alpha=0.5), lambda: sk.MultinomialNB(alpha=0.5)),
    "bernoulli": (lambda: BernoulliNaiveBayes(10, 64, binarize=4.0), lambda: sk.BernoulliNB(binarize=4.0)),
    "categorical": (lambda: CategoricalNaiveBayes(10, 64, 17), lambda: sk.CategoricalNB(min_categories=17)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_fit_predict_and_joint_likelihood_match_scikit_learn(digits, kind):
    x, y = digits
    ours, theirs = KINDS[kind][0]().double(), KINDS[kind][1]().fit(x, y)
    xt = torch.from_numpy(x).long() if kind == "categorical" else torch.from_numpy(x)
    ours.fit(xt, torch.from_numpy(y))
    with torch.no_grad():
        np.testing.assert_allclose(ours.predict_proba(xt).numpy(), theirs.predict_proba(x), atol=1e-10)
        np.testing.assert_allclose(ours.joint_log_prob(xt).numpy(), theirs.predict_joint_log_proba(x), rtol=1e-10, atol=1e-9)
        np.testing.assert_array_equal(ours.predict(xt).numpy(), theirs.predict(x))
        joint = ours.log_prob(xt, torch.from_numpy(y))
        marginal = ours.log_prob(xt)
        torch.testing.assert_close(marginal, torch.logsumexp(torch.stack([ours.log_prob(xt, c) for c in range(10)]), 0))
    assert (joint <= marginal + 1e-9).all()


@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_over_batches_equals_fit(digits, kind):
    x, y = digits
    xt = torch.from_numpy(x).long() if kind == "categorical" else torch.from_numpy(x)
    full = KINDS[kind][0]().double().fit(xt, torch.from_numpy(y))
    streamed = KINDS[kind][0]().double()
    for i in range(0, len(x), 400):
        streamed.partial_fit(xt[i:i + 400], torch.from_numpy(y[i:i + 400]))
    for (name, a), b in zip(streamed.state_dict().items(), full.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)
    loader = [(xt[i:i + 500], torch.from_numpy(y[i:i + 500])) for i in range(0, len(x), 500)]
    torch.testing.assert_close(KINDS[kind][0]().double().fit(loader).class_logits, full.class_logits)


@pytest.mark.parametrize("cls", [MultinomialNaiveBayes, BernoulliNaiveBayes])
def test_sparse_counts_equal_dense(digits, cls):
    x, y = digits
    dense = cls(10, 64).double().fit(torch.from_numpy(x), torch.from_numpy(y))
    canonical = sp.csr_matrix(x.astype(np.int64))
    half = canonical.data // 2  # every count stored as two entries: a valid CSR matrix, not canonical
    duplicated = sp.csr_matrix((np.c_[half, canonical.data - half].ravel(), np.repeat(canonical.indices, 2),
                                2 * canonical.indptr), shape=x.shape)
    assert not duplicated.has_canonical_format
    before = [a.copy() for a in (canonical.data, canonical.indices, canonical.indptr)]
    for sparse in (canonical, duplicated, duplicated.tocsc(), torch.from_numpy(x).to_sparse()):
        model = cls(10, 64).double().fit(sparse, y)
        torch.testing.assert_close(model.feature_logits, dense.feature_logits)
        torch.testing.assert_close(model.log_prob(sparse), dense.log_prob(torch.from_numpy(x)))
        torch.testing.assert_close(model.log_prob(sparse, y), dense.log_prob(torch.from_numpy(x), y))
    for a, b in zip((canonical.data, canonical.indices, canonical.indptr), before):  # shared, never written
        np.testing.assert_array_equal(a, b)


def test_multinomial_log_prob_is_a_probability_over_count_vectors():
    nb = MultinomialNaiveBayes(2, 3).double().fit(torch.tensor([[1, 0, 2], [0, 3, 0]]), torch.tensor([0, 1]))
    vectors = torch.tensor([v for v in itertools.product(range(5), repeat=3) if sum(v) == 4])  # every x with 4 counts
    assert nb.log_prob(vectors).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    assert nb.log_prob(vectors, 1).exp().sum().item() == pytest.approx(0.5, abs=1e-12)  # p(y=1) = 1/2


def test_class_conditional_samples(digits):
    x, y = digits
    nb = GaussianNaiveBayes(10, 64).fit(torch.from_numpy(x).float(), torch.from_numpy(y))
    s = nb.sample(5000, labels=3, seed=0)
    assert torch.equal(s, nb.sample(5000, labels=3, seed=0)) and s.shape == (5000, 64)
    torch.testing.assert_close(s.mean(0), nb.means[3].detach(), atol=0.2, rtol=0)
    counts = MultinomialNaiveBayes(10, 64).fit(torch.from_numpy(x), torch.from_numpy(y)).sample(
        4, labels=[0, 1, 2, 3], total_count=50, seed=0)
    assert counts.sum(1).tolist() == [50.0] * 4
    binary = BernoulliNaiveBayes(10, 64, binarize=4.0).fit(torch.from_numpy(x), torch.from_numpy(y)).sample(3, seed=0)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    symbols = CategoricalNaiveBayes(10, 64, 17).fit(torch.from_numpy(x).long(), torch.from_numpy(y)).sample(3, labels=0)
    assert symbols.dtype == torch.int64 and symbols.max() <= 16


def test_gradients_reach_every_parameter(digits):
    x, y = digits
    nb = GaussianNaiveBayes(10, 64).fit(torch.from_numpy(x).float(), torch.from_numpy(y))
    nb.log_prob(torch.from_numpy(x[:50]).float(), torch.from_numpy(y[:50])).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in nb.parameters())


@pytest.mark.parametrize("make, x, y, match", [
    (lambda: MultinomialNaiveBayes(2, 2), [[1, -1]], [0], "x must hold non-negative integer counts"),
    (lambda: MultinomialNaiveBayes(2, 2), [[1.5, 0.0]], [0], "x must hold non-negative integer counts"),
    (lambda: CategoricalNaiveBayes(2, 2, 3), [[0, 3]], [0], "x must hold symbols in 0..2"),
    (lambda: GaussianNaiveBayes(2, 2), [[float("nan"), 0.0]], [0], "x contains NaN or inf"),
    (lambda: GaussianNaiveBayes(2, 2), [[0.0, 0.0, 0.0]], [0], r"x must have shape \(N, 2\)"),
    (lambda: GaussianNaiveBayes(2, 2), torch.zeros(0, 2), [], "x is an empty batch"),
    (lambda: GaussianNaiveBayes(2, 2), [[0.0, 0.0]], [2], "labels must be in 0..1"),
    (lambda: GaussianNaiveBayes(2, 2), [[0.0, 0.0]], [0.5], "labels must be an integer or 1 integers"),
])
def test_bad_input_is_a_clear_error(make, x, y, match):
    with pytest.raises(ValueError, match=match):
        make().fit(torch.as_tensor(x), torch.as_tensor(y))


def test_the_digits_model_wrapper_samples_images_per_label():
    from zoo.data.digits import digits_split

    x, y = digits_split("train")
    for kind in ("gaussian", "bernoulli", "categorical", "multinomial"):
        model = zoo.NaiveBayes(kind=kind).fit_to_data(DIGITS).fit(x, y)
        images = model.sample(10, seed=0, labels=list(range(10)))
        assert images.shape == (10, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
        assert (model.predict(x) == y).float().mean() > 0.85, kind
