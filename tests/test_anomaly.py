"""zoo.anomaly.Detector: PyOD's conventions, thresholds, every scoring family, and one-line errors for bad input."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from zoo.anomaly import MAX_SCORE, Detector, NotFittedError, shift_images, shifted_gaussian


@pytest.fixture(scope="module")
def table():
    """200 normal rows of a correlated 3-D Gaussian and one obvious outlier, last."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]]) + [5.0, -2.0, 10.0]
    return np.vstack([x, [[15.0, 8.0, -5.0]]])


@pytest.fixture(scope="module")
def threes(digits_test):
    from zoo.data.digits import digits_split

    x, y = digits_split("train")
    return x[y == 3]


def test_an_obvious_outlier_scores_highest_as_in_pyod(table):
    from pyod.models.knn import KNN

    ours, theirs = Detector("gmm", n_components=1).fit(table), KNN().fit(table)
    for det in (ours, theirs):
        assert det.decision_scores_.shape == (len(table),) and det.decision_scores_.dtype == np.float64
        assert det.decision_scores_.argmax() == len(table) - 1  # higher = more anomalous
        assert det.labels_.shape == (len(table),) and set(np.unique(det.labels_)) <= {0, 1} and det.labels_[-1] == 1
        assert isinstance(float(det.threshold_), float)
        assert det.predict(table[-3:]).tolist() == det.labels_[-3:].tolist()
        proba = det.predict_proba(table)
        assert proba.shape == (len(table), 2) and np.allclose(proba.sum(1), 1) and proba[-1, 1] == proba[:, 1].max()
        assert det.threshold_ == np.percentile(det.decision_scores_, 90)  # the same threshold rule
        assert np.array_equal(det.labels_, (det.decision_scores_ > det.threshold_).astype(int))
    # the score is the exact -log p(x) of the standardised rows: a Gaussian's, here
    z = (table - table.mean(0)) / table.std(0)
    cov = np.cov(z.T, bias=True) + 1e-6 * np.eye(3)
    d = z - z.mean(0)
    nll = 0.5 * (np.einsum("nd,de,ne->n", d, np.linalg.inv(cov), d) + np.log(np.linalg.det(cov)) + 3 * math.log(2 * math.pi))
    assert np.allclose(ours.decision_scores_, nll, atol=1e-6)


def test_contamination_sets_the_fraction_flagged_and_quantiles_use_validation(table):
    for c in (0.05, 0.1, 0.25, 0.5):
        det = Detector("gmm", n_components=1, contamination=c).fit(table)
        assert abs(det.labels_.mean() - c) <= 1 / len(table)
        assert det.threshold_ == np.percentile(det.decision_scores_, 100 * (1 - c))
    val = table[:100] + 0.01
    det = Detector("gmm", n_components=1, threshold_quantile=0.9).fit(table, validation=val)
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_function(val), 0.9))
    assert det.predict(val).mean() == pytest.approx(0.1, abs=0.011)
    unify = det.predict_proba(table, method="unify")
    assert unify.shape == (len(table), 2) and (unify >= 0).all() and (unify <= 1).all()


def test_before_fit_everything_is_a_clear_error(table):
    det = Detector("gmm")
    for call in (lambda: det.predict(table), lambda: det.decision_function(table), lambda: det.predict_proba(table)):
        with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
            call()
    assert not hasattr(det, "threshold_") and not hasattr(det, "decision_scores_")  # as scikit-learn's
    with pytest.raises(ValueError, match="threshold_: this Detector is not fitted yet"):
        det.threshold_  # noqa: B018 - NotFittedError is a ValueError and an AttributeError


@pytest.mark.parametrize("bad, message", [
    (dict(contamination=0.0), "contamination must be in"), (dict(contamination=0.6), "contamination must be in"),
    (dict(contamination=-1), "contamination must be in"), (dict(threshold_quantile=1.0), "threshold_quantile must"),
    (dict(background="flips"), "background must be one of"), (dict(model="gan"), "families that can score: "),
    (dict(model="dcgan-digits"), "the gan family"), (dict(model="no-such-model"), "unknown model"),
    (dict(model="vae-digits", latent_dim=3), "give a family name"),
    (dict(model="gpt"), "pass a pretrained name"),
])
def test_bad_settings_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=message) as e:
        Detector(**bad)
    assert "\n" not in str(e.value)


