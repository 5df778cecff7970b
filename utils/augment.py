"""Batched per-sample augmentation: every image in a batch gets its own random rotation and shift."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine_params(
    n: int,
    degrees: float,
    translate: float,
    generator: Optional[torch.Generator] = None,
    device: str | torch.device = "cpu",
    scale: float = 0.0,
) -> Tensor:
    """n affine matrices (n x 2 x 3): angles in +-degrees, shifts in +-translate of the image size, zoom in 1 +- scale."""
    u = torch.rand(n, 3, generator=generator, device=device) * 2 - 1
    angle = u[:, 0] * math.radians(degrees)
    shift = u[:, 1:] * (2 * translate)  # affine_grid coordinates span [-1, 1]: 2 units = one image width
    cos, sin = torch.cos(angle), torch.sin(angle)
    if scale:  # drawn only when asked for, so recipes without it keep their random stream
        zoom = 1 + (torch.rand(n, generator=generator, device=device) * 2 - 1) * scale
        cos, sin = cos / zoom, sin / zoom  # the grid samples the input: a smaller step shows a larger digit
    return torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )


def random_affine(
    x: Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    fill: float = 0.0,
    generator: Optional[torch.Generator] = None,
    scale: float = 0.0,
) -> Tensor:
    """Rotate, shift (and zoom, if `scale`) each image of an N x C x H x W batch by its own random amount, bilinearly.

    Pixels that come from outside the image take the value `fill` (the normalized background).
    The random numbers are drawn on x's device from `generator`, so nothing leaves the device.
    """
    if x.dim() != 4:
        raise ValueError(f"random_affine expects an N x C x H x W batch, got shape {tuple(x.shape)}")
    theta = random_affine_params(len(x), degrees, translate, generator, x.device, scale).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill
