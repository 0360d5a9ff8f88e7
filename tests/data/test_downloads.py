"""The named downloaded datasets, on small files of the published formats written here (no network): IDX
files gzipped like MNIST's, a CIFAR-10 binary tar.gz of a few records, their digests pinned in
``CHECKSUMS`` for the test, and downloads from file:// URLs and a local http.server."""

import functools
import gzip
import hashlib
import io
import socket
import struct
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data import downloads
from zoo.data.downloads import (CHECKSUMS, Checksum, Cifar10DataModule, FashionMnistDataModule, MnistDataModule,
                                read_cifar10_binary, read_idx, read_idx_images)
from zoo.registry import DATAMODULES, datamodule_class

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(folder, per_class=3, seed=0):
    """MNIST's four files: `per_class` training images of each digit (shuffled), one test image of each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_y = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
    test_y = np.arange(10, dtype=np.uint8)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (len(train_y), 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": train_y,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": test_y}
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return images, labels, np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()


def write_cifar_tar(path, members=None, per_batch=4):
    """A CIFAR-10 binary archive: the folder, batches.meta.txt, data_batch_1..5 and test_batch; `members`
    (name -> bytes, or a TarInfo) replaces or adds members."""
    truth, files = {}, {}
    for i in range(1, 6):
        truth[f"data_batch_{i}.bin"] = cifar_records(per_batch, i)
    truth["test_batch.bin"] = cifar_records(10, 0)
    files["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\nautomobile\n"
    files.update({f"cifar-10-batches-bin/{k}": v[2] for k, v in truth.items()})
    files.update(members or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-bin")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in files.items():
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return truth


def pin(monkeypatch, dataset, folder):
    """Make the files in `folder` the 'published' ones of `dataset` for this test."""
    for file in folder.iterdir():
        data = file.read_bytes()
        monkeypatch.setitem(CHECKSUMS, f"{dataset}/{file.name}", Checksum(hashlib.sha256(data).hexdigest(), len(data)))


def one_line_error(match, call, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as e:
        call(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.fixture
def server(tmp_path):
    """A tiny http.server on 127.0.0.1 serving tmp_path/"served"; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


# -- the published digests ----------------------------------------------------------------------------


def test_every_published_file_has_a_sha256_a_size_and_a_mirror():
    assert len(CHECKSUMS) == 12  # MNIST 4, Fashion-MNIST 4, CIFAR-10 1, MOSES 3
    for key, (sha, size) in CHECKSUMS.items():
        dataset, name = key.split("/")
        assert len(sha) == 64 and int(sha, 16) >= 0 and size > 0 and downloads.MIRRORS[dataset]
    assert [m.files() for m in (MnistDataModule, FashionMnistDataModule)] == [IDX_FILES, IDX_FILES]
    assert Cifar10DataModule.files() == ("cifar-10-binary.tar.gz",)
    assert CHECKSUMS["cifar-10/cifar-10-binary.tar.gz"].sha256.startswith("c4a38c50")  # tensorflow-datasets' digest


# -- parsing ------------------------------------------------------------------------------------------------


def test_idx_files_give_their_pixels_and_labels(tmp_path):
    arrays = write_idx_dataset(tmp_path)
    for name, array in arrays.items():
        out = read_idx(tmp_path / name)
        assert out.dtype == np.uint8 and np.array_equal(out, array)
    x, y = read_idx_images(tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"])) and y.tolist() == list(range(10))
    wide = np.arange(-3, 3, dtype=">i2").reshape(2, 3)  # a big-endian dtype, not gzipped
    (tmp_path / "wide.idx").write_bytes(idx_bytes(wide, 0x0B))
    assert read_idx(tmp_path / "wide.idx").tolist() == [[-3, -2, -1], [0, 1, 2]]


@pytest.mark.parametrize("content, match", [
    (gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-100]), r"truncated: 3,820 bytes of data, its IDX "
                                                                       r"header \(5, 28, 28\) says 3,920"),
    (gzip.compress(idx_bytes(np.zeros(4, np.uint8)) + b"x"), r"more data than its IDX header \(4,\) says"),
    (gzip.compress(b"\x12\x34\x08\x03" + bytes(100)), r"not an IDX file \(magic number 0x12340803"),
    (gzip.compress(b"\0\0\x07\x01" + bytes(8)), r"IDX dtype code 0x07 is not one of IDX dtype codes"),
    (gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 100_000, 1000, 1000)), r"genzoo reads 1 to"),
    (gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (5, 28, 28), np.uint8)))[:2000],
     r"not a readable IDX file \(Compressed file ended"),
    (idx_bytes(np.zeros(4, np.uint8))[:-1], r"11 bytes, its IDX header says 12"),
], ids=["truncated", "too-long", "magic", "dtype-code", "too-big", "cut-gzip", "plain-truncated"])
def test_a_bad_idx_file_is_a_one_line_error(tmp_path, content, match):
    (tmp_path / "bad.gz").write_bytes(content)
    one_line_error(match, read_idx, tmp_path / "bad.gz")


