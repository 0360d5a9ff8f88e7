import json
import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.tokenizers import char_tokenizer
from zoo.models.gpt import GPT, _BFloat16Decoder, _Decoder, _GumbelNoise, pick

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 4


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    model = GPT(vocab_size=len(set(TEXT)) + 1, n_positions=16, n_embd=32, n_layer=2, n_head=2).eval()
    model.set_tokenizer(char_tokenizer(TEXT))
    return model


@pytest.fixture
def folder(gpt, tmp_path):
    gpt.save_pretrained(tmp_path / "gpt")
    return tmp_path / "gpt"


def greedy_reference(model: GPT, ids: list[int], n: int) -> list[int]:
    """The documented context rule without a cache: recompute the window every token; when it is full,
    keep the last n_positions // 2 tokens and go on."""
    window, out = list(ids), []
    for _ in range(n):
        if len(window) > model.n_positions:
            window = window[-(model.n_positions // 2):]
        token = model(torch.tensor([window]))[0, -1].argmax().item()
        out.append(token)
        window.append(token)
    return out


def test_forward_shapes_and_initial_loss(gpt):
    x = torch.randint(0, gpt.vocab_size, (3, 16))
    assert gpt(x).shape == (3, 16, gpt.vocab_size)
    y = torch.randint(0, gpt.vocab_size, (3, 16))
    assert gpt.loss(x, y).item() == pytest.approx(math.log(gpt.vocab_size), abs=0.1)  # near uniform at init
    with pytest.raises(ValueError, match="more than the context window n_positions=16"):
        gpt(torch.zeros(1, 17, dtype=torch.long))


def test_transformers_loads_the_folder_with_identical_logits(gpt, folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf) is LlamaForCausalLM
    x = torch.randint(0, gpt.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, gpt(x), atol=1e-5, rtol=0)
    tok = AutoTokenizer.from_pretrained(folder)
    text = "Speak, all:\n  me"
    assert tok(text).input_ids == gpt.encode(text)
    assert tok.decode(tok(text).input_ids) == text == gpt.decode(gpt.encode(text))


def test_transformers_pipeline_generates_offline(folder):
    from transformers import pipeline

    out = pipeline("text-generation", model=str(folder))("Speak", max_new_tokens=8, do_sample=False)
    assert out[0]["generated_text"].startswith("Speak") and len(out[0]["generated_text"]) > len("Speak")


def test_kv_cache_and_sliding_window_match_recomputation(gpt):
    ids = gpt.encode("Speak")
    for n in (5, 40):  # within the window, then sliding twice
        assert gpt.generate("Speak", max_new_tokens=n, temperature=0) == gpt.decode(greedy_reference(gpt, ids, n))


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.bfloat16, 0.05)])
def test_decode_steps_give_the_forward_logits(gpt, dtype, atol):
    """The decoder's rearranged weights (complex RoPE, folded norms) compute what the network does; it runs in
    float32 for a bfloat16 model (so only to bfloat16's precision there)."""
    model = gpt.to(dtype)
    ids = torch.tensor([gpt.encode("First Citizen")])
    with torch.inference_mode():
        full = model(ids)[0].double() / 0.5  # (T, vocab), at temperature 0.5
        decoder = _Decoder(model, 1, temperature=0.5)
        logits, pos = model._prefill(ids[:, :5], decoder.caches, None, 0.5)
        assert torch.allclose(logits[0].double(), full[4], atol=atol, rtol=0)
        for t in range(pos, ids.shape[1]):
            assert torch.allclose(decoder.step(ids[:, t], t, None)[0].double(), full[t], atol=atol, rtol=0)


def test_uneven_batches_equal_single_prompts(gpt):
    prompts = ["First Citizen:", "Sp", ""]
    batch = gpt.generate(prompts, max_new_tokens=30, temperature=0)
    assert batch == [gpt.generate(p, max_new_tokens=30, temperature=0) for p in prompts]


