"""Molecules: the SMILES tokenizer, the data module (files, MOSES's sets, one molecule per sequence), and the
GPT on molecules (whole SMILES out, log p with the end token), on 1,500 MOSES training molecules."""

import gzip
import math
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.data import downloads
from zoo.data.molecules import MoleculesDataModule, moses_file, read_smiles
from zoo.models.gpt import GPT
from zoo.tokenizers import BOS, EOS, PAD, UNK, smiles_pieces, smiles_tokenizer, tokenizer_files

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).parent / "moses_sample.csv.gz"  # 1,500 molecules of MOSES's train, seeded


@pytest.fixture(scope="module")
def smiles():
    return read_smiles(SAMPLE)


def test_smiles_pieces_are_the_atom_level_tokens():
    assert smiles_pieces("Clc1cc[nH]c1Br") == ["Cl", "c", "1", "c", "c", "[nH]", "c", "1", "Br"]
    assert smiles_pieces("C[C@@H]1CC%12.O=C=O") == ["C", "[C@@H]", "1", "C", "C", "%12", ".", "O", "=", "C", "=", "O"]
    assert smiles_pieces("CCX") == ["C", "C", "X"]  # outside SMILES' alphabet: a piece of its own


def test_tokenizer_round_trips_moses_and_marks_the_unknown(smiles):
    tok = smiles_tokenizer(smiles)
    assert [tok.id_to_token(i) for i in range(4)] == [PAD, BOS, EOS, UNK]
    assert tok.get_vocab_size() == 4 + len({p for s in smiles for p in smiles_pieces(s)})
    for s in smiles[:200]:
        assert tok.decode(tok.encode(s).ids, skip_special_tokens=False) == s
    unk = tok.token_to_id(UNK)
    assert tok.encode("C[Se]CX").ids == [tok.token_to_id("C"), unk, tok.token_to_id("C"), unk]


def test_transformers_autotokenizer_loads_the_saved_tokenizer(smiles, tmp_path):
    from transformers import AutoTokenizer

    tok = smiles_tokenizer(smiles)
    for name, data in tokenizer_files(tok, 64).items():
        (tmp_path / name).write_bytes(data)
    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    assert theirs(smiles[0])["input_ids"] == tok.encode(smiles[0]).ids
    assert (theirs.bos_token, theirs.eos_token, theirs.pad_token) == (BOS, EOS, PAD)


def test_read_smiles_plain_csv_and_gzip(tmp_path, smiles):
    plain = tmp_path / "mols.smi"
    plain.write_text("\n".join(smiles[:5]) + "\n\n", encoding="utf-8")
    assert read_smiles(plain) == smiles[:5]
    table = tmp_path / "mols.csv"
    table.write_text("id,SMILES\n" + "\n".join(f"{i},{s}" for i, s in enumerate(smiles[:5])), encoding="utf-8")
    assert read_smiles(table) == smiles[:5]
    assert len(read_smiles(SAMPLE)) == 1500


