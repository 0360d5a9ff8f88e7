import pytest
import torch

import zoo
from zoo.data.text import ConsecutiveBlocks, RandomBlocks, TextDataModule, read_text, split_text
from zoo.tokenizers import UNK, bpe_tokenizer, char_tokenizer, start_id, tokenizer_config

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_char_tokenizer_is_nanogpts_vocabulary_plus_unk():
    text = read_text("tinyshakespeare")
    train, val = split_text(text)
    assert len(text) == 1_115_394 and (len(train), len(val)) == (1_003_854, 111_540)  # nanoGPT's split
    tok = char_tokenizer(train)
    assert tok.get_vocab_size() == 66 and tok.token_to_id(UNK) == 65  # 65 characters, then <unk>
    assert tok.encode("First Citizen:\n").ids == [18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10, 0]
    assert tok.encode("é").ids == [65] and start_id(tok) == 0


def test_bpe_tokenizer_round_trips_any_text():
    tok = bpe_tokenizer(TEXT, vocab_size=300)
    assert tok.get_vocab_size() == 300
    ids = tok.encode(TEXT[:80]).ids
    assert len(ids) < 80 and tok.decode(ids) == TEXT[:80]
    odd = "naïve 東京 🙂"  # never seen: byte-level, so still exact
    assert tok.decode(tok.encode(odd).ids) == odd
    assert tokenizer_config(tok, 64)["eos_token"] == "<|endoftext|>"
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 258"):
        bpe_tokenizer(TEXT, vocab_size=100)


def test_datamodule_batches_are_shifted_windows(corpus):
    torch.manual_seed(0)
    dm = TextDataModule(str(corpus), block_size=16, batch_size=4, batches_per_epoch=3, val_batch_size=5)
    dm.setup("fit")
    assert dm.texts["train"] + dm.texts["val"] == TEXT and len(dm.texts["val"]) == len(TEXT) - int(len(TEXT) * 0.9)
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    train = dm.encoded("train")
    start = int(torch.nonzero((train.unfold(0, 16, 1) == x[0]).all(1))[0])  # x[0] is a window of the text
    assert torch.equal(y[0], train[start + 1:start + 17])
    val = list(dm.val_dataloader())
    n_val = (len(dm.encoded("val")) - 1) // 16
    assert sum(len(b[0]) for b in val) == n_val and torch.equal(val[0][0][1], dm.encoded("val")[16:32])
    assert len(list(dm.test_dataloader())) == len(val)  # the test split is the validation text


def test_folder_corpus_and_bpe_datamodule(tmp_path):
    (tmp_path / "b.txt").write_text(TEXT[:500], encoding="utf-8")
    (tmp_path / "a.txt").write_text(TEXT[500:], encoding="utf-8")
    assert read_text(tmp_path) == TEXT[500:] + "\n" + TEXT[:500]  # sorted by name, joined by newlines
    dm = TextDataModule(str(tmp_path), tokenizer="bpe", vocab_size=280, block_size=8)
    assert dm.tokenizer.get_vocab_size() == 280 and dm.encoded("val").dtype == torch.long


@pytest.mark.parametrize("content, kwargs, match", [
    (b"", {}, "is empty"),
    (b"\xff\xfe bad bytes", {}, "is not UTF-8 text"),
    (b"short text", {"block_size": 64}, "gives 9 train tokens, fewer than block_size \\+ 1 = 65"),
])
def test_bad_corpora_are_clear_errors(tmp_path, content, kwargs, match):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    dm = TextDataModule(str(path), **kwargs)
    with pytest.raises(ValueError, match=match):
        dm.setup("fit")
        dm.train_dataloader()


@pytest.mark.parametrize("kwargs, match", [
    ({"block_size": 0}, "block_size must be an integer in 1.."),
    ({"batch_size": 1.5}, "batch_size must be int, got 1.5"),
    ({"tokenizer": ""}, "tokenizer must be 'char', 'bpe' or a model name/folder"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextDataModule("tinyshakespeare", **kwargs)
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        TextDataModule("tinyshakespeare", tokenizer="words").tokenizer
    with pytest.raises(ValueError, match="neither an existing file or folder nor a named corpus"):
        TextDataModule("no-such-corpus").setup()


def test_block_datasets():
    data = torch.arange(10)
    assert len(ConsecutiveBlocks(data, 3)) == 3 and torch.equal(ConsecutiveBlocks(data, 3)[2][1], torch.tensor([7, 8, 9]))
    x, y = next(iter(RandomBlocks(data, 4, 2, 1)))
    assert x.shape == (2, 4) and torch.equal(y, x + 1)


def test_a_pretrained_models_tokenizer_is_read_without_loading_the_model(tmp_path):
    from zoo.data.text import TextDataModule

    corpus = tmp_path / "c.txt"
    corpus.write_text("ROMEO: hello there, my friend.\n" * 20)
    dm = TextDataModule(str(corpus), tokenizer="gpt-shakespeare-char", block_size=8)
    assert dm.tokenizer.get_vocab() == zoo.load("gpt-shakespeare-char").tokenizer.get_vocab()
    assert dm.spec.vocab_size == 66
    with pytest.raises(ValueError, match="'vae-digits': that model saved no tokenizer"):
        TextDataModule(str(corpus), tokenizer="vae-digits").tokenizer
