"""MNIST loading, the fixed 50k / 10k train / validation split, and the batch pipelines."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from .augment import random_affine

ENV_VAR = "MNIST_ROOT"
"""Environment variable naming the data root (the folder that holds `MNIST/raw/*-ubyte`)."""

# The S3 mirror first: yann.lecun.com has answered 403 to scripts since 2024.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
RAW_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
N_TRAIN, N_VAL, N_TEST = 50_000, 10_000, 10_000
SPLIT_SEED = 0
"""The split is fixed for the whole project: every model sees the same 50k / 10k."""


class DatasetNotFoundError(FileNotFoundError):
    """MNIST is not on disk and could not be downloaded."""


class MNISTFileError(ValueError):
    """An MNIST file on disk is not what it should be (corrupt, truncated, swapped or not MNIST)."""


IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049
"""The first four bytes (big-endian) of an IDX file of uint8 images (N x rows x cols) and of uint8 labels (N)."""
OFFICIAL_COUNTS = {True: 60_000, False: 10_000}
"""Images (and labels) in the official training and test files."""


def repo_root() -> Optional[Path]:
    """The repository's folder: the package's parent (editable install), else the cwd or one of its parents."""
    cwd = Path.cwd().resolve()
    for folder in (Path(__file__).resolve().parent.parent, cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "utils").is_dir():
            return folder
    return None


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $MNIST_ROOT, else `data/` at the repository root (or the cwd)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return (repo_root() or Path.cwd()) / "data"


def _raw_files_present(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / name).is_file() for name in RAW_FILES)


def _root_meant(root: Path) -> Optional[Path]:
    """The data root meant when `root` is the MNIST/ or MNIST/raw folder itself (a common slip), else None."""
    for meant, raw in ((root.parent, root / "raw"), (root.parent.parent, root)):
        if raw.name == "raw" and raw.parent.name == "MNIST" and any((raw / f).is_file() for f in RAW_FILES):
            return meant
    return None


def load_mnist_arrays(
    root: str | os.PathLike | None = None, train: bool = True, download: bool = True
) -> tuple[Tensor, Tensor]:
    """Raw MNIST as (uint8 images N x 28 x 28, int64 labels N), downloading it if it is missing.

    The files are checked first (`check_raw_files`): a damaged one raises an `MNISTFileError` that names it.
    """
    from torchvision.datasets import MNIST

    root = resolve_data_root(root)
    if not _raw_files_present(root):
        meant = _root_meant(root)
        if meant is not None:  # no download into the wrong folder: say which one to give
            raise DatasetNotFoundError(
                f"MNIST was not found under {root / 'MNIST' / 'raw'}, but its files are in {root}: the data root "
                f"is the folder that holds MNIST/, so give {meant} (--data-root, root= in code, or {ENV_VAR})")
        if not download:
            raise DatasetNotFoundError(_missing_message(root, "downloading is switched off"))
        MNIST.mirrors = list(MIRRORS)
        created = [f for f in (root / "MNIST" / "raw", root / "MNIST", root) if not f.exists()]  # deepest first
        try:
            MNIST(str(root), train=train, download=True)
        except Exception as err:  # urllib, socket, checksum or permission errors alike
            _remove_empty(created)  # a failed try leaves no empty data/MNIST/raw behind
            raise DatasetNotFoundError(_missing_message(root, f"the download failed ({_download_error(err)})")) from None
    check_raw_files(root, train)
    ds = MNIST(str(root), train=train, download=False)
    return ds.data, ds.targets


def _download_error(err: Exception) -> str:
    """torchvision's download error in brief: each distinct reason once, not every mirror's address."""
    text = " ".join(str(err).split())
    reasons = list(dict.fromkeys(re.findall(r"got: (.*?)(?= Tried |$)", text)))
    if not reasons:
        return text
    return f"{reasons[0]}, from every mirror" if len(reasons) == 1 else "; ".join(reasons)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only succeeds on an empty folder: a partial download stays for the next try
        except OSError:
            pass


def _missing_message(root: Path, why: str) -> str:
    raw = root / "MNIST" / "raw"
    return (
        f"MNIST was not found under {raw} and {why}. To use a copy you already have (e.g. offline), put "
        f"the four files {', '.join(RAW_FILES)} in <root>/MNIST/raw/ and pass --data-root <root> (root=<root> in "
        f"code), or set the environment variable {ENV_VAR}=<root>."
    )


def check_raw_files(root: str | os.PathLike | None = None, train: bool = True) -> None:
    """Check the images and labels files of one split before they are read, or raise an `MNISTFileError` naming the file.

    Checks the IDX header (magic number 2051 for images, 2049 for labels; 28 x 28 images), that the
    file size is the header plus what it announces, that images and labels are as many, that every
    label is 0-9, and the official count (60,000 training images, 10,000 test images).
    """
    raw = resolve_data_root(root) / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"

    def bad(path: Path, problem: str) -> MNISTFileError:
        return MNISTFileError(
            f"{path} {problem}: the file is damaged or not MNIST. Delete it and run again to download a fresh "
            f"copy, or put the official file there (and check that {ENV_VAR} / --data-root names the right folder)")

    def header(path: Path, size: int) -> tuple[int, ...]:
        try:
            with open(path, "rb") as f:
                head = f.read(size)
        except OSError as err:
            raise MNISTFileError(f"cannot read {path} ({err.strerror or err}): check its permissions") from None
        if len(head) < size:
            raise bad(path, f"is {len(head)} bytes long, shorter than an IDX header ({size} bytes)")
        return struct.unpack(f">{size // 4}I", head)

    magic, n_images, rows, cols = header(images, 16)
    if magic != IDX_IMAGES_MAGIC:
        kind = " (that of a labels file: are the files swapped?)" if magic == IDX_LABELS_MAGIC else ""
        raise bad(images, f"starts with magic number {magic}{kind}, not {IDX_IMAGES_MAGIC} (images)")
    if (rows, cols) != (28, 28):
        raise bad(images, f"holds {rows} x {cols} images, not 28 x 28")
    expected = 16 + n_images * rows * cols
    if images.stat().st_size != expected:
        raise bad(images, f"is {images.stat().st_size:,} bytes, but its header announces {n_images:,} images "
                          f"({expected:,} bytes): it is truncated or has extra bytes")
    magic, n_labels = header(labels, 8)
    if magic != IDX_LABELS_MAGIC:
        kind = " (that of an images file: are the files swapped?)" if magic == IDX_IMAGES_MAGIC else ""
        raise bad(labels, f"starts with magic number {magic}{kind}, not {IDX_LABELS_MAGIC} (labels)")
    if labels.stat().st_size != 8 + n_labels:
        raise bad(labels, f"is {labels.stat().st_size:,} bytes, but its header announces {n_labels:,} labels "
                          f"({8 + n_labels:,} bytes): it is truncated or has extra bytes")
    if n_labels != n_images:
        raise bad(labels, f"holds {n_labels:,} labels for the {n_images:,} images of {images.name}")
    values = labels.read_bytes()[8:]
    if values and max(values) > 9:
        raise bad(labels, f"holds the label {max(values)}, but MNIST's labels are 0-9")
    if n_images != OFFICIAL_COUNTS[train]:
        raise bad(images, f"holds {n_images:,} images, not the official {OFFICIAL_COUNTS[train]:,}")


def split_indices(n: int = N_TRAIN + N_VAL, n_val: int = N_VAL, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """A fixed, seeded, disjoint split of range(n) into (train indices, validation indices)."""
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be between 1 and n-1, got n_val={n_val}, n={n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def normalization_stats(images: Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images, scaled to [0, 1]."""
    x = images.to(torch.float64) / 255.0
    return x.mean().item(), x.std().item()