def test_the_gan_is_refused_naming_the_families_that_score():
    from zoo.models.gan import GAN

    with pytest.raises(ValueError, match=r"has no density or bound .* vae, diffusion, gpt, gmm, hmm, nb$"):
        Detector(GAN(image_size=8, channels=1))


def test_bad_data_names_the_argument(table, threes):
    det = Detector("gmm", n_components=1).fit(table)
    nan, inf = table.copy(), table.copy()
    nan[3, 1], inf[5, 0] = np.nan, np.inf
    cases = [(lambda: Detector("gmm").fit(nan), "X contains NaN or inf"),
             (lambda: det.decision_function(inf), "X contains NaN or inf"),
             (lambda: det.decision_function(table[:, :2]), "X has 2 features, but this detector was fitted on 3"),
             (lambda: det.decision_function(np.zeros((0, 3))), "X is empty"),
             (lambda: Detector("gmm").fit([]), "X is empty"),
             (lambda: det.decision_function(threes), "X holds images, but this detector was fitted on table"),
             (lambda: det.decision_function("some text"), "wrap a single text in a list"),
             (lambda: Detector("vae-digits").fit(torch.rand(4, 1, 28, 28)), r"shape \(1, 28, 28\), but the model takes \(1, 8, 8\)"),
             (lambda: Detector("vae-digits").fit(threes * 16), r"pixel values in \[0, 1\]"),
             (lambda: Detector("vae").fit(table), "the vae family scores images here, got table"),
             (lambda: Detector("gmm", background="shifts").fit(table), "background"),
             (lambda: Detector("vae", labels=None).fit(threes), "hparams"),
             (lambda: Detector("gmm").fit(table, labels=np.zeros(len(table))), "labels"),
             (lambda: Detector("hmm").fit(["ok", ""]), "empty text at index 1"),
             (lambda: det.decision_function(np.array([["a", "b", "c"]])), "X must hold real numbers|X must be")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_one_class_digits_with_and_without_the_shifted_background(digits_test, threes):
    x, y = digits_test
    plain = Detector("gmm", n_components=1, reg_covar=0.03).fit(threes)
    ratio = Detector("gmm", n_components=1, reg_covar=0.03, background="shifts").fit(threes)
    for det in (plain, ratio):
        assert roc_auc_score((y != 3).numpy(), det.decision_function(x)) > 0.97
    per_pixel = Detector("gmm", n_components=1, reg_covar=0.03, per_dimension=True).fit(threes)
    assert np.allclose(per_pixel.decision_function(x) * 64, plain.decision_function(x))
    # three components with a background trained on materialised shifts; naive Bayes on k-means clusters and on labels
    for det in (Detector("gmm", n_components=3, reg_covar=0.03, background="shifts"), Detector("nb", var_smoothing=0.01)):
        assert roc_auc_score((y != 3).numpy(), det.fit(threes).decision_function(x)) > 0.95
    from zoo.data.digits import digits_split

    xt, yt = digits_split("train")
    nb = Detector("nb").fit(xt[yt < 5], labels=yt[yt < 5])
    assert nb.model_.num_classes == 5 and roc_auc_score((y >= 5).numpy(), nb.decision_function(x)) > 0.8


def test_the_exact_shifted_background_is_the_gaussian_of_every_shift():
    x = torch.rand(5, 2, 4, 6).double()
    shifts = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)]
    copies = torch.cat([torch.roll(x, s, (2, 3)) for s in shifts]).flatten(1)
    mean, cov = shifted_gaussian(x, 1)
    assert torch.allclose(mean, copies.mean(0)) and torch.allclose(cov, torch.cov(copies.T, correction=0))
    moved = shift_images(x, 2, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and torch.allclose(moved.sum((2, 3)), x.sum((2, 3)))  # circular: no pixel lost


def test_pretrained_models_score_deterministically(digits_test):
    x, _ = digits_test
    for name in ("vae-digits", "gmm-digits", "nb-digits", "cvae-digits", "ddpm-digits"):
        det = Detector(name, score_options={"timesteps": 2} if name.startswith("ddpm") else None).fit(x[:20])
        a, b = det.decision_function(x[20:26]), det.decision_function(x[20:26])
        assert a.shape == (6,) and np.isfinite(a).all() and np.array_equal(a, b), name
    vae = Detector("vae-digits", score_options={"k": 4}).fit(x[:20])
    assert np.allclose(vae.decision_scores_, -vae.model_.log_prob(x[:20], k=4, seed=0).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="score_options: VAE scores take k, seed, got steps"):
        Detector("vae-digits", score_options={"steps": 3}).fit(x[:5])


def test_vae_and_ddpm_train_within_their_bounds(threes):
    vae = Detector("vae", latent_dim=4, hidden=8, max_epochs=2).fit(threes)
    ddpm = Detector("diffusion", base=8, channel_mults=[1], max_epochs=1, score_options={"timesteps": 3}).fit(threes)
    assert vae.epochs_ == 2 and vae.model_.levels == 17 and ddpm.epochs_ == 1
    for det in (vae, ddpm):
        assert np.isfinite(det.decision_scores_).all() and abs(det.labels_.sum() - 0.1 * len(threes)) <= 1
    assert Detector("vae", latent_dim=4, hidden=8, max_seconds=1e-3).fit(threes).epochs_ == 1  # time checked per epoch


def test_texts_score_per_token():
    normal = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the mat and the log"] * 3
    hmm = Detector("hmm", n_states=3, max_iter=20).fit(normal)
    scores = hmm.decision_function(["the cat sat", "zzz", "tac eht"])
    assert scores[1] == MAX_SCORE  # 'z' never seen: probability 0
    assert scores[0] == pytest.approx(-hmm.model_.log_prob(["the cat sat"]).item() / 11)
    gpt = Detector("gpt-shakespeare-char").fit(["To be, or not to be", "ROMEO: Good night, good night!"])
    plain, odd = gpt.decision_function(["What say you, my lord?", "xq zzv qqj kkw"])
    assert 0 < plain < odd


def test_the_cli_writes_a_csv_of_scores(tmp_path, table, threes, capsys):
    from PIL import Image

    from zoo.cli import main

    np.savetxt(tmp_path / "table.csv", table, delimiter=",", header="a,b,c", comments="")
    assert main(["score", "gmm", str(tmp_path / "table.csv"), "--out", str(tmp_path / "s.csv"),
                 "--contamination", "0.05"]) == 0
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "id,score,label" and len(rows) == len(table) + 1
    scores = np.array([float(r.split(",")[1]) for r in rows[1:]])
    labels = np.array([int(r.split(",")[2]) for r in rows[1:]])
    assert scores.argmax() == len(table) - 1 and labels[-1] == 1 and abs(labels.mean() - 0.05) <= 1 / len(table)
    assert "labelled anomalous" in capsys.readouterr().out
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(threes[:4]):
        Image.fromarray((img[0].numpy() * 255).astype(np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    np.save(tmp_path / "imgs.npy", threes[:6].numpy())
    for data in ("imgs", "imgs.npy"):
        assert main(["score", "vae-digits", str(tmp_path / data), "--out", str(tmp_path / "i.csv")]) == 0
        rows = (tmp_path / "i.csv").read_text().splitlines()
        assert rows[0] == "id,score" and len(rows) == (5 if data == "imgs" else 7)
    (tmp_path / "lines.txt").write_text("To be, or not to be\n\nROMEO: hi\n")
    assert main(["score", "hmm-shakespeare-char", str(tmp_path / "lines.txt"), "--out", str(tmp_path / "t.csv")]) == 0
    assert [r.split(",")[0] for r in (tmp_path / "t.csv").read_text().splitlines()] == ["id", "1", "3"]
    assert main(["score", "dcgan-digits", str(tmp_path / "imgs.npy")]) == 2
    assert "families that can score" in capsys.readouterr().err
    assert main(["score", "gmm", str(tmp_path / "table.csv"), "--contamination", "0.7"]) == 2
    assert "contamination must be in (0, 0.5]" in capsys.readouterr().err