def test_idx_expectations_and_label_checks(tmp_path):
    arrays = write_idx_dataset(tmp_path)
    one_line_error("gives 1 dimensions, expected 3", read_idx_images, tmp_path / "t10k-labels-idx1-ubyte.gz",
                   tmp_path / "t10k-labels-idx1-ubyte.gz")
    one_line_error("holds 30 images but .* 10 labels", read_idx_images, tmp_path / "train-images-idx3-ubyte.gz",
                   tmp_path / "t10k-labels-idx1-ubyte.gz")
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(arrays["t10k-labels-idx1-ubyte.gz"] + 5)))
    one_line_error("label 14 is not below num_classes=10", read_idx_images, tmp_path / "t10k-images-idx3-ubyte.gz",
                   tmp_path / "labels.gz")


def test_the_cifar_binary_archive_gives_its_records(tmp_path):
    truth = write_cifar_tar(tmp_path / "c.tar.gz")
    out = read_cifar10_binary(tmp_path / "c.tar.gz")
    images, labels = out["train"]
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    expected = np.concatenate([truth[f"data_batch_{i}.bin"][0] for i in range(1, 6)])  # batches 1..5, in order
    assert np.array_equal(images.numpy(), expected)
    assert labels.tolist() == [0, 1, 2, 3] * 5
    assert np.array_equal(out["test"][0].numpy(), truth["test_batch.bin"][0])
    assert out["test"][1].tolist() == list(range(10))


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("members, match", [
    ({"../evil.bin": b"x"}, r"unexpected member '../evil.bin'"),
    ({"/etc/passwd": b"x"}, r"unexpected member '/etc/passwd'"),
    ({"cifar-10-batches-bin/../data_batch_1.bin": b"x" * 3073}, r"unexpected member"),
    ({"cifar-10-batches-bin/data_batch_6.bin": b"x" * 3073}, r"unexpected member"),
    ({"cifar-10-batches-bin/readme.html/x": b"x"}, r"unexpected member"),
    ({"cifar-10-batches-bin/test_batch.bin": _link("cifar-10-batches-bin/test_batch.bin", "/etc/passwd")},
     r"is not a regular file"),
    ({"cifar-10-batches-bin/test_batch.bin": b"\0" * 3072}, r"3,072 bytes, not a whole number of 3,073-byte records"),
    ({"cifar-10-batches-bin/test_batch.bin": b"\x0a" + bytes(3072)}, r"a test record has label 10"),
])
def test_a_bad_tar_member_is_refused(tmp_path, members, match):
    write_cifar_tar(tmp_path / "c.tar.gz", members)
    one_line_error(match, read_cifar10_binary, tmp_path / "c.tar.gz")


def test_a_duplicate_or_missing_batch_or_a_broken_archive_is_refused(tmp_path):
    write_cifar_tar(tmp_path / "c.tar.gz")
    data = (tmp_path / "c.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "twice.tar.gz", "w:gz") as tar, tarfile.open(tmp_path / "c.tar.gz") as src:
        for member in [*src.getmembers(), src.getmember("cifar-10-batches-bin/data_batch_2.bin")]:
            tar.addfile(member, src.extractfile(member) if member.isreg() else None)
    one_line_error("data_batch_2.bin' appears twice", read_cifar10_binary, tmp_path / "twice.tar.gz")
    with tarfile.open(tmp_path / "less.tar.gz", "w:gz") as tar, tarfile.open(tmp_path / "c.tar.gz") as src:
        for member in src.getmembers():
            if not member.name.endswith("test_batch.bin"):
                tar.addfile(member, src.extractfile(member) if member.isreg() else None)
    one_line_error("lacks cifar-10-batches-bin/test_batch.bin", read_cifar10_binary, tmp_path / "less.tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    one_line_error("not a readable .tar.gz archive", read_cifar10_binary, tmp_path / "cut.tar.gz")


# -- the datamodules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, name, classes", [(MnistDataModule, "mnist", tuple("0123456789")),
                                                (FashionMnistDataModule, "fashion-mnist", ("T-shirt/top", "Trouser"))])
