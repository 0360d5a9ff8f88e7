"""Named datasets downloaded once into genzoo's cache: MNIST, Fashion-MNIST and CIFAR-10 (and MOSES's SMILES
files, read by ``zoo.data.molecules``).

``MnistDataModule`` ("mnist"), ``FashionMnistDataModule`` ("fashion-mnist") and ``Cifar10DataModule``
("cifar-10") serve the full datasets as published: MNIST's and Fashion-MNIST's four gzipped IDX files,
and CIFAR-10's *binary* version (``cifar-10-binary.tar.gz``: records of 1 label byte + 3,072 pixel
bytes; the Python version is a pickle, and genzoo never unpickles anything). Images are kept as uint8 in
memory and handed out as floats in [0, 1] with their labels, like ``Mnist5kDataModule``.

Splits: the official training set (60,000 images; 50,000 for CIFAR-10) is split per class by a seeded
permutation (``seed``, default 0) into train and validation (``val_fraction``, default 10%: about
54,000 / 6,000, and 45,000 / 5,000); the official test set (10,000 images) is the test split, untouched.

Where the files live: ``<folder>/<name>/<file>``, the folder being ``root`` if given, else
``$GENZOO_DATA_DIR``, else genzoo's cache (``$GENZOO_CACHE/data``, by default ``~/.cache/genzoo/data``).
A missing file is downloaded (``download=True``) from its public addresses (``MIRRORS``, tried in
order) into a temporary file of that folder, checked against its published size and sha256
(``CHECKSUMS``), then renamed into place, so the cache never holds a partial or unverified file. A file
already there is checked again before it is read. Offline, put the files in that folder by hand.

The sha256 digests are those tensorflow-datasets records for the same files
(``tensorflow_datasets/url_checksums/mnist.txt``, ``fashion_mnist.txt`` and ``cifar10.txt``); the MNIST
and Fashion-MNIST ones also match torchvision's prototype datasets
(``torchvision/prototype/datasets/_builtin/mnist.py``), and the CIFAR-10 one other independent
projects that pin the same archive (its published md5 is c32a1d4ab5d03f1284b67883e8d87530).

Bad files are one-line ``ValueError``s naming the file: a wrong digest (both digests given), an IDX
file whose magic number, dtype code, dimensions or length disagree with its header (checked before any
large allocation), a tar member that is not a regular file of the expected names and sizes (the archive
is read in memory, nothing is extracted to disk).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from zoo.data.images import ImageDataModule, _Uint8Images
from zoo.data.spec import DataSpec

#: where each dataset's files are published, tried in order (a file's sha256 decides, not its address)
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    "cifar-10": ("https://www.cs.toronto.edu/~kriz/",),
    # the MOSES benchmark's SMILES sets, as its repository (and the molsets wheel) ships them
    "moses": ("https://github.com/molecularsets/moses/raw/master/moses/dataset/data/",),
}


class Checksum(NamedTuple):
    """A published file: its sha256 (hex) and its size in bytes."""

    sha256: str
    size: int


#: "<dataset>/<file>" -> the file as published (sources in the module docstring)
CHECKSUMS: dict[str, Checksum] = {
    "mnist/train-images-idx3-ubyte.gz": Checksum(
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
    "mnist/train-labels-idx1-ubyte.gz": Checksum(
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
    "mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
    "mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
    "fashion-mnist/train-images-idx3-ubyte.gz": Checksum(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
    "fashion-mnist/train-labels-idx1-ubyte.gz": Checksum(
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148),
    "cifar-10/cifar-10-binary.tar.gz": Checksum(
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170_052_171),
    # sha256 of the files inside the molsets 0.3.1 wheel (MOSES's own copies)
    "moses/train.csv.gz": Checksum("786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", 10_238_967),
    "moses/test.csv.gz": Checksum("f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2", 1_367_572),
    "moses/test_scaffolds.csv.gz": Checksum(
        "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde", 1_274_114),
}

#: seconds a connection may stay silent before a mirror counts as unreachable
TIMEOUT = 60
_CHUNK = 1 << 20


def data_dir() -> Path:
    """genzoo's folder for downloaded data: ``$GENZOO_DATA_DIR``, else ``$GENZOO_CACHE/data`` (by default
    ``~/.cache/genzoo/data``)."""
    if os.environ.get("GENZOO_DATA_DIR"):
        return Path(os.environ["GENZOO_DATA_DIR"]).expanduser()
    return Path(os.environ.get("GENZOO_CACHE", Path.home() / ".cache" / "genzoo")).expanduser() / "data"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- download: mirrors, a temporary file beside the target, sha256, an atomic rename ----------------------


class _Refused(Exception):
    """A mirror answered with a file that is not the published one."""


def fetch(dataset: str, filename: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The checked local copy of one published file (``CHECKSUMS["<dataset>/<filename>"]``), downloaded into
    ``<root or data_dir()>/<dataset>/`` if missing (and `download`)."""
    key = f"{dataset}/{filename}"
    if key not in CHECKSUMS:
        raise ValueError(f"{key!r} is not a published file genzoo knows ({', '.join(CHECKSUMS)})")
    expected = CHECKSUMS[key]
    folder = (Path(root).expanduser() if root is not None else data_dir()) / dataset
    target = folder / filename
    if target.is_file():
        got = sha256_of(target)
        if got != expected.sha256:
            raise ValueError(f"{target}: sha256 {got} is not the published {expected.sha256}; delete it to download "
                             "it again, or put the published file there")
        return target
    if not download:
        raise ValueError(f"{target} is missing and download=False: put {filename} (published at "
                         f"{MIRRORS[dataset][0]}{filename}) in {folder} by hand, or pass download=True")
    return _download(dataset, filename, expected, target)


