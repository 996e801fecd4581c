"""Batched image augmentations with per-sample random parameters.

Every op takes a whole batch on any device and a ``torch.Generator`` (on the CPU; or a
``SliceDraws`` for a process's part of a data-parallel batch): the
per-sample parameters (crop boxes, jitter factors, blur sigmas, masks) are drawn from it
as tensors, so the result depends only on the generator's seed, never on global state or
on the device. There is no Python loop over samples.

Colour jitter follows torchvision's ColorJitter and RandomGrayscale: brightness, contrast
and saturation (linear or affine in RGB) are folded into one per-sample affine transform,
applied with a single batched matrix product and clamped; hue is then shifted in HSV as
``adjust_hue`` does, and grayscale comes last. torchvision draws an order of the four
jitters per call and clamps after each; we keep the order brightness, contrast,
saturation, hue. ``benchmarks/colour_jitter_fidelity.py`` measures the difference on
CIFAR-10 images (BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU-R 601 luma, as torchvision's rgb_to_grayscale
LUMA = torch.tensor([0.299, 0.587, 0.114])
LUMA_PART = torch.ones(3, 1) * LUMA  # every channel := luma
CHROMA_PART = torch.eye(3) - LUMA_PART  # what saturation scales
SEXTANT = torch.tensor([5.0, 3.0, 1.0])  # HSV -> RGB: where R, G and B sit on the hue circle, in sixths


class SliceDraws:
    """A generator for rows ``start:start+n`` of a batch of ``total`` samples: each draw is
    made for the whole batch and sliced, so a process holding part of a data-parallel
    batch gets exactly the parameters one process would give those samples."""

    def __init__(self, generator: torch.Generator, total: int, start: int):
        self.generator, self.total, self.start = generator, total, start


def rand(generator: torch.Generator | SliceDraws, n: int) -> torch.Tensor:
    """``n`` uniform draws in [0, 1); every random parameter of the ops comes from here."""
    if isinstance(generator, SliceDraws):
        return torch.rand(generator.total, generator=generator.generator)[generator.start:generator.start + n]
    return torch.rand(n, generator=generator)


def uniform(generator, n: int, low: float, high: float) -> torch.Tensor:
    return rand(generator, n) * (high - low) + low


def bernoulli(generator, n: int, p: float) -> torch.Tensor:
    return rand(generator, n) < p


def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator,
                        scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5) -> torch.Tensor:
    """Crop a random box per sample (area fraction in ``scale``, aspect ratio in ``ratio``),
    flip it horizontally with probability ``flip_p`` and resample it to ``size`` x ``size``
    with one bilinear ``grid_sample`` for the whole batch. Returns float in [0, 1].

    Boxes that would not fit are shrunk to fit (torchvision retries, then centre-crops)."""
    n = images.shape[0]
    area = uniform(generator, n, *scale)
    log_ratio = uniform(generator, n, math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    center_x = width / 2 + rand(generator, n) * (1 - width)
    center_y = height / 2 + rand(generator, n) * (1 - height)
    flip = bernoulli(generator, n, flip_p)
    return crop_boxes(images, size, center_x, center_y, width, height, flip)


def crop_boxes(images, size, center_x, center_y, width, height, flip=None) -> torch.Tensor:
    """Resample boxes given in fractions of the image (centre, width, height) to ``size``."""
    device = images.device
    steps = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    sign = torch.ones_like(width) if flip is None else 1 - 2 * flip.float()
    # normalised grid coordinates: image spans [-1, 1]; box = centre ± half-size
    gx = (center_x * 2 - 1).to(device)[:, None] + (width * sign).to(device)[:, None] * steps[None, :]
    gy = (center_y * 2 - 1).to(device)[:, None] + height.to(device)[:, None] * steps[None, :]
    grid = torch.empty(len(gx), size, size, 2, device=device)  # filled by broadcasting, no stack copy
    grid[..., 0], grid[..., 1] = gx[:, None, :], gy[:, :, None]
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_factors(generator, n: int, jitter_p: float, brightness: float, contrast: float, saturation: float,
                  hue: float, grayscale_p: float):
    """Per-sample (b, k, s, h, gray): ColorJitter's factors applied with probability ``jitter_p``
    (identity where not: 1, 1, 1, 0) and RandomGrayscale's flags."""
    jitter = bernoulli(generator, n, jitter_p)
    b = torch.where(jitter, uniform(generator, n, max(0, 1 - brightness), 1 + brightness), 1.0)
    k = torch.where(jitter, uniform(generator, n, max(0, 1 - contrast), 1 + contrast), 1.0)
    s = torch.where(jitter, uniform(generator, n, max(0, 1 - saturation), 1 + saturation), 1.0)
    h = torch.where(jitter, uniform(generator, n, -hue, hue), 0.0)
    gray = bernoulli(generator, n, grayscale_p)
    return b, k, s, h, gray


