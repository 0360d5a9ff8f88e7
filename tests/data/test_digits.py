import torch

from zoo.data.digits import SIZES, DigitsDataModule, digits_split


def test_split_sizes_scaling_and_determinism():
    splits = {s: digits_split(s) for s in ("train", "val", "test")}
    assert {s: len(x) for s, (x, _) in splits.items()} == SIZES == {"train": 1257, "val": 270, "test": 270}
    x, y = splits["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal((x * 16).round(), x * 16)  # exactly the 17 levels value / 16
    assert set(y.tolist()) == set(range(10))
    assert torch.equal(digits_split("test")[0], splits["test"][0])
    assert not torch.equal(digits_split("test", seed=1)[0], splits["test"][0])


def test_splits_are_disjoint_and_cover_the_dataset():
    rows = torch.cat([digits_split(s)[0].flatten(1) for s in ("train", "val", "test")])
    assert len(rows) == 1797


def test_datamodule_batches():
    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 270