def _download(dataset: str, filename: str, expected: Checksum, target: Path) -> Path:
    """Each mirror in turn until one gives the published file; a one-line error naming them all otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    failures, refused = [], None
    for base in MIRRORS[dataset]:
        url = base + filename
        try:
            _download_one(url, expected, target)
            return target
        except _Refused as e:
            refused = e
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, timeouts, dropped connections
            failures.append(f"{url} ({_one_line(e)})")
    if refused is not None:
        raise ValueError(str(refused))
    raise ValueError(f"could not download {filename} from {'; nor from '.join(failures)}; offline, put {filename} in "
                     f"{target.parent} by hand")


def _download_one(url: str, expected: Checksum, target: Path) -> None:
    """`url` into a temporary file beside `target`, hashed as it streams, renamed onto `target` if it is the
    published file; the temporary file is gone in every case."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, n = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response, \
                tqdm(total=expected.size, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                     leave=False, disable=None) as bar:
            while chunk := response.read(_CHUNK):
                n += len(chunk)
                if n > expected.size:
                    raise _Refused(f"{url} sends more than the {expected.size:,} bytes of {target.name}; refused it")
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if n < expected.size:
            raise OSError(f"the connection ended after {n:,} of {expected.size:,} bytes")
        got = digest.hexdigest()
        if got != expected.sha256:
            raise _Refused(f"{target.name} from {url}: sha256 {got} is not the published {expected.sha256}; "
                           "refused it (deleted)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# -- IDX files (MNIST, Fashion-MNIST) ------------------------------------------------------------------

#: IDX's dtype codes (the magic number's third byte); the data is big-endian
IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: the largest IDX payload genzoo reads (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | os.PathLike, *, ndim: int | None = None, dtype: str | None = None,
             max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its header's shape: the magic number (0, 0, dtype code,
    number of dimensions), the dtype code, the dimensions (expected `ndim`, `dtype`) and the payload's size
    are checked against the header before anything of that size is allocated; the payload must then hold
    exactly that many bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as probe:
            packed = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if packed else open(path, "rb")) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0":
                raise ValueError(f"{path}: not an IDX file (magic number 0x{magic.hex() or '-'}, expected 0x0000 then "
                                 "a dtype code and the number of dimensions)")
            code, n_dims = magic[2], magic[3]
            if code not in IDX_DTYPES or (dtype is not None and np.dtype(IDX_DTYPES[code]) != np.dtype(dtype)):
                raise ValueError(f"{path}: IDX dtype code 0x{code:02x} is not "
                                 f"{'one of IDX dtype codes' if code not in IDX_DTYPES else 'the expected ' + dtype}")
            if n_dims < 1 or (ndim is not None and n_dims != ndim):
                raise ValueError(f"{path}: the IDX header gives {n_dims} dimensions, expected {ndim or 'at least 1'}")
            raw = f.read(4 * n_dims)
            if len(raw) < 4 * n_dims:
                raise ValueError(f"{path}: truncated inside its IDX header")
            dims = struct.unpack(f">{n_dims}I", raw)
            item = np.dtype(IDX_DTYPES[code])
            nbytes = math.prod(dims) * item.itemsize
            if not 0 < nbytes <= max_bytes:
                raise ValueError(f"{path}: the IDX header gives dimensions {dims} ({nbytes:,} bytes); genzoo reads "
                                 f"1 to {max_bytes:,}")
            if not packed and path.stat().st_size != 4 + 4 * n_dims + nbytes:
                raise ValueError(f"{path}: {path.stat().st_size:,} bytes, its IDX header says "
                                 f"{4 + 4 * n_dims + nbytes:,}")
            data = bytearray()
            while len(data) <= nbytes and (chunk := f.read(min(_CHUNK, nbytes + 1 - len(data)))):
                data += chunk  # grows with what the file holds, never to what a header claims
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError; a cut gzip stream an EOFError
        raise ValueError(f"{path}: not a readable IDX file ({_one_line(e)})") from None
    if len(data) < nbytes:
        raise ValueError(f"{path}: truncated: {len(data):,} bytes of data, its IDX header {dims} says {nbytes:,}")
    if len(data) > nbytes:
        raise ValueError(f"{path}: more data than its IDX header {dims} says ({nbytes:,} bytes)")
    return np.frombuffer(data, item).reshape(dims).astype(item.newbyteorder("="), copy=False)


