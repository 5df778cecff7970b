"""The split, the normalization, the batch pipeline, the data-root rules and the checks of the raw files."""

import struct

import pytest
import torch

from utils import data
from utils.data import (
    ENV_VAR, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, DatasetNotFoundError, MNISTFileError, check_raw_files,
    iterate_batches, load_mnist_arrays, load_splits, load_test_set, resolve_data_root, split_indices,
)


def test_split_sizes_are_50k_10k_and_the_test_set_10k(full_splits, data_root):
    assert full_splits.train_x.shape == (50_000, 1, 28, 28)
    assert full_splits.val_x.shape == (10_000, 1, 28, 28)
    assert len(full_splits.train_y) == 50_000 and len(full_splits.val_y) == 10_000
    test_x, test_y = load_test_set(full_splits.mean, full_splits.std, data_root, download=False)
    assert test_x.shape == (10_000, 1, 28, 28) and len(test_y) == 10_000


def test_train_and_validation_are_disjoint_and_cover_the_training_set(full_splits):
    train, val = set(full_splits.train_indices.tolist()), set(full_splits.val_indices.tolist())
    assert not train & val
    assert train | val == set(range(60_000))


def test_the_split_is_fixed_by_its_seed():
    a, b = split_indices(seed=0), split_indices(seed=0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(split_indices(seed=1)[1], a[1])


def test_normalization_constants_come_from_the_train_split_and_agree_with_the_usual_ones(full_splits):
    assert full_splits.mean == pytest.approx(0.1307, abs=1e-3)
    assert full_splits.std == pytest.approx(0.3081, abs=1e-3)
    # a blank pixel maps to the background value the augmentation fills with
    assert full_splits.train_x.min().item() == pytest.approx(full_splits.background, abs=1e-5)


def test_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10.0).reshape(10, 1, 1, 1)
    y = torch.arange(10)
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(x, y, batch_size=4, shuffle=True, generator=g))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(xb.flatten(), yb.float()) for xb, yb in batches)  # images stay with their labels


