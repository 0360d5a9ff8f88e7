"""The model contract over every family (zoo.models.contract): declarations exist and are honoured."""

import inspect

import pytest
import torch

from zoo.tokenizers import char_tokenizer
from zoo.models.base import GenerativeModel
from zoo.models.contract import LABELS_TYPE, OUTPUTS, Option
from zoo.registry import FAMILIES, create

TEXT = "To be, or not to be, that is the question.\n"


def small(family: str) -> GenerativeModel:
    """A small untrained model of `family`, class-conditional where the family can be."""
    torch.manual_seed(0)
    if family == "gpt":
        gpt = create("gpt", vocab_size=len(set(TEXT)) + 1, n_positions=16, n_embd=16, n_layer=1, n_head=2)
        gpt.set_tokenizer(char_tokenizer(TEXT))
        return gpt.eval()
    return create(family, **SMALL[family]).eval()


DIGITS = dict(image_size=8, channels=1)
SMALL = {
    "vae": dict(**DIGITS, levels=17, latent_dim=4, hidden=8, num_classes=10),
    "gan": dict(**DIGITS, latent_dim=8, hidden=8, num_classes=10),
    "diffusion": dict(**DIGITS, base=8, num_classes=10, schedule={"timesteps": 100}),
    "gpt": None,  # built by small(): it needs a tokenizer
    "gmm": dict(n_components=2, image_shape=[1, 8, 8], levels=17),
    "hmm": dict(n_states=3, vocab="ab c"),
    "nb": dict(num_classes=10, image_shape=[1, 8, 8], levels=17),
    "classifier": dict(**DIGITS, num_classes=10, hidden=4),
    "text-diffusion": dict(**DIGITS, base=8, channel_mults=[1, 2], schedule={"timesteps": 100},
                           text_encoder={"n_embd": 16, "n_layer": 1, "n_head": 2}, cross_attention_heads=2),
}
#: options that keep sampling fast in these tests
FAST = {"diffusion": dict(steps=2), "text-diffusion": dict(steps=2), "gpt": dict(max_new_tokens=4),
        "hmm": dict(length=6)}
#: a value for each condition, to sample and score with
CONDITION_VALUES = {"labels": 3, "prompt": "To "}


def test_every_family_is_covered():
    assert set(SMALL) == set(FAMILIES)


@pytest.fixture(params=sorted(FAMILIES))
def model(request):
    return small(request.param)


#: the families that sample (the classifier's declared output is labels: its sample raises, tested below)
GENERATORS = sorted(f for f in FAMILIES if f != "classifier")


@pytest.fixture(params=GENERATORS)
def generator(request):
    return small(request.param)


def test_declarations_exist_and_match_the_implementation(model):
    assert model.outputs in OUTPUTS
    declared = [*model.conditions, *model.sample_options, *model.log_prob_options]
    assert all(isinstance(o, Option) for o in declared)
    for group in (model.conditions, model.sample_options, model.log_prob_options):
        assert len({o.name for o in group}) == len(group)
    for option in declared:  # every default is valid, and every option says what it is for
        assert option.bind(model).check(option.default, "default") == option.default and option.help
    if model.outputs != "labels":  # _sample receives exactly the declared conditions and options
        keywords = set(inspect.signature(model._sample).parameters) - {"n", "seed"}
        assert keywords == {o.name for o in (*model.conditions, *model.sample_options)}
    if model.has_log_prob():
        parameters = inspect.signature(model.log_prob).parameters
        assert {o.name for o in (*model.conditions, *model.log_prob_options)} <= set(parameters)


def test_a_seeded_sample_is_deterministic_and_of_the_declared_kind(generator):
    fast = FAST.get(generator.family, {})
    x = generator.sample(3, seed=0, **fast)
    again, other = generator.sample(3, seed=0, **fast), generator.sample(3, seed=1, **fast)
    kind = generator.outputs
    if kind == "images":
        assert isinstance(x, torch.Tensor) and x.dim() == 4 and len(x) == 3 and x.is_floating_point()
        assert 0 <= x.min() and x.max() <= 1
    elif kind == "text":
        assert isinstance(x, list) and len(x) == 3 and all(isinstance(t, str) for t in x)
    else:
        assert isinstance(x, torch.Tensor) and len(x) == 3
    same = torch.equal if isinstance(x, torch.Tensor) else (lambda a, b: a == b)
    assert same(x, again) and not same(x, other)
    conditioned = {c: CONDITION_VALUES[c] for c in generator.sample_conditions()}
    y = generator.sample(3, seed=0, **conditioned, **fast)  # conditions give the same kind of output
    assert type(y) is type(x) and len(y) == 3