def test_idx_datamodules_split_the_official_train_set_and_keep_its_test_set(tmp_path, monkeypatch, cls, name, classes):
    arrays = write_idx_dataset(tmp_path / "data" / name)
    pin(monkeypatch, name, tmp_path / "data" / name)
    dm = cls(batch_size=8, val_fraction=0.34, root=str(tmp_path / "data"), download=False)
    dm.prepare_data()
    dm.setup()
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 20, "val": 10, "test": 10}  # 1 of each 3 validates
    assert sorted(dm.datasets["val"].labels.tolist()) == list(range(10))  # balanced
    test = dm.datasets["test"]
    assert test.images.dtype == torch.uint8
    assert torch.equal(test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"]))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    train_and_val = torch.cat([dm.datasets["train"].images, dm.datasets["val"].images])
    written = arrays["train-images-idx3-ubyte.gz"][:, None]
    assert sorted(map(bytes, train_and_val.numpy())) == sorted(map(bytes, written))  # every training image, once
    spec = dm.spec
    assert (spec.kind, spec.name, spec.image_shape, spec.num_classes, spec.levels) == \
           ("image", name, (1, 28, 28), 10, 256)
    assert spec.class_names[:len(classes)] == classes and len(spec.class_names) == 10
    assert "66% / 34% into train / val (seed 0)" in spec.description and "10,000 test" in spec.description
    assert spec.feature_extractor == ("mnist-5k-classifier" if name == "mnist" else None)
    again, other = (cls(val_fraction=0.34, root=str(tmp_path / "data"), seed=s) for s in (0, 1))
    again.setup()
    other.setup()
    assert torch.equal(again.datasets["val"].images, dm.datasets["val"].images)  # seeded
    assert not torch.equal(other.datasets["val"].images, dm.datasets["val"].images)


def test_cifar10_datamodule(tmp_path, monkeypatch):
    truth = write_cifar_tar(tmp_path / "data" / "cifar-10" / "cifar-10-binary.tar.gz")
    pin(monkeypatch, "cifar-10", tmp_path / "data" / "cifar-10")
    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path / "data"))  # root=None: the data folder
    dm = Cifar10DataModule(val_fraction=0.4, download=False)
    dm.setup()
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 12, "val": 8, "test": 10}  # 2 of each 5
    assert torch.equal(dm.datasets["test"].images, torch.from_numpy(truth["test_batch.bin"][0]))
    x, y = dm.datasets["val"][0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    spec = dm.spec
    assert (spec.name, spec.image_shape, spec.num_classes, spec.levels, spec.feature_extractor) == \
           ("cifar-10", (3, 32, 32), 10, 256, None)
    assert spec.class_names[0] == "airplane" and spec.class_names[9] == "truck"
    assert "official 50,000 training images split per class 60% / 40%" in spec.description


def test_registered_by_name_spec_without_data_and_evaluation_ignores_root():
    for name, cls in [("mnist", MnistDataModule), ("fashion-mnist", FashionMnistDataModule),
                      ("cifar-10", Cifar10DataModule)]:
        assert name in DATAMODULES and datamodule_class(name) is cls
        assert cls().spec.name == name  # the spec needs no file
    dm = MnistDataModule.for_evaluation(root="/somewhere/else", seed=3)
    assert dm.hparams.root is None and dm.hparams.seed == 3
    assert MnistDataModule(root=Path("/a/b")).hparams.root == "/a/b"  # saved as a string (JSON)
    one_line_error("val_fraction must be in", MnistDataModule, val_fraction=1.0)
    one_line_error("batch_size must be", Cifar10DataModule, batch_size=0)


# -- downloading --------------------------------------------------------------------------------------------


def test_download_over_http_falls_back_to_the_next_mirror_into_the_data_folder(tmp_path, monkeypatch, server):
    write_idx_dataset(tmp_path / "served")
    pin(monkeypatch, "mnist", tmp_path / "served")
    monkeypatch.setitem(downloads.MIRRORS, "mnist", (server + "gone/", server))  # the first answers 404
    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path / "cache"))
    dm = MnistDataModule(val_fraction=0.34)
    dm.prepare_data()
    cached = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(IDX_FILES)  # no temporary file left
    for name in IDX_FILES:
        assert (cached / name).read_bytes() == (tmp_path / "served" / name).read_bytes()
    (tmp_path / "served" / IDX_FILES[0]).unlink()
    offline = MnistDataModule(val_fraction=0.34, download=False)  # from the cache now
    offline.setup()
    assert len(offline.datasets["test"]) == 10


