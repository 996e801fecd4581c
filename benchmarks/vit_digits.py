"""Why MAE and I-JEPA did not beat random weights on digits: the ViT's initial weights and
the embedding kNN reads, measured before and after a short pretrain.

    .venv/bin/python benchmarks/vit_digits.py mae --init timm [--epochs 3] [--vit vit_mini]

``--init xavier`` is the backbone as built (MAE's reference initialisation); ``timm``
re-initialises it with timm's default (truncated normal, std 0.02) before training.
Training is a plain loop with what ``selfsup pretrain`` uses (the method's recipe, AdamW
with its paper's lr x B/256 and weight decay, warm-up then cosine, the same data order),
without Lightning, monitors or checkpoints. kNN top-1 (cosine, k=20) on the fixed holdout
is printed for five embeddings of the same tokens:

- ``mean_ln``: mean of the patch tokens after the final LayerNorm (what every method's
  evaluation reads; the others are diagnostics);
- ``mean_ln_centred``: the same minus the training embeddings' mean;
- ``mean_ln_standardised``: per feature standardised with the training statistics (a
  BatchNorm without affine, as in MAE's linear probe);
- ``ln_of_mean``: LayerNorm of the mean of the tokens before the final norm (timm's fc_norm);
- ``mean_standardised``: the mean before the final norm, standardised.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from selfsup import augment, backbones, methods, modalities
from selfsup.augment.ops import normalize
from selfsup.config import PretrainConfig
from selfsup.evaluate.protocols import knn_predict, rankme
from selfsup.train.module import EpochBatches, derived_seed
from selfsup.methods.optim import create_optimizer, warmup_cosine
from selfsup.train.run import prepare_data


@torch.no_grad()
def pooled(vit, images, mean, std):
    """(2, N, D): mean of the tokens after and before the final LayerNorm."""
    vit.eval()
    parts = []
    for start in range(0, len(images), 256):
        x = normalize(images[start:start + 256].float().div(255), mean, std)
        tokens = vit.blocks(vit.net.norm_pre(vit.embed_patches(x)))
        parts.append(torch.stack([vit.norm(tokens).mean(1), tokens.mean(1)]))
    vit.train()
    return torch.cat(parts, dim=1)


def standardised(train, test):
    mu, sigma = train.mean(0), train.std(0)
    return (train - mu) / sigma, (test - mu) / sigma


def knn_table(vit, train, test, mean, std) -> dict:
    a, b = pooled(vit, train.images, mean, std), pooled(vit, test.images, mean, std)
    width = a.shape[-1]
    embeddings = {
        "mean_ln": (a[0], b[0]),
        "mean_ln_centred": (a[0] - a[0].mean(0), b[0] - a[0].mean(0)),
        "mean_ln_standardised": standardised(a[0], b[0]),
        "ln_of_mean": (F.layer_norm(a[1], (width,)), F.layer_norm(b[1], (width,))),
        "mean_standardised": standardised(a[1], b[1]),
    }
    table = {name: round(float((knn_predict(x, train.labels, y) == test.labels).float().mean()), 3)
             for name, (x, y) in embeddings.items()}
    table["rankme_mean_ln"] = round(rankme(a[0]), 2)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=["mae", "ijepa"])
    parser.add_argument("--vit", default="vit_mini")
    parser.add_argument("--init", choices=["xavier", "timm"], default="xavier")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="per 256 samples (default: the paper's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    source, train, test = prepare_data(PretrainConfig(data="digits", image_size=32))
    mean, std = modalities.get(source.modality).statistics(source.samples)
    vit = backbones.create(args.vit, image_size=32)
    if args.init == "timm":
        from timm.models.vision_transformer import init_weights_vit_timm

        vit.net.apply(init_weights_vit_timm)
        vit.patch_embed.proj.reset_parameters()
    method = methods.create(args.method, vit)
    print(f"{args.method} {args.vit} init={args.init} epochs={args.epochs} batch={args.batch_size}", flush=True)
    print("random  ", json.dumps(knn_table(vit, train, test, mean, std)), flush=True)

    cls = methods.METHODS[args.method]
    recipe = augment.create(cls.recipe, 32)
    lr = (args.lr or cls.optimizer.lr) * args.batch_size / 256
    optimizer = create_optimizer("adamw", method, lr, cls.optimizer.weight_decay)
    sampler = EpochBatches(len(train.images), args.batch_size, seed=0)
    total, warmup = args.epochs * len(sampler), max(1, args.epochs // 10) * len(sampler)
    step, started = 0, time.time()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            for group in optimizer.param_groups:
                group["lr"] = lr * warmup_cosine(step, warmup, total)
            generator = torch.Generator().manual_seed(derived_seed(0, step))
            loss = method.training_step(recipe(train.images[batch], generator, mean, std))["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            method.after_optimizer_step(step / total)
            step += 1
    print("trained ", json.dumps(knn_table(vit, train, test, mean, std)), flush=True)
    print(f"final loss {loss.item():.4f}, {time.time() - started:.0f} s training, "
          f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
