"""The demo decides what each tab offers from the models' declared contract, not from family names."""

import pytest

from zoo.cli import load_demo
from zoo.registry import list_models, load

app = load_demo()


def test_tabs_list_the_models_whose_declarations_they_need():
    """Each tab lists every pretrained model whose declarations it needs (new models appear by themselves)."""
    images = app.models_where(app.makes_images)
    assert images == [n for n in list_models() if load(n).outputs == "images"]
    assert {"cvae-digits", "ddpm-digits", "dcgan-digits", "gmm-digits", "nb-digits", "vae-mnist-5k",
            "ddpm-mnist-5k"} <= set(images)
    assert "digits-classifier" not in images and "mnist-5k-classifier" not in images  # they output labels
    walks = app.models_where(app.walks)
    assert walks == [n for n in images if hasattr(load(n), "interpolate")]
    assert {"cvae-digits", "dcgan-digits", "vae-digits", "vae-mnist-5k"} <= set(walks)
    assert "ddpm-digits" not in walks and "gmm-digits" not in walks
    assert app.text_models() == ["gpt-shakespeare-char"]  # molecule generators have their own tab
    assert app.molecule_models() == ["gpt-moses"] and "gpt-moses" in app.models_where(app.continues_prompts)
    assert app.models_where(app.shows_states) == ["hmm-shakespeare-char"]
    assert app.models_where(app.draws_prompts) == ["ddpm-mnist-5k-text"]  # prompts in, images out
    scores = app.models_where(app.scores_images)
    assert scores == [n for n in images if load(n).has_log_prob()]
    assert {"cvae-digits", "gmm-digits", "nb-digits", "vae-digits", "vae-mnist-5k"} <= set(scores)
    assert "dcgan-digits" not in scores and "ddpm-digits" not in scores  # no density
    classifiers = app.models_where(app.classifies_images)
    assert "nb-digits" in classifiers and all(hasattr(load(n), "predict_proba") for n in classifiers)


@pytest.mark.parametrize("name, visible", [
    ("ddpm-digits", [True, True, True, True]),  # labels, steps, guidance, sampler: all declared
    ("cvae-digits", [True, False, False, False]),
    ("vae-digits", [False, False, False, False]),
    ("gmm-digits", [False, False, False, False]),
])
def test_image_controls_show_what_the_model_takes(name, visible):
    assert [update["visible"] for update in app.image_controls(name)] == visible


def test_anomaly_scores_pass_only_the_declared_estimator_settings():
    from zoo.data.digits import digits_split

    x = digits_split("test")[0][:4]
    for name, options in [("vae-digits", {"k": app.DEMO_IWAE_K}), ("gmm-digits", {}), ("nb-digits", {})]:
        detector = app.reference(name).detector  # k and seed, seed only, neither: the Detector adds the seed
        assert detector.score_options == options
        scores = detector.decision_function(x)
        assert scores.shape == (4,) and (scores == detector.decision_function(x)).all()
