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


def affine_grid(theta: Tensor, size: list[int]) -> Tensor:
    """`F.affine_grid(theta, size, align_corners=False)` to float rounding, without its slow batched matmul.

    torch multiplies every output pixel's (x, y, 1) by each 2 x 3 matrix with one tiny matrix product
    per image; on a CPU that costs several times the `grid_sample` that follows. Three broadcast
    element-wise operations compute the same sums. Whether they round exactly as torch's matmul does
    depends on the CPU (e.g. AVX-512 fused multiply-adds), the torch version and the thread count: on
    some machines the grids are bit-identical, on others they differ in the last bits (about 1e-7 on
    coordinates in [-1, 1]); tests/test_augment.py checks they agree within 1e-6. Seeded runs are
    reproducible on one machine and setup, not bit for bit across them.
    """
    n, _, h, w = size
    identity = torch.eye(2, 3, dtype=theta.dtype, device=theta.device)[None]  # made on the device: no copy
    base = F.affine_grid(identity, [1, 1, h, w], align_corners=False).view(h * w, 2)  # each pixel's (x, y)
    grid = base[:, 0] * theta[:, :, 0:1] + base[:, 1] * theta[:, :, 1:2] + theta[:, :, 2:3]  # n x 2 x hw
    return grid.view(n, 2, h, w).permute(0, 2, 3, 1)


ELASTIC_KNOTS = 4
"""An elastic warp's displacements are drawn on a 4 x 4 grid of knots and interpolated smoothly over the image."""


def elastic_field(n: int, size: int, pixels: float, generator: Optional[torch.Generator] = None,
                  device: str | torch.device = "cpu") -> Tensor:
    """n smooth random displacement fields (n x size x size x 2, in grid units), each pixel moved by at most about `pixels`.

    Each field is a 4 x 4 grid of offsets drawn in +-pixels, interpolated bicubically to size x size: nearby
    pixels move together, so strokes bend instead of breaking (an "elastic distortion", Simard et al., 2003).
    """
    knots = (torch.rand(n, 2, ELASTIC_KNOTS, ELASTIC_KNOTS, generator=generator, device=device) * 2 - 1) * pixels
    field = F.interpolate(knots, size=(size, size), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1) * (2 / size)  # grid coordinates span [-1, 1]: 2 units = `size` pixels


def random_affine(
    x: Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    fill: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    scale: float = 0.0,
    elastic: float = 0.0,
) -> Tensor:
    """Rotate, shift (and zoom, if `scale`; warp elastically, if `elastic`) each image of an N x C x H x W batch by its own random amount, bilinearly.

    Pixels that come from outside the image take the value `fill` (the normalized background; required).
    The random numbers are drawn on x's device from `generator`, so nothing leaves the device.
    """
    if x.dim() != 4:
        raise ValueError(f"random_affine expects an N x C x H x W batch, got shape {tuple(x.shape)}: e.g. "
                         f"x.unsqueeze(1) for N x 28 x 28 images, x[None, None] for one 28 x 28 image")
    _check_fill(fill, "random_affine")
    theta = random_affine_params(len(x), degrees, translate, generator, x.device, scale).to(x.dtype)
    grid = affine_grid(theta, list(x.shape))
    if elastic:  # drawn only when asked for, so recipes without it keep their random stream
        grid = grid + elastic_field(len(x), x.shape[-1], elastic, generator, x.device).to(x.dtype)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def _check_fill(fill: Optional[float], who: str) -> None:
    """A ValueError that says what to pass when the background value for moved-in pixels is missing."""
    if fill is None:
        raise ValueError(f"{who} needs `fill`, the normalized value of the black background that moves in at the "
                         f"edges: pass fill=splits.background (splits from utils.data.load_splits); 0.0 would be "
                         f"the mean pixel, a grey")


def shift_images(x: Tensor, dx: int, dy: int, fill: Optional[float] = None) -> Tensor:
    """The N x C x H x W batch moved by whole pixels (dx right, dy down); pixels moved in take the value `fill` (required)."""
    m = max(abs(dx), abs(dy))
    if m == 0:
        return x
    _check_fill(fill, "shift_images")
    h, w = x.shape[-2:]
    padded = F.pad(x, (m, m, m, m), value=fill)
    return padded[..., m - dy : m - dy + h, m - dx : m - dx + w]
