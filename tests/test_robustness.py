"""The perturbations do what their names say, leave images alone at strength zero, and are measured in the right order."""

import math

import pytest
import torch
import torch.nn as nn

from utils.robustness import (PERTURBATIONS, accuracy_under, faint_ink, grey_paper, noise, rotate, shift, thicker,
                              thinner, zoom)


def _dot(row: int, col: int, n: int = 1) -> torch.Tensor:
    x = torch.zeros(n, 28, 28)
    x[:, row, col] = 1.0
    return x


def _centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    return float((x * ys).sum() / x.sum()), float((x * xs).sum() / x.sum())


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_the_first_strength_leaves_images_unchanged_and_every_strength_keeps_shape_and_range(name):
    p = PERTURBATIONS[name]
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(p.apply(x, p.strengths[0]), x, atol=1e-5)
    for s in p.strengths:
        for shape in ((4, 28, 28), (4, 1, 28, 28)):
            out = p.apply(x.reshape(shape), s)
            assert out.shape == shape and out.min() >= -1e-6 and out.max() <= 1 + 1e-6


def test_rotation_turns_even_images_anticlockwise_and_odd_ones_clockwise():
    x = torch.zeros(2, 28, 28)
    x[:, 13:15, 20:22] = 1  # right of the centre
    out = rotate(x, 90)
    up, down = _centre_of_mass(out[0]), _centre_of_mass(out[1])
    assert up[0] < 10 and abs(up[1] - 13.5) < 1, "anticlockwise on screen: right of centre goes up"
    assert down[0] > 17 and abs(down[1] - 13.5) < 1


def test_shift_moves_the_centre_of_mass_by_the_given_distance():
    x = torch.zeros(8, 28, 28)
    x[:, 12:16, 12:16] = 1
    out = shift(x, 4)
    for img in out:
        cy, cx = _centre_of_mass(img)
        assert math.hypot(cy - 13.5, cx - 13.5) == pytest.approx(4, abs=0.05)
    assert torch.equal(shift(x, 4, seed=3), shift(x, 4, seed=3))


def test_zoom_scales_the_ink_about_the_centre():
    x = torch.zeros(1, 28, 28)
    x[0, 8:20, 8:20] = 1  # 12 px square, centred
    assert zoom(x, 0.5).sum().item() == pytest.approx(x.sum().item() / 4, rel=0.05)
    assert zoom(x, 1.5).sum().item() == pytest.approx(x.sum().item() * 2.25, rel=0.05)
    with pytest.raises(ValueError):
        zoom(x, 0)


def test_thicker_widens_a_one_pixel_line_and_thinner_removes_it():
    line = torch.zeros(1, 28, 28)
    line[0, 5:23, 14] = 1
    assert (thicker(line, 1)[0, 14] > 0.5).sum() == 3
    assert (thicker(line, 2)[0, 14] > 0.5).sum() == 5
    assert thinner(line, 1).max() == 0
    half = thicker(line, 0.5)[0, 14]
    assert half[13].item() == pytest.approx(0.5) and half[14].item() == 1
    thick = thicker(line, 1)
    assert torch.equal(thinner(thick, 1)[0, 10], line[0, 10]), "erosion undoes a dilation away from the ends"


def test_noise_is_seeded_and_contrast_changes_ink_and_background_as_named():
    x = torch.zeros(2, 28, 28)
    x[:, 10:18, 10:18] = 1
    assert torch.equal(noise(x, 0.2, seed=1), noise(x, 0.2, seed=1))
    assert not torch.equal(noise(x, 0.2, seed=1), noise(x, 0.2, seed=2))
    assert faint_ink(x, 0.3).max().item() == pytest.approx(0.3) and faint_ink(x, 0.3).min() == 0
    assert grey_paper(x, 0.2).min().item() == pytest.approx(0.2) and grey_paper(x, 0.2).max() == 1


class _BrightMeansOne(nn.Module):
    """Predicts 1 when the normalized image's mean is above 0, else 0."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([-m, m], 1)


def test_accuracy_under_perturbs_first_then_normalizes():
    x, labels = torch.zeros(10, 28, 28), torch.ones(10, dtype=torch.long)  # black images, labelled bright
    accs = accuracy_under(_BrightMeansOne(), x, labels, mean=0.5, std=1.0, perturb=grey_paper,
                          strengths=[0.0, 0.4, 0.6], batch_size=3)
    assert accs == [0.0, 0.0, 1.0]
