"""The split, the normalization, the batch pipeline and the data-root rules."""

import pytest
import torch

from utils import data
from utils.data import (
    ENV_VAR, DatasetNotFoundError, iterate_batches, load_mnist_arrays, load_test_set, resolve_data_root,
    split_indices,
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


def test_missing_data_with_download_off_says_so(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="downloading is switched off"):
        load_mnist_arrays(tmp_path, download=False)
