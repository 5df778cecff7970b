"""A digit of your own goes through MNIST's preparation: ink light on black, a 20-pixel box, centred by mass."""

import pytest
import torch
from PIL import Image

from utils.data import load_mnist_arrays, repo_root
from utils.digits import BOX, SIZE, DigitImageError, centre_by_mass, mnist_steps, mnist_style, to_model_input

SAMPLE = repo_root() / "samples" / "my_digit.png"


def _page(ink_box=(40, 70, 70, 130), size=(150, 200), paper=230, ink=30) -> torch.Tensor:
    """Dark ink (a filled rectangle: top, left, bottom, right) on light paper, as 0..255 values."""
    img = torch.full(size, float(paper))
    t, l, b, r = ink_box
    img[t:b, l:r] = ink
    return img


def _bbox(x: torch.Tensor, threshold: float = 0.25) -> tuple[int, int]:
    rows, cols = (x > threshold).nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.arange(x.shape[0])[:, None], torch.arange(x.shape[1])[None, :]
    return float((x * ys).sum() / x.sum()), float((x * xs).sum() / x.sum())


def test_dark_ink_on_light_paper_becomes_a_light_digit_in_a_20_pixel_box_centred_by_mass():
    out = mnist_style(_page())  # ink 60 wide x 30 tall, off-centre: the longer side must become 20 px
    assert out.shape == (SIZE, SIZE) and out.min() >= 0 and out.max() <= 1
    assert out[0, 0] == 0 and out.max() > 0.9, "background black, ink light"
    assert _bbox(out) == (BOX // 2, BOX), "aspect ratio kept, longer side 20 px"
    cy, cx = _centre_of_mass(out)
    assert abs(cy - SIZE / 2) <= 0.5 and abs(cx - SIZE / 2) <= 0.5


def test_light_on_dark_and_dark_on_light_give_the_same_digit():
    page = _page()
    assert torch.allclose(mnist_style(page), mnist_style(255 - page), atol=1e-5)


def test_a_path_a_pil_image_an_array_and_a_tensor_give_the_same_digit(tmp_path):
    page = _page().to(torch.uint8)
    img = Image.fromarray(page.numpy())
    img.save(tmp_path / "digit.png")
    expected = mnist_style(page)
    for source in (tmp_path / "digit.png", str(tmp_path / "digit.png"), img, page.numpy()):
        assert torch.allclose(mnist_style(source), expected, atol=1e-5), type(source)


def test_dark_ink_on_a_transparent_background_reads_as_ink_on_white_paper(tmp_path):
    rgba = Image.new("RGBA", (120, 120), (0, 0, 0, 0))  # transparent black: must not count as black paper
    rgba.paste((20, 20, 20, 255), (30, 20, 60, 100))
    rgba.save(tmp_path / "transparent.png")
    out = mnist_style(tmp_path / "transparent.png")
    assert _bbox(out) == (BOX, round(30 * BOX / 80))


def test_mnist_own_digits_come_out_of_the_pipeline_nearly_unchanged(data_root):
    """MNIST was made this way: its digits already fill a 20-pixel box with the centre of mass at (14, 14)."""
    images, _ = load_mnist_arrays(data_root, train=False, download=False)
    x = images[:200].float() / 255
    out = torch.stack([mnist_style(im) for im in x])
    corr = torch.stack([torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] for a, b in zip(out, x)])
    assert (corr > 0.9).float().mean() > 0.95, f"only {(corr > 0.9).float().mean():.0%} of MNIST digits look alike"
    assert ((out - x).abs().flatten(1).max(1).values < 1e-4).float().mean() > 0.3, "many come out bit for bit"


def test_the_box_is_placed_with_its_centre_of_mass_at_the_centre_and_kept_inside():
    box = torch.zeros(20, 10)
    box[:, :2] = 1  # all the mass on the left edge
    out = centre_by_mass(box)
    cy, cx = _centre_of_mass(out)
    assert abs(cy - SIZE / 2) <= 0.5
    assert abs(cx - SIZE / 2) <= 0.5  # by mass: centring the box itself would put the mass near x = 9.5
    assert out.sum() == box.sum(), "nothing cut off"
    with pytest.raises(ValueError):
        centre_by_mass(torch.ones(30, 10))


def test_unreadable_inputs_fail_with_a_clear_error(tmp_path):
    with pytest.raises(DigitImageError, match="no image file"):
        mnist_style(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DigitImageError, match="not an image file"):
        mnist_style(tmp_path / "notes.png")
    with pytest.raises(DigitImageError, match="no ink"):
        mnist_style(torch.full((50, 50), 200.0))


def test_the_shipped_sample_is_a_readable_digit_and_every_step_is_returned():
    steps = mnist_steps(SAMPLE)
    assert list(steps) == ["grayscale", "ink", "cropped", "box", "mnist"]
    assert max(steps["box"].shape) == BOX and steps["mnist"].shape == (SIZE, SIZE)


def test_the_shipped_model_reads_the_shipped_sample_as_the_2_it_is_drawn_as():
    # notebook 04's "try your own digit" end to end: file -> MNIST-style 28 x 28 -> normalized batch -> prediction
    from utils.engine import load_trained_model, predict
    from utils.models import FINAL

    model, info = load_trained_model(repo_root() / "results" / f"{FINAL}_seed1.pt")
    probs = predict(model, to_model_input(mnist_style(SAMPLE), info["mean"], info["std"])).exp()[0]
    assert probs.argmax().item() == 2 and probs.max() > 0.9  # samples/draw_my_digit.py draws a "2"


def test_model_input_is_normalized_and_batched():
    x = to_model_input(torch.ones(28, 28), mean=0.5, std=0.25)
    assert x.shape == (1, 1, 28, 28) and torch.allclose(x, torch.full_like(x, 2.0))
    assert to_model_input(torch.zeros(3, 28, 28), 0.0, 1.0).shape == (3, 1, 28, 28)


def test_a_digit_of_the_wrong_size_is_refused_with_the_way_to_make_one():
    with pytest.raises(ValueError, match="must be 28 x 28.*mnist_steps"):
        to_model_input(torch.zeros(20, 20), 0.13, 0.31)