def to_normalized(images: Tensor, mean: float, std: float, device: str | torch.device = "cpu") -> Tensor:
    """uint8 N x 28 x 28 images as a normalized float N x 1 x 28 x 28 tensor on `device`."""
    x = images.to(device=device, dtype=torch.float32).div_(255.0).unsqueeze(1)
    return x.sub_(mean).div_(std)


@dataclass
class MNISTSplits:
    """The train and validation splits as whole tensors on one device, and their normalization."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    mean: float
    std: float
    train_indices: Tensor
    val_indices: Tensor

    @property
    def background(self) -> float:
        """The value a blank (black) pixel has after normalization."""
        return -self.mean / self.std


def _split_and_stats(
    images: Tensor, subset: Optional[int] = None
) -> tuple[Tensor, Tensor, float, float]:
    """Train and validation indices (first `subset` of each, if given) and the full train split's mean and std."""
    if subset is not None and subset < 1:
        raise ValueError(f"subset must be a positive number of images per split, got {subset}")
    train_idx, val_idx = split_indices(len(images))
    mean, std = normalization_stats(images[train_idx])
    if subset is not None:
        train_idx, val_idx = train_idx[:subset], val_idx[:subset]
    return train_idx, val_idx, mean, std


def load_splits(
    root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    subset: Optional[int] = None,
    download: bool = True,
) -> MNISTSplits:
    """The 50k train / 10k validation split of the official training set, normalized with train-split stats.

    `subset` keeps only the first `subset` images of each split (for smoke tests); the
    normalization constants always come from the full train split.
    """
    images, labels = load_mnist_arrays(root, train=True, download=download)
    train_idx, val_idx, mean, std = _split_and_stats(images, subset)
    return MNISTSplits(
        train_x=to_normalized(images[train_idx], mean, std, device),
        train_y=labels[train_idx].to(device),
        val_x=to_normalized(images[val_idx], mean, std, device),
        val_y=labels[val_idx].to(device),
        mean=mean,
        std=std,
        train_indices=train_idx,
        val_indices=val_idx,
    )


