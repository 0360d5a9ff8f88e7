import numpy as np
import pytest
import torch
from hmmlearn import hmm as H

from zoo.layers.hmm import HiddenMarkovModel

K, D = 4, 3
RNG = np.random.default_rng(0)
START = RNG.dirichlet(np.ones(K))
TRANS = RNG.dirichlet(np.ones(K), size=K)
MEANS = RNG.normal(0, 2, size=(K, D))
VARS = RNG.uniform(0.5, 2.0, size=(K, D))
FULL = np.stack([np.diag(v) + 0.3 * np.outer(r, r) for v, r in zip(VARS, RNG.normal(size=(K, D)))])
EMIT = RNG.dirichlet(np.ones(6), size=K)
MIX_W = RNG.dirichlet(np.ones(2), size=K)
MIX_MEANS = RNG.normal(0, 2, size=(K, 2, D))
MIX_VARS = RNG.uniform(0.5, 2.0, size=(K, 2, D))
LENGTHS = [50, 30, 1, 20, 50]


def pair(kind: str):
    """(ours, hmmlearn's) on identical parameters, float64."""
    common = {"init_params": "", "params": ""}
    if kind == "categorical":
        ours = HiddenMarkovModel.from_params(START, TRANS, emission_probs=EMIT)
        ref = H.CategoricalHMM(K, n_features=6, **common)
        ref.emissionprob_ = EMIT
    elif kind == "gmm":
        ours = HiddenMarkovModel.from_params(START, TRANS, means=MIX_MEANS, covariances=MIX_VARS, mixture_weights=MIX_W)
        ref = H.GMMHMM(K, 2, covariance_type="diag", **common)
        ref.weights_, ref.means_, ref.covars_ = MIX_W, MIX_MEANS, MIX_VARS
    else:
        cov = FULL if kind == "full" else VARS
        ours = HiddenMarkovModel.from_params(START, TRANS, means=MEANS, covariances=cov)
        ref = H.GaussianHMM(K, covariance_type=kind, **common)
        ref.means_, ref.covars_ = MEANS, cov
    ref.startprob_, ref.transmat_ = START, TRANS
    return ours, ref


def data(model: HiddenMarkovModel, seed: int = 0):
    """A padded batch with uneven lengths, and the same sequences concatenated for hmmlearn."""
    x, _ = model.sample(len(LENGTHS), max(LENGTHS), seed=seed)
    flat = np.concatenate([x[i, :n].numpy() for i, n in enumerate(LENGTHS)])
    return x, torch.tensor(LENGTHS), flat.reshape(len(flat), -1)


@pytest.mark.parametrize("kind", ["diag", "full", "categorical", "gmm"])
def test_log_prob_posterior_and_viterbi_match_hmmlearn(kind):
    ours, ref = pair(kind)
    assert ours.dtype == torch.float64
    x, lengths, flat = data(ours)
    ll = ours.log_prob(x, lengths).detach()
    expected = [ref.score(flat[a:b]) for a, b in zip(np.cumsum([0, *LENGTHS[:-1]]), np.cumsum(LENGTHS))]
    np.testing.assert_allclose(ll.numpy(), expected, rtol=1e-5)
    gamma = ours.posterior(x, lengths)
    ours_gamma = np.concatenate([gamma[i, :n].numpy() for i, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(ours_gamma, ref.predict_proba(flat, LENGTHS), atol=1e-8)
    paths, scores = ours.viterbi(x, lengths)
    ref_score, ref_path = ref.decode(flat, LENGTHS, algorithm="viterbi")
    assert np.array_equal(np.concatenate([paths[i, :n].numpy() for i, n in enumerate(LENGTHS)]), ref_path)
    assert scores.sum().item() == pytest.approx(ref_score, rel=1e-10)
    assert (paths[2, 1:] == -1).all() and (gamma[2, 1:] == 0).all()  # padding


def test_list_input_equals_padded_and_float32_agrees():
    ours, _ = pair("diag")
    x, lengths, _ = data(ours)
    seqs = [x[i, :n] for i, n in enumerate(LENGTHS)]
    torch.testing.assert_close(ours.log_prob(seqs), ours.log_prob(x, lengths))
    single = ours.float()
    torch.testing.assert_close(single.log_prob(x.float(), lengths).double(), pair("diag")[0].log_prob(x, lengths),
                               rtol=1e-5, atol=0)


def test_length_zero_is_certain_and_length_one_is_a_mixture():
    ours, _ = pair("categorical")
    x = torch.tensor([[3, 1, 2], [0, 0, 0], [5, 0, 0]])
    ll = ours.log_prob(x, torch.tensor([3, 0, 1]))
    assert ll[1].item() == 0.0  # the empty sequence: log 1 (documented)
    assert ll[2].item() == pytest.approx(np.log((START * EMIT[:, 5]).sum()), rel=1e-12)
    paths, scores = ours.viterbi(x, torch.tensor([3, 0, 1]))
    assert (paths[1] == -1).all() and scores[1].item() == 0.0 and paths[2, 0] == np.argmax(START * EMIT[:, 5])
    assert ours.posterior(x, torch.tensor([3, 0, 1]))[1].sum().item() == 0.0


def test_stable_for_100000_steps():
    model = HiddenMarkovModel.from_params(START, TRANS, means=MEANS, covariances=VARS)
    x, _ = model.sample(1, 100_000, seed=1)
    with torch.no_grad():
        exact = model.log_prob(x).item()
        single = model.float().log_prob(x.float()).item()
    assert np.isfinite(exact) and single == pytest.approx(exact, rel=1e-5)
    assert exact / 100_000 == pytest.approx(-5.4, abs=0.5)


def test_no_torch_setting_outlives_a_call():
    """Denormals are flushed only inside the recursions, per thread; the thread count is never touched."""
    from zoo.layers.hmm import _flushing_denormals

    model = HiddenMarkovModel.from_params(START, TRANS, means=MEANS, covariances=VARS).float()
    x, _ = model.sample(3, 40, seed=0)
    threads = torch.get_num_threads()
    for flushing in (False, True):
        torch.set_flush_denormal(flushing)
        try:
            model.log_prob(x), model.viterbi(x), model.posterior(x), model.fit(x, max_iter=2, init=False)
            assert _flushing_denormals() == flushing and torch.get_num_threads() == threads
        finally:
            torch.set_flush_denormal(False)


def test_underflow_falls_back_to_the_log_domain():
    """A left-right chain with points 50 sd from every reachable state: the scaled pass underflows."""
    start, trans = np.array([1.0, 0, 0]), np.array([[0.9, 0.1, 0], [0, 0.9, 0.1], [0, 0, 1]])
    means, var = np.array([[0.0], [50.0], [100.0]]), np.ones((3, 1))
    ours = HiddenMarkovModel.from_params(start, trans, means=means, covariances=var)
    ref = H.GaussianHMM(3, covariance_type="diag", init_params="", params="", implementation="log")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, trans, means, var
    x = np.array([[0.0], [0.0], [100.0], [100.0], [50.0]])
    assert ours.log_prob(torch.from_numpy(x)).detach().item() == pytest.approx(ref.score(x), rel=1e-10)
    np.testing.assert_allclose(ours.posterior(torch.from_numpy(x))[0].numpy(), ref.predict_proba(x), atol=1e-8)
    stats = ours.e_step(torch.from_numpy(x))
    assert torch.isfinite(stats["trans"]).all() and stats["trans"].sum().item() == pytest.approx(4.0)


@pytest.mark.parametrize("kind", ["diag", "full", "categorical", "gmm"])
def test_baum_welch_never_decreases_the_likelihood(kind):
    truth, _ = pair(kind)
    x, _ = truth.sample(10, 60, seed=2)
    emission = {"diag": "gaussian", "full": "gaussian"}.get(kind, kind)
    model = HiddenMarkovModel(K, emission, n_features=None if kind == "categorical" else D, n_symbols=6,
                              covariance_type="full" if kind == "full" else "diag", n_mix=2, reg_covar=0.0).double()
    model.fit(x, max_iter=15, tol=-1.0)
    history = np.array(model.history_)
    assert len(history) == 15 and (np.diff(history) >= -1e-6 * np.abs(history[1:])).all(), history
    assert history[-1] > history[0]


def test_mini_batch_em_equals_full_batch():
    truth, _ = pair("diag")
    x, _ = truth.sample(12, 40, seed=3)
    lengths = torch.randint(1, 41, (12,), generator=torch.Generator().manual_seed(0))
    full = HiddenMarkovModel(K, "gaussian", n_features=D).double()
    full.initialize(x, lengths)
    batched = HiddenMarkovModel(K, "gaussian", n_features=D).double()
    batched.load_state_dict(full.state_dict())
    full.fit(x, lengths, max_iter=5, tol=-1.0, init=False)
    loader = [(x[i:i + 5], lengths[i:i + 5]) for i in range(0, 12, 5)]  # what a DataLoader yields
    batched.fit(loader, max_iter=5, tol=-1.0, init=False)
    for a, b in zip(full.parameters(), batched.parameters()):
        torch.testing.assert_close(a, b)


def test_gradient_training_improves_the_likelihood():
    truth, _ = pair("full")
    x, _ = truth.sample(8, 50, seed=4)
    model = HiddenMarkovModel(K, "gaussian", n_features=D)
    model.initialize(x, seed=0)
    before = model.log_prob(x).mean().item()
    loss = -model.log_prob(x).sum()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.fit(x, method="gradient", init=False, max_iter=15, lr=0.1, tol=-1.0)
    assert model.log_prob(x).mean().item() > before + 1.0


def test_sample_is_seeded_and_matches_its_parameters():
    model, _ = pair("categorical")
    x, z = model.sample(200, 30, seed=0)
    assert torch.equal(x, model.sample(200, 30, seed=0)[0]) and x.shape == z.shape == (200, 30)
    assert x.dtype == torch.long and 0 <= x.min() and x.max() < 6
    first = torch.bincount(z[:, 0], minlength=K).double() / 200
    assert (first - torch.from_numpy(START)).abs().max() < 0.1
    gauss, _ = pair("full")
    assert gauss.sample(3, 7, seed=1)[0].shape == (3, 7, D)


def test_singular_covariance_is_regularised():
    x = torch.randn(5, 40, 2, generator=torch.Generator().manual_seed(0)).double()
    x[..., 1] = 1.0  # a constant feature: zero variance
    model = HiddenMarkovModel(2, "gaussian", n_features=2, covariance_type="full").double().fit(x, max_iter=3)
    assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.parametrize("call, match", [
    (lambda m: m.log_prob(torch.full((2, 5, D), float("nan"))), "x must be finite"),
    (lambda m: m.log_prob(torch.zeros(2, 5, D + 1)), f"x must have {D} features"),
    (lambda m: m.log_prob(torch.zeros(0, 5, D)), "x must hold at least one sequence"),
    (lambda m: m.log_prob([]), "x must hold at least one sequence"),
    (lambda m: m.log_prob(torch.zeros(2, 5, D), torch.tensor([6, 1])), r"lengths must be in 0..5"),
    (lambda m: m.log_prob(torch.zeros(2, 5, D), torch.tensor([-1, 1])), r"lengths must be in 0..5"),
    (lambda m: m.log_prob(torch.zeros(2, 5, D), torch.tensor([1.5, 1.0])), "lengths must be 2 integers"),
    (lambda m: m.log_prob(torch.zeros(5)), r"x must be a padded batch \(B, T, D\)"),
    (lambda m: m.fit(torch.zeros(1, 2, D)), "x must hold at least 4 frames"),
    (lambda m: m.sample(0, 5), "n must be an integer >= 1"),
])
def test_bad_input_is_a_clear_error(call, match):
    model, _ = pair("diag")
    with pytest.raises(ValueError, match=match):
        call(model)


@pytest.mark.parametrize("x, match", [
    (torch.tensor([[0, 6, 1]]), r"symbols outside the vocabulary 0..5"),
    (torch.tensor([[0, -1, 1]]), r"symbols outside the vocabulary 0..5"),
    (torch.tensor([[0.5, 1.0]]), "x must hold integer symbols"),
])
def test_bad_symbols_are_a_clear_error(x, match):
    model, _ = pair("categorical")
    with pytest.raises(ValueError, match=match):
        model.log_prob(x)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="emission must be one of gaussian, categorical, gmm"):
        HiddenMarkovModel(3, "poisson")
    with pytest.raises(ValueError, match="n_features must be an integer >= 1"):
        HiddenMarkovModel(3, "gaussian")
    with pytest.raises(ValueError, match="covariance_type must be one of diag, full"):
        HiddenMarkovModel(3, "gaussian", n_features=2, covariance_type="tied")
