"""CPU bf16 autocast against fp32: the weight gradient of one convolution, per geometry.

Why ``selfsup.devices.cpu_bf16_hazard`` exists. A strided convolution whose input is one
pixel wide gets, under CPU bf16 autocast, weight gradients that are garbage (up to 1e35, or
NaN) in the taps that only meet padding, where fp32 gives exact zeros. Found when a CI run's
tiny timm/resnet18 run at 16 px (its layer4 sees 1x1 maps) saved NaN weights.

Prints, per geometry, the largest error of the bf16 weight gradient relative to the fp32
one's largest entry over ``--trials`` random batches (bf16 rounding alone gives ~0.004).

    python benchmarks/cpu_bf16_conv.py
"""

import argparse

import torch
from torch import nn

# (in channels, out channels, kernel, stride, padding, input height, input width)
GEOMETRIES = [
    (256, 512, 3, 2, 1, 1, 1),  # timm resnet18 layer4.0.conv1 at 16 px
    (256, 512, 3, 2, 1, 2, 2),  # the same at 32 px
    (64, 64, 3, 2, 1, 4, 1),
    (64, 64, 3, 2, 1, 1, 4),
    (64, 64, 5, 2, 2, 1, 1),
    (64, 64, 3, 3, 1, 1, 1),
    (64, 64, 3, 1, 1, 1, 1),  # stride 1
    (64, 64, 3, 2, 1, 3, 3),
    (3, 64, 7, 2, 3, 1, 1),
]


def relative_error(geometry: tuple, trials: int, batch: int) -> float:
    cin, cout, kernel, stride, padding, height, width = geometry
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
    worst = 0.0
    for _ in range(trials):
        x = torch.randn(batch, cin, height, width)
        grads = []
        for bf16 in (False, True):
            conv.zero_grad()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                y = conv(x)
            y.float().sum().backward()
            grads.append(conv.weight.grad.clone())
        reference, got = grads
        error = ((got - reference).abs().max() / reference.abs().max().clamp_min(1e-6)).item()
        worst = max(worst, error if error == error else float("inf"))  # NaN counts as infinite
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, bf16 units: {torch.cpu._is_avx512_bf16_supported()}")
    for geometry in GEOMETRIES:
        cin, cout, kernel, stride, padding, height, width = geometry
        print(f"conv {cin}->{cout} k{kernel} s{stride} p{padding} on {height}x{width}: "
              f"bf16 weight-gradient error {relative_error(geometry, args.trials, args.batch):.3g}")


if __name__ == "__main__":
    main()