def test_an_undeclared_option_is_one_line_naming_the_valid_ones(generator):
    with pytest.raises(ValueError) as error:
        generator.sample(2, seed=0, bogus=1)
    message = str(error.value)
    assert f"{type(generator).__name__}.sample got unknown option 'bogus'" in message and "\n" not in message
    assert all(f"{name} (" in message for name in generator.accepts())
    assert ("it takes n, seed, " if generator.accepts() else "it takes only n and seed") in message


def test_seeds_are_keyword_only(generator):
    with pytest.raises(TypeError):
        generator.sample(2, 0)
    if generator.has_log_prob():
        seed = inspect.signature(generator.log_prob).parameters.get("seed")
        assert seed is None or seed.kind is inspect.Parameter.KEYWORD_ONLY


def test_log_prob_and_score_take_the_declared_conditions(model):
    if not model.has_log_prob():
        with pytest.raises(NotImplementedError, match="has no log-likelihood"):
            model.log_prob(torch.zeros(1))
        return
    x = model.sample(4, seed=0, **FAST.get(model.family, {}))
    settings = {"seed": 0} if "seed" in model.accepts("log_prob") else {}
    if "k" in model.accepts("log_prob"):
        settings["k"] = 4
    for conditions in ({}, {c: CONDITION_VALUES[c] for c in model.sample_conditions()}):
        lp = model.log_prob(x, **conditions, **settings)
        assert lp.shape == (4,) and torch.isfinite(lp).all()
        torch.testing.assert_close(model.score(x, **conditions, **settings), -lp)


def test_out_of_range_values_name_the_option_and_its_range(generator):
    numeric = [o for o in generator.accepts().values() if o.type in (int, float) and o.low is not None]
    for option in numeric:
        with pytest.raises(ValueError, match=rf"{option.name} must be .*{option.low}"):
            generator.sample(2, **{option.name: option.low - 1})
    for option in generator.accepts().values():
        if option.type is not LABELS_TYPE:
            with pytest.raises(ValueError, match=f"{option.name} must be"):
                generator.sample(2, **{option.name: object()})


def test_labels_are_declared_only_where_the_instance_is_conditional():
    vae = dict(**DIGITS, levels=17, latent_dim=2, hidden=4)
    conditional, unconditional = create("vae", **vae, num_classes=10), create("vae", **vae)
    assert conditional.sample_conditions()["labels"].high == 9 and "labels" not in unconditional.sample_conditions()
    assert unconditional.sample(2, seed=0, labels=None).shape == (2, 1, 8, 8)  # None is "not given"
    with pytest.raises(ValueError, match="got 'labels', but this VAE is unconditional .*it takes only n and seed"):
        unconditional.sample(2, labels=3)
    with pytest.raises(ValueError, match="labels must be in 0..9"):
        conditional.sample(2, labels=10)
    ddpm = create("diffusion", **DIGITS, base=8, schedule={"timesteps": 20})
    assert set(ddpm.accepts()) == {"steps", "sampler", "progress"}  # no guidance without classes
    assert ddpm.accepts()["steps"].high == 20  # the range held by the instance


def test_hmm_returns_one_type_and_its_states_through_their_own_method():
    text = create("hmm", n_states=3, vocab="ab c")
    strings, states = text.sample_with_states(2, seed=0, length=5)
    assert strings == text.sample(2, seed=0, length=5) and states.shape == (2, 5)
    numbers = create("hmm", n_states=2, emission="gaussian", n_features=3)
    assert numbers.outputs == "sequences" and numbers.sample(2, seed=0, length=4).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="HMM.sample got unknown option 'return_states'"):
        text.sample(2, return_states=True)
    with pytest.raises(ValueError, match="HMM.sample_with_states: length must be an integer in 1..100000"):
        text.sample_with_states(2, length=0)


def test_a_classifier_declares_labels_and_does_not_sample():
    clf = small("classifier")
    assert clf.outputs == "labels" and not clf.has_log_prob() and clf.accepts() == {}
    with pytest.raises(NotImplementedError, match="a classifier, not a generator"):
        clf.sample(2)


def test_layers_take_seeds_by_keyword_only():
    from zoo.layers import GaussianMixture, HiddenMarkovModel
    from zoo.layers.naive_bayes import GaussianNaiveBayes

    gmm, hmm, nb = GaussianMixture(2, 3), HiddenMarkovModel(2, "categorical", n_symbols=3), GaussianNaiveBayes(2, 3)
    for call in (lambda: gmm.sample(4, 0), lambda: hmm.sample(4, 5, 0), lambda: nb.sample(4, 1, 0)):
        with pytest.raises(TypeError):
            call()
    assert torch.equal(gmm.sample(4, seed=0), gmm.sample(4, seed=0))
    assert torch.equal(hmm.sample(4, 5, seed=0)[0], hmm.sample(4, 5, seed=0)[0])
    assert torch.equal(nb.sample(4, labels=1, seed=0), nb.sample(4, labels=1, seed=0))
