"""Your own digit, prepared the way MNIST's digits were: light ink on black, in a 20x20 box, centred by mass in 28x28.

MNIST's authors took NIST's black-and-white scans, scaled each digit to fit a 20x20 box keeping its
aspect ratio (anti-aliasing gave the grey levels), and placed it in a 28x28 image so that its centre
of mass sat at the centre. A photo or a drawing has to go through the same steps before the model
can read it: `mnist_steps` does them one by one (and returns each stage), `mnist_style` returns the
final 28x28 image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

BOX = 20
"""The side of the box MNIST scaled every digit into."""
SIZE = 28
"""The side of an MNIST image."""

ImageLike = Union[str, os.PathLike, Tensor, "PIL.Image.Image", "numpy.ndarray"]  # noqa: F821


class DigitImageError(ValueError):
    """The image cannot be read, or holds no digit to read."""


def load_grayscale(path: str | os.PathLike) -> Tensor:
    """An image file as an H x W float tensor in [0, 1] (0 black, 1 white); transparent parts count as white paper."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.is_file():
        raise DigitImageError(f"no image file at {path}: check the path (relative paths start at {Path.cwd()})")
    try:
        with Image.open(path) as img:
            img.load()
            return _pil_to_tensor(img)
    except (UnidentifiedImageError, OSError) as err:
        raise DigitImageError(f"{path} is not an image file that Pillow can read ({type(err).__name__}: {err}); "
                              f"save the digit as PNG or JPEG") from None


def _pil_to_tensor(img) -> Tensor:
    """A PIL image as an H x W float tensor in [0, 1], alpha composited onto white."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    gray = img.convert("L")
    data = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8)
    return data.reshape(gray.height, gray.width).float() / 255.0


def as_grayscale(image: ImageLike) -> Tensor:
    """A file path, PIL image, NumPy array or tensor as an H x W float tensor in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        return load_grayscale(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        return _pil_to_tensor(image)
    x = torch.as_tensor(image)
    if x.dim() == 3 and x.shape[-1] in (1, 3, 4) and x.shape[0] not in (1, 3, 4):
        x = x.movedim(-1, 0)  # H x W x C (NumPy, PIL order) -> C x H x W
    if x.dim() == 3:
        x = x[:3].float().mean(0) if x.shape[0] >= 3 else x[0]
    if x.dim() != 2:
        raise DigitImageError(f"expected a 2-D grayscale image or an image with channels, got shape {tuple(x.shape)}")
    x = x.float()
    if x.max() > 1:  # 0..255 pixel values
        x = x / 255.0
    return x.clamp(0, 1)


def mnist_steps(image: ImageLike, ink_threshold: float = 0.25) -> dict[str, Tensor]:
    """Every stage of MNIST's preparation of `image`: grayscale, ink (light on black), cropped, box (20 px), mnist (28x28).

    The image may be dark ink on light paper (a drawing, a photo) or light on dark (MNIST's own
    look): it is inverted when its border is light. The paper's grey level is subtracted and the
    ink stretched to [0, 1]; pixels above `ink_threshold` define the digit's bounding box.
    """
    gray = as_grayscale(image)
    if min(gray.shape) < 2:
        raise DigitImageError(f"the image is {tuple(gray.shape)} pixels: too small to hold a digit")
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1.0 - gray if border.median() > 0.5 else gray.clone()  # the digit must be light on black
    background = torch.cat([ink[0], ink[-1], ink[:, 0], ink[:, -1]]).median()
    span = ink.max() - background
    if span < 0.1:
        raise DigitImageError("the image is (almost) uniform: no ink to read. Is the digit drawn in a colour "
                              "that differs from the paper?")
    ink = ((ink - background) / span).clamp(0, 1)
    rows, cols = (ink > ink_threshold).nonzero(as_tuple=True)
    cropped = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = cropped.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    box = F.interpolate(cropped[None, None], size=(new_h, new_w), mode="bilinear", antialias=True,
                        align_corners=False)[0, 0].clamp(0, 1)
    mnist = centre_by_mass(box)
    return {"grayscale": gray, "ink": ink, "cropped": cropped, "box": box, "mnist": mnist}


def centre_by_mass(box: Tensor, size: int = SIZE) -> Tensor:
    """`box` (at most size x size) pasted into a size x size black image so that its centre of mass is at the centre."""
    h, w = box.shape
    if h > size or w > size:
        raise ValueError(f"a {h}x{w} box does not fit in {size}x{size}")
    ys = torch.arange(h, dtype=box.dtype, device=box.device)[:, None]
    xs = torch.arange(w, dtype=box.dtype, device=box.device)[None, :]
    mass = box.sum()
    cy, cx = (ys * box).sum() / mass, (xs * box).sum() / mass
    centre = size / 2  # MNIST's own digits have their centre of mass at pixel (14, 14), indices 0..27
    top = int(torch.round(centre - cy).clamp(0, size - h))  # whole pixels, the box kept inside the image
    left = int(torch.round(centre - cx).clamp(0, size - w))
    out = torch.zeros(size, size, dtype=box.dtype, device=box.device)
    out[top : top + h, left : left + w] = box
    return out


def mnist_style(image: ImageLike) -> Tensor:
    """`image` (a path, PIL image, array or tensor) as a 28 x 28 MNIST-style digit in [0, 1], light ink on black."""
    return mnist_steps(image)["mnist"]


def to_model_input(digits: Tensor, mean: float, std: float) -> Tensor:
    """28 x 28 (or N x 28 x 28) digits in [0, 1] as the normalized N x 1 x 28 x 28 batch a model takes."""
    if tuple(digits.shape[-2:]) != (SIZE, SIZE):
        raise ValueError(f"the digits must be {SIZE} x {SIZE} (or N x {SIZE} x {SIZE}), got shape {tuple(digits.shape)}: "
                         f"make one from any image with utils.digits.mnist_steps(image)['mnist']")
    x = digits.float().reshape(-1, 1, SIZE, SIZE)
    return (x - mean) / std
