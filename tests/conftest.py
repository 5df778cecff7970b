"""Shared fixtures: the data root (from $MNIST_ROOT or data/) and small, cached splits."""

import pytest

from utils.data import DatasetNotFoundError, load_splits, resolve_data_root


@pytest.fixture(autouse=True)
def no_proxy_for_the_fake_mirror(monkeypatch):
    """The offline tests point the download at 127.0.0.1:9, which must fail at once, not wait on a proxy."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def data_root():
    """The MNIST root the tests read; fails (not skips) with the loader's message when it is missing."""
    root = resolve_data_root()
    try:
        load_splits(root, subset=1, download=False)
    except DatasetNotFoundError as err:
        pytest.fail(f"the tests need MNIST on disk: {err}")
    return root


@pytest.fixture(scope="session")
def full_splits(data_root):
    """The whole 50k / 10k split on the CPU (loaded once per session)."""
    return load_splits(data_root, download=False)


@pytest.fixture(scope="session")
def small_splits(data_root):
    """512 train and 512 validation images, for quick training tests."""
    return load_splits(data_root, subset=512, download=False)