def test_sampling_is_seeded_and_top_k_1_is_greedy(gpt):
    a = gpt.generate("Sp", max_new_tokens=20, seed=1)
    assert a == gpt.generate("Sp", max_new_tokens=20, seed=1) != gpt.generate("Sp", max_new_tokens=20, seed=2)
    greedy = gpt.generate("Sp", max_new_tokens=20, temperature=0)
    assert gpt.generate("Sp", max_new_tokens=20, top_k=1, seed=3) == greedy
    assert gpt.generate("Sp", max_new_tokens=20, top_p=1e-6, seed=3) == greedy
    assert gpt.sample(2, seed=0, prompt="Sp", max_new_tokens=5) == ["Sp" + t for t in gpt.generate(["Sp"] * 2, 5, seed=0)]


def test_gumbel_sampling_follows_softmax_with_top_k_and_top_p():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, 4)
    gen = torch.Generator().manual_seed(0)
    freq = lambda t: torch.bincount(t, minlength=4).float() / len(t)  # noqa: E731
    noise = _GumbelNoise(20000, 4, gen, "cpu", torch.float32)
    assert torch.allclose(freq(pick(logits, None, None, noise)), logits[0].softmax(0), atol=0.015)
    assert torch.allclose(freq(pick(logits, 2, None, noise)), F.pad(logits[0, :2].softmax(0), (0, 2)), atol=0.015)
    # top_p=0.8: p = [.64, .24, .09, .03] -> the nucleus is the first two tokens (0.88 >= 0.8)
    assert torch.allclose(freq(pick(logits, None, 0.8, noise)), F.pad(logits[0, :2].softmax(0), (0, 2)), atol=0.015)


def test_stop_strings_and_streaming(gpt):
    full = gpt.generate("", max_new_tokens=40, seed=0)
    cut = full[5:7]
    stopped = gpt.generate("", max_new_tokens=40, seed=0, stop=[cut, "\x00"])
    assert stopped == full[:full.find(cut)]
    pieces = list(gpt.stream("", max_new_tokens=40, seed=0))
    assert "".join(pieces) == full and len(pieces) > 1
    assert "".join(gpt.stream("", max_new_tokens=40, seed=0, stop=cut)) == stopped


def test_unseen_characters_become_unk(gpt):
    ids = gpt.encode("Sp€ak")
    assert ids[2] == gpt.vocab_size - 1 and gpt.decode(ids) == "Sp<unk>ak"
    assert isinstance(gpt.generate("€", max_new_tokens=3, seed=0), str)


def test_log_prob_is_the_sum_of_token_log_probabilities(gpt):
    text = "Speak, speak."
    ids = torch.tensor([gpt.encode("")[0], *gpt.encode(text)])
    expected = gpt(ids[None, :-1]).log_softmax(-1)[0].gather(1, ids[1:, None]).sum()
    assert gpt.log_prob(text).item() == pytest.approx(expected.item(), abs=1e-4)
    long = TEXT[:60]  # longer than the window: scored in sliding windows, every token once
    assert gpt.log_prob([text, long]).shape == (2,) and gpt.log_prob(long).item() < expected.item()