def test_download_from_a_file_url(tmp_path, monkeypatch):
    write_cifar_tar(tmp_path / "src" / "cifar-10-binary.tar.gz")
    pin(monkeypatch, "cifar-10", tmp_path / "src")
    monkeypatch.setitem(downloads.MIRRORS, "cifar-10", ((tmp_path / "src").as_uri() + "/",))
    path = downloads.fetch("cifar-10", "cifar-10-binary.tar.gz", root=tmp_path / "root")
    assert path == tmp_path / "root" / "cifar-10" / "cifar-10-binary.tar.gz" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["cifar-10-binary.tar.gz"]


def test_a_wrong_checksum_is_refused_and_leaves_nothing_behind(tmp_path, monkeypatch, server):
    write_idx_dataset(tmp_path / "served")
    pin(monkeypatch, "mnist", tmp_path / "served")
    size = CHECKSUMS["mnist/t10k-labels-idx1-ubyte.gz"].size
    monkeypatch.setitem(CHECKSUMS, "mnist/t10k-labels-idx1-ubyte.gz", Checksum("ab" * 32, size))
    monkeypatch.setitem(downloads.MIRRORS, "mnist", (server,))
    got = hashlib.sha256((tmp_path / "served" / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    message = one_line_error("t10k-labels-idx1-ubyte.gz from http://127.0.0.1", downloads.fetch, "mnist",
                             "t10k-labels-idx1-ubyte.gz", root=tmp_path / "cache")
    assert got in message and "ab" * 32 in message  # both digests
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []  # the temporary file is gone
    monkeypatch.setitem(CHECKSUMS, "mnist/t10k-labels-idx1-ubyte.gz", Checksum(got, size - 1))
    one_line_error(f"sends more than the {size - 1:,} bytes", downloads.fetch, "mnist", "t10k-labels-idx1-ubyte.gz",
                   root=tmp_path / "cache")
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_a_wrong_file_already_in_the_folder_is_refused_and_kept(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "mnist")
    pin(monkeypatch, "mnist", tmp_path / "mnist")
    monkeypatch.setitem(CHECKSUMS, "mnist/train-labels-idx1-ubyte.gz", Checksum("cd" * 32, 1))
    message = one_line_error("train-labels-idx1-ubyte.gz: sha256 [0-9a-f]{64} is not the published " + "cd" * 32,
                             MnistDataModule(root=str(tmp_path)).setup)
    assert "delete it" in message and (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").is_file()


def test_offline_is_one_line_naming_the_urls_and_the_folder(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(downloads.MIRRORS, "fashion-mnist", (f"http://127.0.0.1:{port}/",))
    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path / "cache"))
    message = one_line_error("could not download train-images-idx3-ubyte.gz from http://127.0.0.1",
                             FashionMnistDataModule().prepare_data)
    assert f"put train-images-idx3-ubyte.gz in {tmp_path / 'cache' / 'fashion-mnist'} by hand" in message
    assert list((tmp_path / "cache" / "fashion-mnist").iterdir()) == []
    one_line_error("is missing and download=False: put t10k-images-idx3-ubyte.gz", downloads.fetch, "fashion-mnist",
                   "t10k-images-idx3-ubyte.gz", download=False)


def test_the_default_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("GENZOO_DATA_DIR", raising=False)
    monkeypatch.delenv("GENZOO_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert downloads.data_dir() == tmp_path / ".cache" / "genzoo" / "data"
    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path / "d"))
    assert downloads.data_dir() == tmp_path / "d"