@pytest.mark.parametrize("content, message", [
    ("", "holds no SMILES"),
    ("\n\n", "holds no SMILES"),
    ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20,
     "are not SMILES"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.smi"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as e:
        MoleculesDataModule(str(path)).setup()
    assert "\n" not in str(e.value)
    if "not SMILES" in message:
        assert "100% of 40 sampled lines" in str(e.value) and "RDKit" in str(e.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_smiles(tmp_path / "nope.smi")
    (tmp_path / "bin.smi").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        read_smiles(tmp_path / "bin.smi")


def test_datamodule_splits_one_molecule_per_sequence(smiles):
    dm = MoleculesDataModule(str(SAMPLE), batch_size=32, batches_per_epoch=20)
    dm.setup()
    sizes = {s: len(dm.smiles(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1350, "val": 75, "test": 75}
    assert sorted(dm.smiles("train") + dm.smiles("val") + dm.smiles("test")) == sorted(smiles)
    spec = dm.spec
    assert (spec.kind, spec.tokenizer, spec.max_length, spec.vocab_size) == (
        "molecules", "smiles", 128, dm.tokenizer.get_vocab_size())
    tok = dm.tokenizer
    bos, eos, pad = tok.token_to_id(BOS), tok.token_to_id(EOS), tok.token_to_id(PAD)
    torch.manual_seed(0)
    batches = list(dm.train_dataloader())
    assert len(batches) == 20
    real = padded = 0
    for x, y in batches:
        assert x.shape == y.shape and (x[:, 0] == bos).all()
        n = (y != -100).sum(1)  # tokens of each molecule after <bos>, <eos> included
        assert (y[torch.arange(len(y)), n - 1] == eos).all() and (x[y == -100] == pad).all()
        decoded = [tok.decode(row[1:k].tolist(), skip_special_tokens=False) for row, k in zip(x, n)]
        assert set(decoded) <= set(dm.smiles("train"))
        real, padded = real + int(n.sum()), padded + y.numel()
    assert real / padded > 0.97  # length buckets: batches pad almost nothing
    torch.manual_seed(0)
    again = next(iter(dm.train_dataloader()))
    assert torch.equal(again[0], batches[0][0])  # the order is torch's global RNG's: seeded runs repeat
    x, y = next(iter(dm.val_dataloader()))
    assert len(x) == 75 and dm.smiles("val")[0] == tok.decode(x[0, 1:(y[0] != -100).sum()].tolist())


def test_molecules_longer_than_max_length_are_left_out_with_a_warning():
    dm = MoleculesDataModule(str(SAMPLE), max_length=30)
    with pytest.warns(UserWarning, match="more than max_length=30 tokens"):
        kept = dm.encoded("train")
    assert 0 < len(kept) < 1350 and max(len(s) for s in kept) <= 30


def test_a_gpt_whose_window_is_too_short_is_refused():
    spec = MoleculesDataModule(str(SAMPLE), max_length=80).spec
    with pytest.raises(ValueError, match="n_positions must be at least 79, got 64"):
        GPT.data_args(spec, {"n_positions": 64})


def test_moses_files_are_found_checked_and_read(tmp_path, monkeypatch):
    """MOSES's sets from $GENZOO_DATA_DIR/moses/ (a small stand-in registered with its own checksum): the
    validation split is a seeded sample of test; a file that is not the published one is refused."""
    folder = tmp_path / "moses"
    folder.mkdir()
    for name in ("train", "test", "test_scaffolds"):
        (folder / f"{name}.csv.gz").write_bytes(SAMPLE.read_bytes())
    digest = downloads.sha256_of(SAMPLE)
    for name in ("train", "test", "test_scaffolds"):
        monkeypatch.setitem(downloads.CHECKSUMS, f"moses/{name}.csv.gz",
                            downloads.Checksum(digest, SAMPLE.stat().st_size))
    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path))
    assert moses_file("test") == folder / "test.csv.gz"
    dm = MoleculesDataModule("moses", val_size=100)
    dm.setup()
    assert len(dm.smiles("train")) == len(dm.smiles("test_scaffolds")) == 1500 and len(dm.smiles("val")) == 100
    assert set(dm.smiles("val")) <= set(dm.smiles("test")) and dm.spec.name == "moses"
    (folder / "test.csv.gz").write_bytes(gzip.compress(b"SMILES\nCCO\n"))
    with pytest.raises(ValueError, match="sha256"):
        moses_file("test")


def test_a_saved_config_never_makes_the_datamodule_read_a_path():
    with pytest.raises(ValueError, match="is not 'moses'"):
        MoleculesDataModule.for_evaluation(smiles="/etc/passwd")
    assert MoleculesDataModule.for_evaluation(smiles="moses", batch_size=8).hparams.batch_size == 8


# -- the GPT on molecules -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt(smiles):
    torch.manual_seed(0)
    model = GPT(vocab_size=smiles_tokenizer(smiles).get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2)
    model.set_tokenizer(smiles_tokenizer(smiles))
    return model.eval()


def test_sample_returns_whole_smiles_and_stops_when_all_have_ended(gpt):
    out = gpt.sample(8, seed=0, max_new_tokens=30)
    assert len(out) == 8 and all(isinstance(s, str) for s in out)
    assert not any(t in s for s in out for t in (BOS, EOS, PAD))
    assert gpt.sample(8, seed=0, max_new_tokens=30) == out  # seeded
    eos = gpt.tokenizer.token_to_id(EOS)
    with torch.no_grad():  # make <eos> certain: every molecule is empty and decoding stops after one step
        gpt.model.embed_tokens.weight[eos] += 100 * gpt.model.norm.weight.sign()
        steps = list(gpt.generate_ids([[1]] * 4, 50))
        assert gpt.sample(4, seed=0) == [""] * 4 and len(gpt._generated([[1]] * 4, 50, 1.0, None, None, 0)[0]) == 0
        gpt.model.embed_tokens.weight[eos] -= 100 * gpt.model.norm.weight.sign()
    assert len(steps) == 50  # generate_ids itself runs on: the stop is the caller's


def test_log_prob_scores_bos_tokens_and_eos(gpt, smiles):
    s = smiles[0]
    tok = gpt.tokenizer
    ids = torch.tensor([tok.token_to_id(BOS), *tok.encode(s).ids, tok.token_to_id(EOS)])
    with torch.no_grad():
        logp = gpt(ids[None, :-1]).log_softmax(-1)[0].gather(1, ids[1:, None]).sum()
    assert gpt.log_prob(s).item() == pytest.approx(logp.item(), rel=1e-5)
    assert gpt.log_prob(["CCO", "not a smiles"]).isfinite().all()  # any string is scored (unknowns as <unk>)


def test_recipe_smoke_fit_on_a_file_exports_a_transformers_checkpoint(tmp_path):
    """recipes/gpt-moses.yaml on the 1,500-molecule sample with a tiny net: the loss falls, the export
    samples molecules, and transformers loads the folder with the same logits."""
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "gpt-moses.yaml"), "--data.smiles", str(SAMPLE),
                   "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "2",
                   "--data.batches_per_epoch", "20", "--data.batch_size", "32", "--model.warmup_steps", "5",
                   "--model.net.n_embd", "32", "--model.net.n_head", "2", "--model.net.n_layer", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    import csv

    run = tmp_path / "runs" / "version_0"
    loss = [float(r["val/loss"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["val/loss"]]
    model = zoo.load(str(run / "pretrained"))
    assert len(loss) == 2 and loss[1] < loss[0] < math.log(model.vocab_size)
    assert model.extra_config["data_spec"]["kind"] == "molecules"
    assert len(model.sample(5, seed=0)) == 5
    samples = (run / "samples" / "step=000040.txt").read_text(encoding="utf-8").splitlines()
    assert len(samples) == 10
    assert sorted(p.name for p in (run / "checkpoints").glob("snapshot-*")) == [
        "snapshot-epoch=0-step=20.ckpt", "snapshot-epoch=1-step=40.ckpt"]  # every epoch's, for the curve
    from transformers import AutoModelForCausalLM

    theirs = AutoModelForCausalLM.from_pretrained(str(run / "pretrained")).eval()
    ids = torch.tensor([[1, *model.tokenizer.encode("CCOc1ccccc1").ids]])
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, model(ids), rtol=1e-4, atol=1e-4)


# -- the HMM on molecules: characters ending with a newline ------------------------------------------


def test_characters_mode_gives_symbol_sequences_that_end_with_a_newline():
    dm = MoleculesDataModule(str(SAMPLE), tokenizer="characters", batch_size=64, train_size=500)
    spec = dm.spec
    assert spec.vocab is not None and "\n" in spec.vocab and spec.vocab_size is None
    assert len(dm.smiles("train")) == 500
    x, lengths = next(iter(dm.train_dataloader()))
    first = "".join(spec.vocab[i] for i in x[0, :lengths[0]].tolist())
    assert first == dm.smiles("train")[0] + "\n"
    with pytest.raises(ValueError, match="there is no tokenizer"):
        dm.tokenizer


def test_hmm_recipe_smoke_fit_samples_molecules_that_end(tmp_path):
    """recipes/hmm-moses.yaml on the sample with 8 states: the HMM learns the end character from the data,
    samples strings cut before it, and log p of a SMILES includes ending it."""
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "hmm-moses.yaml"), "--data.smiles", str(SAMPLE),
                   "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "3",
                   "--trainer.check_val_every_n_epoch", "1", "--data.train_size", "1000", "--model.net.n_states", "8",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    model = zoo.load(str(tmp_path / "runs" / "version_0" / "pretrained"))
    assert model.end == "\n" and model.extra_config["data_spec"]["kind"] == "molecules"
    out = model.sample(20, seed=0, length=100)
    assert all("\n" not in s for s in out) and out == model.sample(20, seed=0, length=100)
    ends = model.hmm.log_prob([model.encode("CCO\n")])
    assert model.log_prob("CCO").item() == pytest.approx(ends.item())


def test_eval_of_the_pretrained_gpt_gives_the_moses_row_on_your_molecules():
    """`genzoo eval gpt-moses` on the 1,500-molecule sample (its test split: 75 molecules) with 200 samples: the
    test loss and MOSES's keys, the packaged model's validity near its card's (0.954 at 30,000)."""
    from zoo.evaluate import evaluate

    metrics = evaluate("gpt-moses", datamodule=MoleculesDataModule(str(SAMPLE), max_length=65), n_molecules=200)
    assert {"loss", "valid", "unique@1000", "FCD/Test", "SNN/Test", "IntDiv", "Filters", "Novelty"} <= set(metrics)
    assert "FCD/TestSF" not in metrics  # a file has no scaffold test set
    assert metrics["valid"] > 0.85 and metrics["n_molecules"] == 200 and 0.4 < metrics["loss"] < 0.8
