"""What real handwriting does to a digit, as image transformations of growing strength, and the accuracy under each.

Every perturbation takes MNIST-style images (N x 28 x 28 or N x 1 x 28 x 28, floats in [0, 1],
light ink on black) and a strength, and returns images of the same shape and range. Strength 0 (or
factor 1) leaves the images unchanged. `PERTURBATIONS` lists them with the strengths the notebook
measures; `accuracy_under` evaluates a model on perturbed copies of a set of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def _batch(x: Tensor) -> Tensor:
    """N x 28 x 28 or N x 1 x 28 x 28 as N x 1 x H x W floats."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected N x H x W or N x 1 x H x W images, got shape {tuple(x.shape)}")
    return x.float()


def _like(out: Tensor, x: Tensor) -> Tensor:
    """`out` (N x 1 x H x W) back in the shape of the input `x`."""
    return out.reshape(x.shape)


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    """Resample N x 1 x H x W images through per-image 2 x 3 matrices (output -> input coordinates); black outside."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Each image turned by `degrees` about its centre: even-indexed images anticlockwise, odd-indexed clockwise."""
    b = _batch(x)
    sign = torch.where(torch.arange(len(b), device=b.device) % 2 == 0, 1.0, -1.0)
    a = sign * math.radians(degrees)
    cos, sin = torch.cos(a), torch.sin(a)
    zero = torch.zeros_like(a)
    # grid_sample looks up where each output pixel comes from: the inverse rotation (y points down).
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _like(_affine(b, theta), x)


def shift(x: Tensor, pixels: float, seed: int = 0) -> Tensor:
    """Each image moved by `pixels` in its own random direction (seeded), black moving in."""
    b = _batch(x)
    h, w = b.shape[-2:]
    # drawn on the CPU, so a seed gives the same directions on every device
    angle = (torch.rand(len(b), generator=torch.Generator().manual_seed(seed)) * 2 * math.pi).to(b.device)
    dx, dy = pixels * torch.cos(angle), pixels * torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    # affine_grid spans [-1, 1] over the image: one pixel is 2 / size; minus: the output samples from behind.
    theta = torch.stack([torch.stack([one, zero, -2 * dx / w], 1), torch.stack([zero, one, -2 * dy / h], 1)], 1)
    return _like(_affine(b, theta), x)


def zoom(x: Tensor, factor: float) -> Tensor:
    """Each image scaled by `factor` about its centre (> 1 larger, < 1 smaller)."""
    if factor <= 0:
        raise ValueError(f"the zoom factor must be positive, got {factor}")
    b = _batch(x)
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]], device=b.device).expand(len(b), 2, 3)
    return _like(_affine(b, theta), x)


def _dilate(b: Tensor) -> Tensor:
    """Grey-level dilation by a 3 x 3 square: every pixel takes its neighbourhood's maximum (strokes one pixel wider per side)."""
    return F.max_pool2d(b, 3, stride=1, padding=1)


def _erode(b: Tensor) -> Tensor:
    """Grey-level erosion by a 3 x 3 square: the neighbourhood's minimum (strokes one pixel thinner per side)."""
    return -F.max_pool2d(-b, 3, stride=1, padding=1)


def stroke(x: Tensor, steps: float) -> Tensor:
    """Strokes made thicker (`steps` > 0: dilations) or thinner (< 0: erosions); a fractional step blends two whole ones."""
    b = _batch(x)
    op = _dilate if steps > 0 else _erode
    whole, frac = divmod(abs(steps), 1.0)
    for _ in range(int(whole)):
        b = op(b)
    if frac:
        b = (1 - frac) * b + frac * op(b)
    return _like(b, x)


def thicker(x: Tensor, steps: float) -> Tensor:
    """Strokes `steps` dilations thicker (a marker instead of a pen)."""
    if steps < 0:
        raise ValueError(f"thicker takes steps >= 0, got {steps}; use thinner")
    return stroke(x, steps)