def load_test_set(
    mean: float,
    std: float,
    root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """The official 10k test set, normalized with the train split's constants. Use it once, at the end."""
    images, labels = load_mnist_arrays(root, train=False, download=download)
    return to_normalized(images, mean, std, device), labels.to(device)


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: Optional[torch.Generator] = None,
    augment: Optional[dict] = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of a whole-tensor split by index slicing, shuffled and augmented on x's device.

    `augment` holds the keyword arguments of `random_affine` (degrees, translate, fill, and scale or elastic if set) and uses
    the same generator, so a seeded generator makes the whole epoch reproducible.
    """
    n = len(x)
    order = torch.randperm(n, device=x.device, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
        if augment:
            xb = random_affine(xb, generator=generator, **augment)
        yield xb, yb


def num_batches(n: int, batch_size: int) -> int:
    """How many batches `iterate_batches` yields for n samples."""
    return (n + batch_size - 1) // batch_size


def make_dataloaders(
    root: str | os.PathLike | None = None,
    batch_size: int = 128,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    seed: int = 0,
    num_workers: int = 0,
    subset: Optional[int] = None,
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """The classic pipeline: a torchvision `MNIST` dataset, per-sample PIL transforms and `DataLoader`s.

    The same split and normalization as `load_splits`; kept for comparison (see benchmarks/).
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import MNIST

    root = resolve_data_root(root)
    images, _ = load_mnist_arrays(root, train=True)
    train_idx, val_idx, mean, std = _split_and_stats(images, subset)
    steps: list = []
    if degrees or translate or scale:
        steps.append(transforms.RandomAffine(degrees=degrees, translate=(translate, translate),
                                             scale=(1 - scale, 1 + scale) if scale else None))
    steps += [transforms.ToTensor(), transforms.Normalize((mean,), (std,))]
    train_ds = MNIST(str(root), train=True, transform=transforms.Compose(steps))
    val_ds = MNIST(str(root), train=True, transform=transforms.Compose(steps[-2:]))
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(Subset(train_ds, train_idx.tolist()), batch_size, shuffle=True, generator=g,
                       num_workers=num_workers)
    val = DataLoader(Subset(val_ds, val_idx.tolist()), 1000, shuffle=False, num_workers=num_workers)
    return train, val


def class_counts(labels: Tensor | Sequence[int], num_classes: int = 10) -> list[int]:
    """How many samples of each class."""
    return torch.bincount(torch.as_tensor(labels).cpu(), minlength=num_classes).tolist()