def test_log_prob_given_a_prompt_scores_the_distribution_sample_draws_from(gpt):
    text, prompt = "speak.", "All:\nS"
    assert gpt.log_prob(text, prompt="").item() == gpt.log_prob(text).item()
    ids = torch.tensor([*gpt.encode(prompt), *gpt.encode(text)])  # the prompt without the start token, as generate
    logp = gpt(ids[None, :-1]).log_softmax(-1)[0]  # (T - 1, vocab)
    expected = logp[len(prompt) - 1:].gather(1, ids[len(prompt):, None]).sum()
    assert gpt.log_prob([text], prompt=prompt).item() == pytest.approx(expected.item(), abs=1e-4)
    long = TEXT[:40]  # prompt + text beyond the window: scored in sliding windows
    assert len(prompt) + len(long) > gpt.n_positions and torch.isfinite(gpt.log_prob(long, prompt=prompt)).all()
    with pytest.raises(ValueError, match="prompt is 17 tokens long"):
        gpt.log_prob(text, prompt="x" * 17)


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompts="x" * 17), "prompt is 17 tokens long, more than the context window n_positions=16"),
    (dict(max_new_tokens=0), "max_new_tokens must be an integer in 1..10000"),
    (dict(max_new_tokens=10_001), "max_new_tokens must be an integer in 1..10000"),
    (dict(top_p=0.0), r"top_p must be None or a number in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be None or a number in \(0, 1\]"),
    (dict(temperature=-0.5), "temperature must be None or a number >= 0"),
    (dict(top_k=0), "top_k must be None or an integer >= 1"),
    (dict(stop=""), "stop must be None, a non-empty str"),
    (dict(prompts=[]), "prompts must be a str or a non-empty list of str"),
    (dict(prompts=[1]), "prompts must be a str"),
    (dict(seed="a"), "seed must be None or an integer"),
])
def test_bad_generation_input_names_the_argument(gpt, kwargs, match):
    kwargs = {"prompts": "Sp", "max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        gpt.generate(**kwargs)


def test_the_models_temperature_is_the_default_and_is_saved(tmp_path):
    torch.manual_seed(0)
    cool = GPT(vocab_size=len(set(TEXT)) + 1, n_positions=16, n_embd=32, n_layer=2, n_head=2, temperature=0.5).eval()
    cool.set_tokenizer(char_tokenizer(TEXT))
    at = {t: cool.generate(["Sp"] * 8, max_new_tokens=12, seed=1, temperature=t) for t in (0.5, 1.0)}
    assert cool.generate(["Sp"] * 8, max_new_tokens=12, seed=1) == at[0.5] != at[1.0]
    assert cool.sample(8, seed=1, prompt="Sp", max_new_tokens=12) == ["Sp" + t for t in at[0.5]]
    assert "".join(cool.stream("Sp", max_new_tokens=12, seed=1)) == cool.generate("Sp", max_new_tokens=12, seed=1)
    cool.save_pretrained(tmp_path / "cool")
    assert json.loads((tmp_path / "cool" / "generation_config.json").read_text())["temperature"] == 0.5
    loaded = zoo.load(str(tmp_path / "cool"))
    assert loaded.temperature == 0.5 and loaded.generate(["Sp"] * 8, max_new_tokens=12, seed=1) == at[0.5]
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature must be"):
            GPT(vocab_size=10, temperature=bad)


def test_bad_init_arguments():
    with pytest.raises(ValueError, match="n_embd \\(30\\) must be n_head \\(4\\) times an even head size"):
        GPT(vocab_size=10, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="n_embd \\(12\\) must be n_head \\(4\\) times an even head size"):
        GPT(vocab_size=10, n_embd=12, n_head=4)  # head size 3: rotary embeddings need pairs
    with pytest.raises(ValueError, match="rope_theta must be a finite number > 1"):
        GPT(vocab_size=10, rope_theta=0.5)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        GPT(vocab_size=0)
    with pytest.raises(ValueError, match="tokenizer has 30 tokens but the model's vocab_size is 10"):
        GPT(vocab_size=10).set_tokenizer(char_tokenizer("abcdefghijklmnopqrstuvwxyz.,;"))
    with pytest.raises(ValueError, match="no tokenizer"):
        GPT(vocab_size=10).generate("a")


def test_round_trip_keeps_weights_tokenizer_and_transformers_fields(gpt, folder):
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "generation_config.json",
                                                        "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["architecture"], config["family"], config["model_type"]) == ("GPT", "gpt", "llama")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["max_position_embeddings"] == 16
    assert config["intermediate_size"] == 88 and config["tie_word_embeddings"] is True
    loaded = zoo.load(str(folder))
    assert isinstance(loaded, GPT) and loaded.extra_config == gpt.extra_config == {}
    assert loaded.generate("Sp", max_new_tokens=30, seed=4) == gpt.generate("Sp", max_new_tokens=30, seed=4)
    loaded.save_pretrained(folder.parent / "again")
    assert all((folder / n).read_bytes() == (folder.parent / "again" / n).read_bytes() for n in
               ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])


def test_loading_and_generating_stay_light(folder):
    import subprocess
    import sys

    code = (f"import sys, zoo; zoo.load({str(folder)!r}).generate('Sp', max_new_tokens=5, seed=0); "
            "print(','.join(m for m in ('lightning', 'transformers', 'gradio', 'torchvision', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_rms_norm_gradients_equal_torch_rms_norm():
    from zoo.models.gpt import RMSNorm, _RMSNormFunction

    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True), torch.randn(8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, w: _RMSNormFunction.apply(x, w, 1e-6), (x, w.requires_grad_()))
    norm = RMSNorm(16, 1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(4, 5, 16, requires_grad=True)
    g = torch.randn(4, 5, 16)
    ours = torch.autograd.grad(norm(x), (x, norm.weight), g)
    reference = torch.autograd.grad(F.rms_norm(x, (16,), norm.weight, 1e-6), (x, norm.weight), g)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, reference))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the float32 residual stream under autocast: ours
        assert norm(x).grad_fn.name().startswith("_RMSNormFunction")
    with torch.no_grad():  # inference: torch's fused forward
        assert norm(x).grad_fn is None and torch.equal(norm(x), F.rms_norm(x, (16,), norm.weight, 1e-6))