def thinner(x: Tensor, steps: float) -> Tensor:
    """Strokes `steps` erosions thinner (a fine pen, a light touch)."""
    if steps < 0:
        raise ValueError(f"thinner takes steps >= 0, got {steps}; use thicker")
    return stroke(x, -steps)


def noise(x: Tensor, sigma: float, seed: int = 0) -> Tensor:
    """Gaussian pixel noise of standard deviation `sigma` (seeded), clipped to [0, 1] (a grainy scan or photo)."""
    b = _batch(x)
    n = torch.randn(b.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return _like((b + n.to(b.device)).clamp(0, 1), x)


def faint_ink(x: Tensor, factor: float) -> Tensor:
    """Ink dimmed to `factor` of its brightness, the background left black (a pencil, a light touch)."""
    if not 0 <= factor <= 1:
        raise ValueError(f"the ink factor must be between 0 and 1, got {factor}")
    return _like(_batch(x) * factor, x)


def grey_paper(x: Tensor, level: float) -> Tensor:
    """The black background raised to grey `level`, the ink kept as bright (grey paper not subtracted)."""
    if not 0 <= level <= 1:
        raise ValueError(f"the paper level must be between 0 and 1, got {level}")
    b = _batch(x)
    return _like(b + level * (1 - b), x)


@dataclass(frozen=True)
class Perturbation:
    """One kind of change to the images, its unit, and the strengths measured (the first leaves images unchanged)."""

    name: str
    unit: str
    strengths: tuple[float, ...]
    apply: Callable[[Tensor, float], Tensor]


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in [
        Perturbation("rotation", "degrees, half the images each way", (0, 10, 20, 30, 40, 50, 60), rotate),
        Perturbation("shift", "pixels, random direction", (0, 1, 2, 3, 4, 5, 6), shift),
        Perturbation("smaller", "zoom factor", (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4), zoom),
        Perturbation("larger", "zoom factor", (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6), zoom),
        Perturbation("thicker strokes", "dilation steps (3x3 max-pool)", (0, 0.5, 1, 1.5, 2, 2.5, 3), thicker),
        Perturbation("thinner strokes", "erosion steps (3x3 min-pool)", (0, 0.25, 0.5, 0.75, 1, 1.25, 1.5), thinner),
        Perturbation("noise", "noise std (pixels 0..1)", (0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), noise),
        Perturbation("faint ink", "ink brightness factor", (1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1), faint_ink),
        Perturbation("grey paper", "background level (ink 1)", (0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4), grey_paper),
    ]
}
"""The perturbations notebook 04 measures, each with seven strengths from none to strong (lower contrast: faint ink, grey paper)."""


@torch.no_grad()
def accuracy_under(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    mean: float,
    std: float,
    perturb: Callable[[Tensor, float], Tensor],
    strengths: Sequence[float],
    batch_size: int = 2000,
    device: Optional[str | torch.device] = None,
) -> list[float]:
    """The model's accuracy (eval mode) on `images` (in [0, 1]) perturbed at each strength, normalized with mean / std."""
    model.eval()
    device = device or next(model.parameters()).device
    labels = labels.to(device)
    accs = []
    for s in strengths:
        perturbed = _batch(perturb(images, s))  # the whole set at once: one random draw per image
        correct = 0
        for i in range(0, len(images), batch_size):
            pred = model(((perturbed[i : i + batch_size] - mean) / std).to(device)).argmax(1)
            correct += int((pred == labels[i : i + batch_size]).sum())
        accs.append(correct / len(images))
    return accs


def robustness(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    mean: float,
    std: float,
    perturbations: Optional[dict[str, Perturbation]] = None,
) -> dict[str, list[float]]:
    """Accuracy at every strength of every perturbation (default: `PERTURBATIONS`), keyed by name."""
    perturbations = perturbations or PERTURBATIONS
    return {name: accuracy_under(model, images, labels, mean, std, p.apply, p.strengths)
            for name, p in perturbations.items()}