def color_jitter(x: torch.Tensor, generator, jitter_p: float, brightness: float, contrast: float,
                 saturation: float, hue: float, grayscale_p: float) -> torch.Tensor:
    """torchvision's ``RandomApply([ColorJitter(b, c, s, h)], jitter_p)`` then
    ``RandomGrayscale(grayscale_p)`` on a batch in [0, 1], factors drawn per sample."""
    b, k, s, h, gray = color_factors(generator, len(x), jitter_p, brightness, contrast, saturation, hue,
                                     grayscale_p)
    x = apply_color(x, *color_transform(b, k, s))
    return grayscale(shift_hue(x, h), gray)


def color_transform(b, k, s):
    """(M, c) of ``x -> M x + c * mean_luma(x)`` for per-sample brightness ``b``, contrast ``k``
    and saturation ``s`` (each of shape (n,)), as torchvision's adjust_* functions define them:
    brightness ``b x``; contrast ``k x + (1 - k) mean luma``; saturation ``s x + (1 - s) luma``.
    Composed, ``M = b k (LUMA_PART + s CHROMA_PART)``: a few elementwise operations for the
    whole batch (no matrix product, whose summation order could depend on the batch size and
    so differ between one process and several)."""
    scale = (b * k)[:, None, None]
    matrix = scale * LUMA_PART + (scale * s[:, None, None]) * CHROMA_PART
    # contrast blends with the mean luma of the brightened image; saturation leaves a grey
    # constant unchanged, so the offset passes through it as is
    return matrix, (1 - k) * b


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The hue of each sample turned by ``shift`` (n,) of a full circle in HSV, saturation and
    value kept: torchvision's ``adjust_hue``. Only samples with a shift are computed.

    With v the largest channel, c = v - the smallest and H the hue in sixths of a turn, HSV
    gives back channel n (5, 3, 1 for R, G, B) as ``v - c clamp(min(k, 4 - k), 0, 1)``, k =
    (n + H) mod 6; ``min(k, 4 - k)`` is written ``2 - |((n + 1 + H) mod 6) - 3|``, which
    is the same on the clamp's range and takes fewer passes over the batch."""
    picked = shift.nonzero().squeeze(1)
    if len(picked) == 0:
        return x
    picked = picked.to(x.device)
    rgb = x.index_select(0, picked)
    r, g, b = rgb[:, :1], rgb[:, 1:2], rgb[:, 2:]
    value = torch.maximum(torch.maximum(r, g), b)  # elementwise: a reduction over 3 channels is slower
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    # the hue in sixths, from the channel holding the maximum (red first, as torchvision); 0 for grey
    sixths = torch.where(value == r, g - b, torch.where(value == g, torch.add(b - r, chroma, alpha=2),
                                                        torch.add(r - g, chroma, alpha=4)))
    sixths.div_(chroma.clamp_min(1e-12)).add_(6 * shift.to(x.device)[picked][:, None, None, None])
    k = SEXTANT.to(x.device)[None, :, None, None] + 1 + sixths
    k = k.sub_(k.div(6).floor_().mul_(6)).sub_(3).abs_()  # |(x mod 6) - 3|; remainder() is slower
    out = torch.addcmul(value, chroma, k.neg_().add_(2).clamp_(0, 1), value=-1)  # grey pixels: c = 0
    return x.index_copy(0, picked, out)


def grayscale(x: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Samples flagged in ``flags`` (n,) replaced by their luma in every channel."""
    if not bool(flags.any()):
        return x
    luma = (x * LUMA.to(x.device)[None, :, None, None]).sum(dim=1, keepdim=True)
    return torch.where(flags.to(x.device)[:, None, None, None], luma.expand_as(x), x)


def apply_color(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mean_luma = flat.mean(dim=-1) @ LUMA.to(x.device)  # (n,): mean of the luma; as cheap as a reduction
    out = torch.baddbmm((offset.to(x.device) * mean_luma)[:, None, None].expand(n, c, 1),
                        matrix.to(x.device), flat)
    return out.clamp_(0, 1).reshape(n, c, h, w)


def channel_jitter(x: torch.Tensor, generator, p: float, brightness: float, contrast: float) -> torch.Tensor:
    """Brightness and contrast per channel, for images whose channels are not RGB (e.g. the
    bands of a multispectral image, where saturation, hue and luma mean nothing): with
    probability ``p`` a sample's channel c becomes ``k_c * (b_c x_c) + (1 - k_c) mean(b_c x_c)``
    with factors b_c, k_c drawn per sample and channel from [1 - strength, 1 + strength];
    clamped to [0, 1] once."""
    n, c = x.shape[:2]
    jitter = bernoulli(generator, n, p)[:, None]
    b = torch.stack([uniform(generator, n, max(0, 1 - brightness), 1 + brightness) for _ in range(c)], 1)
    k = torch.stack([uniform(generator, n, max(0, 1 - contrast), 1 + contrast) for _ in range(c)], 1)
    b, k = torch.where(jitter, b, 1.0).to(x.device), torch.where(jitter, k, 1.0).to(x.device)
    scaled = x * b[:, :, None, None]
    mean = scaled.mean(dim=(2, 3), keepdim=True)
    return (k[:, :, None, None] * scaled + (1 - k[:, :, None, None]) * mean).clamp_(0, 1)


def gaussian_blur(x: torch.Tensor, generator: torch.Generator, p: float,
                  sigma=(0.1, 2.0), kernel_fraction: float = 0.1) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma, applied with probability ``p``.
    Kernel size is ``kernel_fraction`` of the image side (odd, at least 3), as in SimCLR."""
    n, c, h, w = x.shape
    apply = bernoulli(generator, n, p)
    sigmas = uniform(generator, n, *sigma)
    if not bool(apply.any()):
        return x
    radius = max(1, int(kernel_fraction * max(h, w)) // 2)
    kernel = blur_kernels(sigmas, radius)
    # only the picked samples are convolved (the convolution is most of the cost)
    picked = apply.nonzero().squeeze(1).to(x.device)
    m = len(picked)
    weight = kernel.to(x.device)[picked].repeat_interleave(c, dim=0)  # (m*c, K)
    planes = x.index_select(0, picked).reshape(1, m * c, h, w)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"),
                      weight[:, None, None, :], groups=m * c)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"),
                      weight[:, None, :, None], groups=m * c)
    return x.index_copy(0, picked, planes.reshape(m, c, h, w))


def blur_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """(n, 2 * radius + 1) normalised 1-D Gaussian kernels, G(t) ~ exp(-t^2 / (2 sigma^2))."""
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    return kernel / kernel.sum(dim=1, keepdim=True)


def solarize(x: torch.Tensor, generator: torch.Generator, p: float, threshold: float = 0.5):
    """Invert pixels at or above ``threshold`` in the samples picked with probability ``p``."""
    apply = bernoulli(generator, x.shape[0], p).to(x.device)[:, None, None, None]
    return torch.where(apply & (x >= threshold), 1 - x, x)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return normalize_(x.clone(), mean, std)


def normalize_(x: torch.Tensor, mean, std) -> torch.Tensor:
    """``normalize`` in place: on a CPU, allocating a fresh batch-sized tensor costs
    more than the arithmetic (measured: 9.5 ms vs 1.1 ms for 256x3x32x32)."""
    mean = torch.as_tensor(mean, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.as_tensor(std, device=x.device, dtype=x.dtype)[None, :, None, None]
    return x.sub_(mean).div_(std)