# -- sequences that end (SMILES): rows that have ended leave the batch --------------------------------------

SMILES = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "O=C(O)c1ccccc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "C#N"]


@pytest.fixture
def smiles_gpt():
    """A tiny SMILES GPT, as tests/data/test_molecules.py's: untrained, its rows end at all lengths."""
    from zoo.tokenizers import smiles_tokenizer

    torch.manual_seed(0)
    tok = smiles_tokenizer(SMILES)
    model = GPT(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=32, n_layer=2, n_head=2).eval()
    model.set_tokenizer(tok)
    return model


def ended_reference(model: GPT, ids: list[list[int]], n: int, **kwargs) -> list[list[int]]:
    """Every row decoded for all `n` steps (``generate_ids``), then each cut before its first <eos>."""
    end = model.end_id
    rows = torch.stack(list(model.generate_ids(ids, n, **kwargs)), 1).tolist()
    return [row[:row.index(end)] if end in row else row for row in rows]


def prompts(model: GPT, n: int) -> list[list[int]]:
    """`n` prompts of one length: <bos> and one atom each."""
    atoms = ["C", "c", "O", "N", "(", "="]
    return [model.encode(atoms[i % len(atoms)]) for i in range(n)]


@pytest.mark.parametrize("drop_share", [math.inf, 1e-9, None, 1 / 2])
def test_dropping_ended_rows_changes_no_token(smiles_gpt, drop_share):
    """Rows that have ended leave the batch (inf: never; 1e-9: at every end; None: GPT.drop_share), and each row
    keeps its prompt's row of the noise: greedy and seeded sampling give the tokens of decoding every row to the
    end, cut at <eos>."""
    model, end = smiles_gpt, smiles_gpt.end_id
    ids = prompts(model, 24)
    for kwargs in (dict(temperature=0), dict(seed=3), dict(seed=5, top_p=0.9), dict(seed=4, temperature=0.7, top_k=5)):
        kw = dict(temperature=1.0, top_k=None, top_p=None, seed=None) | kwargs
        out = model._ended(ids, 31, kw["temperature"], kw["top_k"], kw["top_p"], kw["seed"], drop_share=drop_share,
                           bfloat16=False)
        assert out == ended_reference(model, ids, 31, **kwargs)
        assert all(end not in row for row in out)
    lengths = [len(row) for row in out]
    assert min(lengths) < 3 and max(lengths) == 31 and len(set(lengths)) > 10  # rows end all along, some never


def test_sample_drops_ended_rows_and_repeats_with_a_seed(smiles_gpt, monkeypatch):
    model, end, ended, calls = smiles_gpt, smiles_gpt.end_id, smiles_gpt._ended, []
    monkeypatch.setattr(model, "_ended", lambda ids, *args, **kw: calls.append(len(ids)) or ended(ids, *args, **kw))
    out = model.sample(6, seed=0, max_new_tokens=31)
    assert out == model.sample(6, seed=0, max_new_tokens=31) and calls == [6, 6]
    assert out == [model.decode(row) for row in ended_reference(model, [model.encode("")] * 6, 31, seed=0)]
    assert not any(t in s for s in out for t in ("<bos>", "<eos>", "<pad>"))
    # uneven prompts take generate_ids' path; greedy, both agree
    texts = ["C", "CC(", "c1cc"]
    assert model.generate(texts, max_new_tokens=20, temperature=0) == [
        model.generate(t, max_new_tokens=20, temperature=0) for t in texts]
    assert calls == [6, 6, 1, 1, 1]  # the batch of uneven prompts did not call it
    # a sequence that ends stays inside the window: 40 new tokens asked, at most n_positions + 1 - 1 = 32 given
    rows = model._generated([model.encode("")] * 200, 40, 1.0, None, None, 1)
    assert len(calls) == 6 and max(map(len, rows)) == 32 and all(end not in row for row in rows)
    assert rows == model._generated([model.encode("")] * 200, 32, 1.0, None, None, 1)


