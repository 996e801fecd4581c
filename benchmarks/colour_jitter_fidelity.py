"""selfsup's colour jitter against torchvision's ColorJitter, with the same factors.

selfsup folds brightness, contrast and saturation into one affine transform per sample
(``selfsup.augment.ops.color_transform``), clamps once, then shifts hue in HSV
(``ops.shift_hue``). torchvision (and SimCLR's TensorFlow code) applies the four in a random
order and clamps after each. This prints, on real images, how far apart the two are, per
jitter alone and all four together (mean |difference| in [0, 1] pixel units, and the share
of pixels each leaves clipped at 0 or 1), so a gap between selfsup and a torchvision-based
peer can be weighed against it. Factors are drawn as the ``simclr`` recipe's strength 0.5
on small images (brightness, contrast, saturation 0.4, hue 0.1), the jitter always applied.

    python benchmarks/colour_jitter_fidelity.py --data /tmp/cifar/cifar10-jpg/test
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from selfsup.augment import ops

OPS = ("brightness", "contrast", "saturation", "hue")


def load(folder: Path, count: int) -> torch.Tensor:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"{folder}: no .jpg or .png images")
    files = files[:: max(1, len(files) // count)][:count]
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                        for f in files]).float() / 255


def torchvision_jitter(image: torch.Tensor, factors: dict, order) -> torch.Tensor:
    adjust = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
              "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}
    for name in order:
        image = adjust[name](image, factors[name])  # each clamps to [0, 1]
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar/cifar10-jpg/test", help="a folder of colour images")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--strength", type=float, nargs=4, default=[0.4, 0.4, 0.4, 0.1],
                        metavar=("BRIGHTNESS", "CONTRAST", "SATURATION", "HUE"))
    args = parser.parse_args()
    torch.manual_seed(0)
    x = load(Path(args.data), args.images)
    n = len(x)
    g = torch.Generator().manual_seed(0)
    strength = dict(zip(OPS, args.strength))
    drawn = {name: (ops.uniform(g, n, -s, s) if name == "hue" else ops.uniform(g, n, max(0, 1 - s), 1 + s))
             for name, s in strength.items()}
    identity = {"brightness": torch.ones(n), "contrast": torch.ones(n), "saturation": torch.ones(n),
                "hue": torch.zeros(n)}
    orders = [torch.randperm(4, generator=g).tolist() for _ in range(n)]
    clipped = lambda y: float(((y <= 0) | (y >= 1)).float().mean())  # noqa: E731
    rows = []
    for only in (*OPS, "all four"):
        factors = {name: drawn[name] if only in (name, "all four") else identity[name] for name in OPS}
        matrix, offset = ops.color_transform(factors["brightness"], factors["contrast"], factors["saturation"])
        ours = ops.shift_hue(ops.apply_color(x.clone(), matrix, offset), factors["hue"])
        names = OPS if only == "all four" else (only,)
        theirs = torch.stack([torchvision_jitter(x[i], {k: float(factors[k][i]) for k in OPS},
                                                 [OPS[j] for j in orders[i] if OPS[j] in names]) for i in range(n)])
        rows.append({"jitter": only, "ours_vs_torchvision": round(float((ours - theirs).abs().mean()), 4),
                     "ours_change": round(float((ours - x).abs().mean()), 4),
                     "torchvision_change": round(float((theirs - x).abs().mean()), 4),
                     "ours_clipped": round(clipped(ours), 4), "torchvision_clipped": round(clipped(theirs), 4),
                     "input_clipped": round(clipped(x), 4)})
    print(f"{n} images from {args.data}; factors: brightness/contrast/saturation in [1-s, 1+s], hue in [-s, s], "
          f"s = {args.strength}; torchvision in a random order per image")
    print("| jitter | mean abs ours - torchvision | mean change: ours / torchvision | clipped: ours / torchvision |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['jitter']} | {r['ours_vs_torchvision']:.4f} | {r['ours_change']:.4f} / "
              f"{r['torchvision_change']:.4f} | {r['ours_clipped']:.4f} / {r['torchvision_clipped']:.4f} |")
    print("RESULT " + json.dumps({"images": n, "strength": args.strength, "rows": rows}))


if __name__ == "__main__":
    main()
