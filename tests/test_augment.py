"""The batched augmentation: shape, labels, per-image randomness, seeding, background, shift, zoom and elastic warp."""

import pytest
import torch
import torch.nn.functional as F

from utils.augment import affine_grid, elastic_field, random_affine, random_affine_params
from utils.config import TrainConfig
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
    fill = small_splits.background
    a = random_affine(x, 10, 0.1, fill, generator=torch.Generator().manual_seed(7))
    b = random_affine(x, 10, 0.1, fill, generator=torch.Generator().manual_seed(7))
    c = random_affine(x, 10, 0.1, fill, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augmenting_without_the_background_value_says_what_to_pass(small_splits):
    # 0.0 in normalized units is the mean pixel, a grey: a silent default would pad every moved digit with grey
    x, _ = _digits(small_splits)
    with pytest.raises(ValueError, match="fill=splits.background"):
        random_affine(x, 10, 0.1)


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


def test_an_elastic_warp_moves_pixels_smoothly_within_its_bound_and_leaves_other_recipes_alone(small_splits):
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    field = elastic_field(16, 28, 2.0, g()) * 28 / 2  # back to pixels
    assert field.shape == (16, 28, 28, 2)
    assert field.abs().max() <= 2.0 * 1.25 and field.abs().max() > 1.0  # bicubic may overshoot its knots a little
    # neighbours move together (strokes bend, not break): knots 9 px apart differ by at most 2 x 2 px, about 0.45 px
    # per pixel, a little more with the bicubic overshoot; independent noise would give up to 4 px
    assert (field[:, 1:] - field[:, :-1]).abs().max() < 0.75
    x = small_splits.train_x[:16]
    warped = random_affine(x, 0, 0, fill=small_splits.background, elastic=2.0, generator=g())
    assert not torch.allclose(warped, x, atol=1e-3)
    ink = lambda img: (img - small_splits.background).clamp(min=0).sum((1, 2, 3))  # noqa: E731
    assert torch.allclose(ink(warped), ink(x), rtol=0.5)  # a warp stretches and squeezes strokes, it keeps the digit
    # without `elastic` the random stream, and so every existing recipe's augmentation, is unchanged
    fill = small_splits.background
    assert torch.equal(random_affine(x, 7, 0.05, fill, generator=g()), random_affine(x, 7, 0.05, fill, generator=g(), elastic=0.0))
    assert TrainConfig(degrees=7, elastic=1.5).augment["elastic"] == 1.5 and "elastic" not in TrainConfig().to_dict()


GRID_ATOL = 1e-6
"""How far the fast grid may stray from torch's: float32 rounding of coordinates in [-1.5, 1.5] is ~1e-7.

The two compute the same sums in another order (broadcast multiply-adds vs a batched matmul), so their
last bits depend on the CPU (AVX-512 fused multiply-adds), the thread count and the torch version: a
bit-for-bit comparison holds on some machines and not on others. A real bug moves coordinates by a
pixel fraction or more (one pixel = 2/28 ~ 0.07), far above this tolerance.
"""


def _grids_agree(ours, torchs, scale=1.0):
    return torch.allclose(ours, torchs, rtol=0, atol=GRID_ATOL * scale)


def _thetas(size, g):
    """The augmentation's own matrices (rotation, shift, zoom) and arbitrary ones (coordinates up to ~20)."""
    return [(random_affine_params(size[0], 7, 0.05, g, scale=0.1), 1.0),
            (torch.randn(size[0], 2, 3, generator=g) * 5, 20.0)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [[128, 1, 28, 28], [80, 1, 28, 28], [3, 2, 20, 32]])
def test_the_fast_grid_matches_torchs_to_float_rounding(size, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(sum(size))
        for theta, scale in _thetas(size, g):
            ours, torchs = affine_grid(theta, size), F.affine_grid(theta, size, align_corners=False)
            assert ours.shape == torchs.shape and ours.dtype == torchs.dtype
            assert _grids_agree(ours, torchs, scale), (ours - torchs).abs().max()
    finally:
        torch.set_num_threads(before)


def _transposed(theta, size):  # the 2 x 2 part transposed: rotations turn the wrong way
    return affine_grid(torch.cat([theta[:, :, :2].transpose(1, 2), theta[:, :, 2:]], 2), size)


def _half_pixel_off(theta, size):  # sampling points shifted by half a pixel (1/w in [-1, 1] coordinates)
    return affine_grid(theta, size) + 1.0 / size[3]


def _corners_aligned(theta, size):  # align_corners=True: the pixel grid stretched by (w - 1) / w
    return F.affine_grid(theta, size, align_corners=True)


def _x_and_y_swapped(theta, size):
    return affine_grid(theta, size).flip(-1)


@pytest.mark.parametrize("bug", [_transposed, _half_pixel_off, _corners_aligned, _x_and_y_swapped])
def test_the_grid_comparison_catches_a_planted_bug(bug):
    size = [64, 1, 28, 28]
    theta = random_affine_params(size[0], 7, 0.05, torch.Generator().manual_seed(0), scale=0.1)
    reference = F.affine_grid(theta, size, align_corners=False)
    assert _grids_agree(affine_grid(theta, size), reference)
    assert not _grids_agree(bug(theta, size), reference)


def test_clean_epochs_train_the_last_epochs_on_the_images_as_they_are(small_splits, monkeypatch):
    from dataclasses import replace

    import utils.engine as engine
    from utils.models import FINAL, STEPS, build_model

    seen = []
    batches = engine.iterate_batches

    def recording(*args, **kwargs):  # the training batches of each epoch (evaluation's are not shuffled)
        if kwargs.get("shuffle"):
            seen.append(kwargs["augment"])
        return batches(*args, **kwargs)

    monkeypatch.setattr(engine, "iterate_batches", recording)
    base = replace(STEPS[FINAL].config, epochs=3)
    runs = [engine.fit(build_model(FINAL, seed=1), small_splits, replace(base, clean_epochs=n), seed=1, progress=False,
                       log=None) for n in (0, 1)]
    assert [a is None for a in seen] == [False, False, False, False, False, True]
    # the augmented epochs are the recipe's own, random numbers and all; only the clean one differs
    assert runs[0]["train_loss"][:2] == runs[1]["train_loss"][:2]
    assert runs[0]["train_loss"][2] != runs[1]["train_loss"][2]


@pytest.mark.parametrize("n", [-1, 16])
def test_clean_epochs_outside_the_run_are_refused(n):
    from utils.engine import check_config

    with pytest.raises(ValueError, match="clean_epochs"):
        check_config(TrainConfig(epochs=15, clean_epochs=n))


def test_recipes_without_clean_epochs_keep_their_result_file_keys():
    assert "clean_epochs" not in TrainConfig().to_dict() and TrainConfig(clean_epochs=2).to_dict()["clean_epochs"] == 2