def test_kept_rows_decode_as_in_the_whole_batch(smiles_gpt):
    """``_Decoder.keep``: the kept rows' caches, and so their next logits, are those of the whole batch."""
    model = smiles_gpt
    ids = torch.tensor(prompts(model, 6))
    token = torch.tensor([5, 6, 7, 8, 9, 10])
    rows = torch.tensor([1, 4, 5])
    with torch.inference_mode():
        for cls in (_Decoder, _BFloat16Decoder):
            decoder = cls(model, 6, 1.0)
            _, pos = model._prefill(ids, decoder.caches, None, 1.0)
            decoder.step(token, pos, None)
            whole = decoder.step(token, pos + 1, None)  # (6, vocab)
            decoder.keep(rows, pos + 1)
            kept = decoder.step(token[rows], pos + 1, None)  # (3, vocab)
            assert kept.dtype == torch.float32 and decoder.kv_caches[0].shape[0] == 3
            torch.testing.assert_close(kept, whole[rows], atol=1e-6, rtol=0)


def test_bfloat16_decoder_gives_the_forward_logits_to_bfloat16_precision(smiles_gpt):
    model = smiles_gpt
    ids = torch.tensor([model.encode(s) for s in ["CC(=O)Nc1ccc", "O=C(O)c1cccc"]])  # 2 x 11 tokens
    with torch.inference_mode():
        full = model(ids) / 0.5  # (2, T, vocab), at temperature 0.5
        decoder = _BFloat16Decoder(model, 2, temperature=0.5)
        logits, pos = model._prefill(ids[:, :3], decoder.caches, None, 0.5)
        steps = torch.stack([logits] + [decoder.step(ids[:, t], t, None) for t in range(pos, ids.shape[1])], 1)
    scale = full.abs().max().item()
    torch.testing.assert_close(steps, full[:, 2:], atol=0.02 * scale, rtol=0)  # bfloat16 keeps 8 bits
    assert not torch.equal(steps, full[:, 2:])  # it does compute in bfloat16


def test_bfloat16_sampling_repeats_and_ends_rows(smiles_gpt):
    model, end = smiles_gpt, smiles_gpt.end_id
    ids = prompts(model, 70)
    a = model._ended(ids, 31, 1.0, None, None, 7, bfloat16=True)
    assert a == model._ended(ids, 31, 1.0, None, None, 7, bfloat16=True)  # seeded runs repeat
    assert all(end not in row for row in a) and max(map(len, a)) <= 31
    reference = model._ended(ids, 31, 1.0, None, None, 7, bfloat16=False)
    assert sum(x == y for x, y in zip(a, reference)) >= 60  # the same noise: mostly the same tokens
    greedy = model._ended(ids, 31, 0, None, None, None, bfloat16=True)
    assert greedy == model._ended(ids, 31, 0, None, None, None, bfloat16=True, drop_share=math.inf)


def test_many_prompts_decode_in_parts_within_the_kv_cache_budget(smiles_gpt, monkeypatch):
    """30,000 molecules at once would hold 11.8 GB of KV caches (gpt-moses): prompts beyond the budget's rows
    are decoded in parts, each seeded from the call's seed, so the same seed still gives the same molecules."""
    per_row = smiles_gpt.n_layer * smiles_gpt.n_positions * 2 * smiles_gpt.n_embd * 4
    monkeypatch.setattr(type(smiles_gpt), "KV_CACHE_BUDGET", 3 * per_row)
    assert smiles_gpt.rows_per_call() == 3
    passes = []
    generated = smiles_gpt._generated
    monkeypatch.setattr(smiles_gpt, "_generated",
                        lambda ids, *a, **k: passes.append(len(ids)) or generated(ids, *a, **k))
    first = smiles_gpt.sample(8, seed=5, max_new_tokens=30)
    assert passes == [3, 3, 2] and len(first) == 8
    assert smiles_gpt.sample(8, seed=5, max_new_tokens=30) == first
    assert smiles_gpt.sample(8, seed=6, max_new_tokens=30) != first