def read_idx_images(images: str | os.PathLike, labels: str | os.PathLike,
                    num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """An IDX pair as (uint8 images (N, 1, H, W), int64 labels (N,)): the same N, labels below `num_classes`."""
    x = read_idx(images, ndim=3, dtype="u1")
    y = read_idx(labels, ndim=1, dtype="u1")
    if len(x) != len(y):
        raise ValueError(f"{images} holds {len(x):,} images but {labels} {len(y):,} labels")
    if y.max() >= num_classes:
        raise ValueError(f"{labels}: label {int(y.max())} is not below num_classes={num_classes}")
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


# -- CIFAR-10's binary version --------------------------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
#: the archive's other members, known and skipped
CIFAR_EXTRAS = ("batches.meta.txt", "readme.html")
#: one record: the label byte, then 1,024 red, 1,024 green and 1,024 blue bytes (rows of 32)
CIFAR_RECORD = 1 + 3 * 32 * 32
#: records a batch file holds at most (each of the official six holds exactly 10,000)
CIFAR_MAX_RECORDS = 10_000


def read_cifar10_binary(path: str | os.PathLike) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """CIFAR-10's binary archive as {"train": data_batch_1..5, "test": test_batch}, each (uint8 images
    (N, 3, 32, 32), int64 labels (N,)). Read in memory with tarfile, nothing extracted: every member must be
    the ``cifar-10-batches-bin/`` folder or a regular file of the expected names (once each), and every batch
    a whole number of 3,073-byte records (at most 10,000) with labels 0..9."""
    path = Path(path)
    folder = CIFAR_FOLDER + "/"
    batches = {folder + n for names in CIFAR_BATCHES.values() for n in names}
    extras = {folder + n for n in CIFAR_EXTRAS}
    found: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name.rstrip("/") == CIFAR_FOLDER and member.isdir():
                    continue
                if name not in batches and name not in extras:
                    raise ValueError(f"{path}: unexpected member {member.name!r:.120} (the CIFAR-10 binary archive "
                                     f"holds {folder}data_batch_1..5.bin, test_batch.bin, {', '.join(CIFAR_EXTRAS)}); "
                                     "refused")
                if not member.isreg():
                    raise ValueError(f"{path}: member {member.name!r} is not a regular file (a link or a device); "
                                     "refused")
                if name in seen:
                    raise ValueError(f"{path}: member {member.name!r} appears twice; refused")
                seen.add(name)
                if name in extras:
                    continue
                if not (0 < member.size <= CIFAR_MAX_RECORDS * CIFAR_RECORD and member.size % CIFAR_RECORD == 0):
                    raise ValueError(f"{path}: member {member.name!r} holds {member.size:,} bytes, not a whole number "
                                     f"of {CIFAR_RECORD:,}-byte records (1 label + 3,072 pixels; at most "
                                     f"{CIFAR_MAX_RECORDS:,})")
                data = tar.extractfile(member).read(member.size)
                if len(data) != member.size:
                    raise ValueError(f"{path}: member {member.name!r} is truncated")
                found[name] = data
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable .tar.gz archive ({_one_line(e)})") from None
    missing = sorted(batches - set(found))
    if missing:
        raise ValueError(f"{path}: the archive lacks {', '.join(missing)}")
    out = {}
    for split, names in CIFAR_BATCHES.items():
        records = np.frombuffer(b"".join(found.pop(folder + n) for n in names), np.uint8).reshape(-1, CIFAR_RECORD)
        labels = records[:, 0]
        if labels.max() > 9:
            raise ValueError(f"{path}: a {split} record has label {int(labels.max())}, CIFAR-10's are 0..9")
        images = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32))
        out[split] = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    return out