def test_data_root_comes_from_the_argument_then_the_variable_then_data(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert resolve_data_root().name == "data"


def test_missing_data_with_no_download_possible_raises_one_clear_error(monkeypatch, tmp_path):
    # Nothing listens on port 9 of the loopback: every mirror fails at once, as offline.
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/mnist/"])
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist_arrays(tmp_path, train=True)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert ENV_VAR in message and "train-images-idx3-ubyte" in message
    assert "download failed" in message


def test_a_failed_download_leaves_no_empty_folders_behind(monkeypatch, tmp_path):
    # Offline, the default root data/ would otherwise be left as an empty data/MNIST/raw that looks like data.
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/mnist/"])
    with pytest.raises(DatasetNotFoundError):
        load_mnist_arrays(tmp_path / "fresh", train=True)
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(DatasetNotFoundError):
        load_mnist_arrays(tmp_path, train=False)
    assert tmp_path.is_dir() and not (tmp_path / "MNIST").exists()  # the user's own folder stays


def test_the_download_error_gives_each_reason_once_not_every_mirrors_address():
    one = RuntimeError("Error downloading x.gz: Tried https://a/, got: <urlopen error down> Tried http://b/, got: "
                       "<urlopen error down>")
    two = RuntimeError("Error downloading x.gz: Tried https://a/, got: HTTP 404 Tried http://b/, got: timed out")
    assert data._download_error(one) == "<urlopen error down>, from every mirror"
    assert data._download_error(two) == "HTTP 404; timed out"
    assert data._download_error(PermissionError("denied")) == "denied"


def test_missing_data_with_download_off_says_so(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="downloading is switched off"):
        load_mnist_arrays(tmp_path, download=False)


def test_the_missing_data_message_is_one_line(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist_arrays(tmp_path, download=False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("given", ["MNIST", "MNIST/raw"])
def test_the_mnist_folder_given_as_the_root_names_the_root_meant_and_downloads_nothing(tmp_path, given, monkeypatch):
    write_idx(tmp_path, train=True)
    write_idx(tmp_path, train=False)
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/mnist/"])
    with pytest.raises(DatasetNotFoundError, match=f"so give {tmp_path} "):
        load_mnist_arrays(tmp_path / given)
    assert sorted(p.name for p in (tmp_path / "MNIST").iterdir()) == ["raw"]  # no MNIST/MNIST/raw made to download into


def test_the_real_files_pass_the_checks(data_root):
    check_raw_files(data_root, train=True)
    check_raw_files(data_root, train=False)


def write_idx(root, train=True, n_images=10, n_labels=None, images_magic=IDX_IMAGES_MAGIC,
              labels_magic=IDX_LABELS_MAGIC, rows=28, cols=28, pixels=None, labels=None):
    """A fake MNIST split (blank images) in root/MNIST/raw, each header and body settable; returns (images, labels)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "train" if train else "t10k"
    n_labels = n_images if n_labels is None else n_labels
    images, label_file = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    body = bytes(n_images * rows * cols) if pixels is None else pixels
    images.write_bytes(struct.pack(">4I", images_magic, n_images, rows, cols) + body)
    label_file.write_bytes(struct.pack(">2I", labels_magic, n_labels)
                           + (bytes(i % 10 for i in range(n_labels)) if labels is None else labels))
    return images, label_file


BAD_FILES = {
    # case: (write_idx arguments, which file the message names, what it says)
    "not an IDX file": (dict(images_magic=0x1F8B0808), "images", "magic number"),
    "files swapped": (dict(images_magic=IDX_LABELS_MAGIC), "images", "swapped"),
    "labels magic": (dict(labels_magic=7), "labels", "magic number 7"),
    "32 x 32": (dict(n_images=10, rows=32, cols=32), "images", "32 x 32 images"),
    "truncated images": (dict(n_images=10, pixels=bytes(10 * 784 - 100)), "images", "truncated"),
    "extra bytes": (dict(n_images=10, pixels=bytes(10 * 784 + 1)), "images", "truncated or has extra bytes"),
    "truncated labels": (dict(n_images=10, labels=bytes(5)), "labels", "truncated"),
    "fewer labels": (dict(n_images=10, n_labels=9), "labels", "9 labels for the 10 images"),
    "label 10": (dict(n_images=10, labels=bytes([1] * 9 + [10])), "labels", "label 10"),
    "not the official count": (dict(n_images=10), "images", "not the official 60,000"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_damaged_mnist_file_is_refused_naming_the_file_and_the_fix(tmp_path, case):
    kwargs, which, problem = BAD_FILES[case]
    write_idx(tmp_path, train=False, n_images=1)  # all four files present: nothing to download
    images, labels = write_idx(tmp_path, **kwargs)
    with pytest.raises(MNISTFileError) as err:
        load_mnist_arrays(tmp_path, download=False)  # checked before torchvision reads the files
    message = str(err.value)
    assert str(images if which == "images" else labels) in message and problem in message
    assert "Delete it and run again" in message and ENV_VAR in message and "\n" not in message


def test_a_file_shorter_than_its_header_is_refused(tmp_path):
    images, _ = write_idx(tmp_path, n_images=10)
    images.write_bytes(b"\x00\x00\x08")
    with pytest.raises(MNISTFileError, match="shorter than an IDX header"):
        check_raw_files(tmp_path)


def test_the_test_split_is_checked_against_its_own_count(tmp_path):
    write_idx(tmp_path, train=False, n_images=10_000, n_labels=9_999)
    with pytest.raises(MNISTFileError, match="9,999 labels for the 10,000 images"):
        check_raw_files(tmp_path, train=False)


def test_a_subset_must_hold_at_least_one_image(data_root):
    with pytest.raises(ValueError, match="positive"):
        load_splits(data_root, subset=0, download=False)


def test_a_subset_is_normalized_with_the_whole_training_splits_statistics(full_splits, small_splits):
    # a smoke run's inputs are scaled as the real model's are, so its checkpoint's mean and std are the real ones
    assert (small_splits.mean, small_splits.std) == (full_splits.mean, full_splits.std)
    assert len(small_splits.train_x) == len(small_splits.val_x) == 512
