"""Random patch masks for masked-image methods (MAE, I-JEPA), as indices into the
row-major grid of a ViT's patches.

Masks are drawn from a ``torch.Generator`` seeded from (the method's seed, its step count),
never from global state, so a resumed run replays them. Under data parallelism each
process draws the masks of the whole global batch and keeps its own rows, so 2 processes
use the masks 1 process would (as ``selfsup.augment.ops.SliceDraws`` does for the views).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist


def step_generator(seed: int, step: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> 1))


def global_rows(n: int) -> tuple[int, int]:
    """(first row of this process's ``n`` samples, samples in the global batch)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() * n, dist.get_world_size() * n
    return 0, n


def random_visible(generator: torch.Generator, n: int, num_patches: int, visible: int) -> torch.Tensor:
    """(n, visible) indices of the patches each sample keeps: the first ``visible`` of a
    random permutation drawn independently for every sample (MAE's shuffle)."""
    start, total = global_rows(n)
    noise = torch.rand(total, num_patches, generator=generator)[start:start + n]
    return noise.argsort(dim=1)[:, :visible]


def block_size(generator, grid_size, scale, aspect) -> tuple[int, int]:
    """(height, width) in patches of a block, as I-JEPA's ``MaskCollator._sample_block_size``:
    one uniform draw u sets both the area fraction s = lo + u (hi - lo) in ``scale`` and the
    height/width ratio a = lo + u (hi - lo) in ``aspect`` (so larger blocks are taller);
    with N = int(rows * cols * s) patches, h = round(sqrt(N a)), w = round(sqrt(N / a)), each
    cut to one less than the grid's side (a block never spans the whole grid)."""
    rows, cols = grid_size
    u = float(torch.rand(1, generator=generator))
    s = scale[0] + u * (scale[1] - scale[0])
    a = aspect[0] + u * (aspect[1] - aspect[0])
    area = int(rows * cols * s)
    h, w = round(math.sqrt(area * a)), round(math.sqrt(area / a))
    return max(1, min(h, rows - 1)), max(1, min(w, cols - 1))


def random_blocks(generator, n: int, grid_size, size) -> torch.Tensor:
    """(n, rows*cols) boolean masks, each one ``size`` block whose top-left corner is uniform
    in [0, rows - h) x [0, cols - w), as the code's ``torch.randint(0, height - h)``."""
    (rows, cols), (h, w) = grid_size, size
    top = (torch.rand(n, generator=generator) * max(1, rows - h)).long()
    left = (torch.rand(n, generator=generator) * max(1, cols - w)).long()
    r, c = torch.arange(rows), torch.arange(cols)
    in_rows = (r >= top[:, None]) & (r < top[:, None] + h)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + w)
    return (in_rows[:, :, None] & in_cols[:, None, :]).reshape(n, rows * cols)


def multi_block(generator: torch.Generator, n: int, grid_size, num_targets: int = 4,
                target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5), context_scale=(0.85, 1.0),
                min_context: int = 4, tries: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """I-JEPA's multi-block masks, as its code's ``MaskCollator`` (src/masks/multiblock.py):

    - the target block size, then the (square) context block size, are drawn once per batch
      from the step's generator (``block_size``);
    - every sample gets ``num_targets`` target blocks at random places (they may overlap),
      and one context block from which every target patch is removed;
    - a context must keep more than ``min_context`` patches (the code's ``min_keep``), else
      it is drawn again; after ``tries`` failures its sample stops avoiding its last target,
      then the one before, and so on, as the code relaxes its acceptable regions;
    - every sample's context is cut to the batch's smallest, keeping the first patches in
      raster order, as the code's ``cm[:min_keep_enc]`` (the targets are all h x w).

    Returns context (n, K) and targets (n, num_targets, h*w) patch indices, ascending."""
    start, total = global_rows(n)
    patches = grid_size[0] * grid_size[1]
    target_size = block_size(generator, grid_size, target_scale, target_aspect)
    context_size = block_size(generator, grid_size, context_scale, (1.0, 1.0))
    targets = random_blocks(generator, total * num_targets, grid_size, target_size).reshape(
        total, num_targets, patches)
    context = torch.zeros(total, patches, dtype=torch.bool)
    failures = torch.zeros(total, dtype=torch.long)
    for attempt in range(tries * (num_targets + 1) + 1):
        redo = context.sum(dim=1) <= min_context
        if not redo.any():
            break
        if attempt == tries * (num_targets + 1):
            raise ValueError(f"I-JEPA masks: no context of more than {min_context} patches on a {grid_size} "
                             f"grid (context blocks {context_size}); use larger images or a smaller min_context")
        avoided = torch.arange(num_targets)[None, :] < num_targets - failures[:, None] // tries  # (total, M)
        blocked = (targets & avoided[:, :, None]).any(dim=1)
        drawn = random_blocks(generator, total, grid_size, context_size) & ~blocked
        context[redo] = drawn[redo]
        failures += (redo & (drawn.sum(dim=1) <= min_context)).long()
    keep = int(context.sum(dim=1).min())
    # the first ``keep`` context patches in raster order: sort the patch numbers, others last
    order = (torch.arange(patches)[None, :] + patches * (~context).long()).argsort(dim=1)
    context_index = order[:, :keep]
    target_index = targets.nonzero()[:, 2].reshape(total, num_targets, -1)
    return context_index[start:start + n], target_index[start:start + n]