# -- the datamodules ----------------------------------------------------------------------------------------


def train_val_split(labels: np.ndarray, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Per class, a seeded permutation whose first ``round(n * val_fraction)`` images (at least 1 of a class of
    2 or more, never all) validate and the rest train; indices sorted within a split (``_balanced_split``'s
    rule, in two parts: the official test set stays the test split)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(round(len(idx) * val_fraction), 1), len(idx) - 1) if len(idx) > 1 else 0
        parts["val"].append(idx[:n_val])
        parts["train"].append(idx[n_val:])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


class DownloadedImageDataModule(ImageDataModule):
    """What the named downloaded datasets share (see the module docstring): the files fetched and checked in
    ``prepare_data``, read and split in ``setup``.

    Args:
        batch_size, num_workers: the loaders'.
        seed: the seeded per-class split of the official training set into train / val.
        val_fraction: the share of each class of the official training set that validates.
        root: the folder to keep the files in (in its ``<name>/`` subfolder); None: genzoo's data folder
            (``$GENZOO_DATA_DIR``, else ``~/.cache/genzoo/data``).
        download: download missing files from their public addresses (False: only files already there).
    """

    #: the dataset's name (in tables, in the cache folder, in ``MIRRORS`` and ``CHECKSUMS``)
    DATASET: ClassVar[str]
    IMAGE_SHAPE: ClassVar[tuple[int, int, int]]
    CLASS_NAMES: ClassVar[tuple[str, ...]]
    FEATURE_EXTRACTOR: ClassVar[str | None] = None
    #: (official train, official test) sizes, for the description
    SIZES: ClassVar[tuple[int, int]]
    ABOUT: ClassVar[str]

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0, val_fraction: float = 0.1,
                 root: str | None = None, download: bool = True):
        super().__init__()  # batch_size, seed and num_workers: checked by DataArgs
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r:.80}")
        if root is not None:
            root = os.fspath(root)  # a path is saved as a string
        if not isinstance(download, bool):
            raise ValueError(f"download must be True or False, got {download!r:.80}")
        self.save_hyperparameters()
        self.datasets = {}

    @classmethod
    def for_evaluation(cls, **saved_args) -> "DownloadedImageDataModule":
        """As config.json records it, but in genzoo's data folder: a saved model never makes genzoo read a path
        (``root`` is dropped)."""
        return cls(**{**saved_args, "root": None})

    @classmethod
    def files(cls) -> tuple[str, ...]:
        """The published files of this dataset (keys of ``CHECKSUMS`` without the dataset's prefix)."""
        return tuple(k.split("/", 1)[1] for k in CHECKSUMS if k.split("/", 1)[0] == cls.DATASET)

    def _paths(self) -> dict[str, Path]:
        return {f: fetch(self.DATASET, f, self.hparams.root, self.hparams.download) for f in self.files()}

    def prepare_data(self) -> None:
        """Download (if missing) and check every file."""
        self._paths()

    def _read(self, paths: dict[str, Path]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{"train": the official training set, "test": the official test set}, as uint8 images and labels."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        official = self._read(self._paths())
        for split, (images, _) in official.items():
            if tuple(images.shape[1:]) != self.IMAGE_SHAPE:
                raise ValueError(f"{self.DATASET}: {split} images of shape {tuple(images.shape[1:])}, expected "
                                 f"{self.IMAGE_SHAPE}")
        images, labels = official["train"]
        idx = train_val_split(labels.numpy(), h.val_fraction, h.seed)
        self.datasets = {s: _Uint8Images(images[torch.from_numpy(i)], labels[torch.from_numpy(i)])
                         for s, i in idx.items()}
        self.datasets["test"] = _Uint8Images(*official["test"])

    @property
    def spec(self) -> DataSpec:
        h = self.hparams
        train, test = self.SIZES
        return DataSpec(kind="image", name=self.DATASET, image_shape=self.IMAGE_SHAPE, num_classes=10,
                        class_names=self.CLASS_NAMES, levels=256, feature_extractor=self.FEATURE_EXTRACTOR,
                        description=f"{self.ABOUT}; the official {train:,} training images split per class "
                                    f"{(1 - h.val_fraction) * 100:g}% / {h.val_fraction * 100:g}% into train / val "
                                    f"(seed {h.seed}), the official {test:,} test images as test")


class _IdxDataModule(DownloadedImageDataModule):
    """MNIST's four gzipped IDX files (Fashion-MNIST's are the same format and names)."""

    IMAGE_SHAPE = (1, 28, 28)
    SIZES = (60_000, 10_000)

    def _read(self, paths: dict[str, Path]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {split: read_idx_images(paths[f"{prefix}-images-idx3-ubyte.gz"], paths[f"{prefix}-labels-idx1-ubyte.gz"])
                for split, prefix in [("train", "train"), ("test", "t10k")]}


class MnistDataModule(_IdxDataModule):
    """MNIST (LeCun, Cortes and Burges): 70,000 handwritten digits, 28x28, 256 grey levels; the official
    60,000 training images split per class into train / val (``val_fraction``, seeded), the official 10,000
    test images as test. Its FID/KID/IS use ``mnist-5k-classifier`` (a classifier of 28x28 MNIST digits)."""

    DATASET = "mnist"
    CLASS_NAMES = tuple("0123456789")
    FEATURE_EXTRACTOR = "mnist-5k-classifier"
    ABOUT = "MNIST, 70,000 handwritten digits, 28x28, 256 grey levels"


class FashionMnistDataModule(_IdxDataModule):
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, Zalando Research): 70,000 greyscale photos of clothes in 10
    classes, 28x28, 256 levels; the official 60,000 training images split per class into train / val
    (``val_fraction``, seeded), the official 10,000 test images as test. No registered feature extractor."""

    DATASET = "fashion-mnist"
    CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
    ABOUT = "Fashion-MNIST, 70,000 photos of clothes in 10 classes, 28x28, 256 grey levels"


class Cifar10DataModule(DownloadedImageDataModule):
    """CIFAR-10 (Krizhevsky, 2009), from its binary version: 60,000 colour images in 10 classes, 32x32 RGB, 256
    levels; the official 50,000 training images (data_batch_1..5) split per class into train / val
    (``val_fraction``, seeded), the official 10,000 (test_batch) as test. No registered feature extractor."""

    DATASET = "cifar-10"
    IMAGE_SHAPE = (3, 32, 32)
    SIZES = (50_000, 10_000)
    CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    ABOUT = "CIFAR-10, 60,000 colour images in 10 classes, 32x32 RGB, 256 levels"

    def _read(self, paths: dict[str, Path]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return read_cifar10_binary(paths["cifar-10-binary.tar.gz"])
