"""The batched augmentation: shape, labels, per-image randomness, seeding, background, shift and zoom."""

import pytest
import torch
import torch.nn.functional as F

from utils.augment import affine_grid, random_affine, random_affine_params
from utils.data import iterate_batches


def _digits(small_splits, n=64):
    return small_splits.train_x[:n], small_splits.train_y[:n]


def test_shape_and_dtype_are_kept(small_splits):
    x, _ = _digits(small_splits)
    out = random_affine(x, 10, 0.1, fill=small_splits.background, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)


def test_augmentation_keeps_the_order_of_labels(small_splits):
    x, y = _digits(small_splits)
    plain = list(iterate_batches(x, y, 16, shuffle=True, generator=torch.Generator().manual_seed(3)))
    aug = list(iterate_batches(x, y, 16, shuffle=True, generator=torch.Generator().manual_seed(3),
                               augment={"degrees": 10, "translate": 0.1, "fill": small_splits.background}))
    assert all(torch.equal(a[1], p[1]) for a, p in zip(aug, plain))


def test_every_image_gets_its_own_transform(small_splits):
    same = small_splits.train_x[:1].repeat(32, 1, 1, 1)
    out = random_affine(same, 10, 0.1, fill=small_splits.background, generator=torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    distinct = {tuple(row.round(decimals=4).tolist()) for row in flat}
    assert len(distinct) == 32


def test_the_same_seed_gives_the_same_transforms(small_splits):
    x, _ = _digits(small_splits)
    a = random_affine(x, 10, 0.1, generator=torch.Generator().manual_seed(7))
    b = random_affine(x, 10, 0.1, generator=torch.Generator().manual_seed(7))
    c = random_affine(x, 10, 0.1, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_rotation_and_no_shift_is_the_identity_and_blank_stays_blank(small_splits):
    x, _ = _digits(small_splits)
    assert torch.allclose(random_affine(x, 0, 0, fill=small_splits.background), x, atol=1e-5)
    blank = torch.full((4, 1, 28, 28), small_splits.background)
    assert torch.allclose(random_affine(blank, 30, 0.2, fill=small_splits.background), blank, atol=1e-5)


def test_a_shift_moves_the_digit(small_splits):
    # A pure shift of +translate moves ink by translate * 28 pixels; the ink's centre must follow.
    x = small_splits.train_x[:8]
    out = random_affine(x, 0, 0.1, fill=small_splits.background, generator=torch.Generator().manual_seed(1))
    cols = torch.arange(28.0)

    def centre(img):
        ink = (img - small_splits.background).clamp(min=0)[:, 0].sum(1)  # N x 28 column mass
        return (ink * cols).sum(1) / ink.sum(1)

    moved = (centre(out) - centre(x)).abs()
    assert (moved <= 0.1 * 28 + 0.6).all() and moved.max() > 0.5


def test_a_zoom_changes_the_size_of_the_digit_within_the_bound(small_splits):
    # Zoom only: the ink's spread around its centre grows or shrinks by the factor, at most 1 +- scale.
    x = small_splits.train_x[:16]
    out = random_affine(x, 0, 0, fill=small_splits.background, scale=0.2, generator=torch.Generator().manual_seed(2))

    def spread(img):
        ink = (img - small_splits.background).clamp(min=0)[:, 0]
        r = torch.arange(28.0) - 13.5
        d2 = r[None, :] ** 2 + r[:, None] ** 2
        return ((ink * d2).sum((1, 2)) / ink.sum((1, 2))).sqrt()

    factor = spread(out) / spread(x)
    assert (factor > 0.75).all() and (factor < 1.27).all()
    assert factor.max() - factor.min() > 0.1  # each image its own zoom


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [[128, 1, 28, 28], [80, 1, 28, 28], [3, 2, 20, 32]])
def test_the_fast_grid_is_bit_identical_to_torchs(size, threads):
    # Published seeded results were trained with F.affine_grid: the faster grid must not move a single bit.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(sum(size))
        for theta in (random_affine_params(size[0], 7, 0.05, g, scale=0.1), torch.randn(size[0], 2, 3, generator=g) * 5):
            assert torch.equal(affine_grid(theta, size), F.affine_grid(theta, size, align_corners=False))
    finally:
        torch.set_num_threads(before)
