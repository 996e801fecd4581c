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
    """(height, width) in patches of a block covering a fraction in ``scale`` of the grid with
    height/width ratio in ``aspect``, rounded as in I-JEPA's code and kept inside the grid."""
    rows, cols = grid_size
    u = torch.rand(2, generator=generator).tolist()
    s = scale[0] + u[0] * (scale[1] - scale[0])
    a = aspect[0] + u[1] * (aspect[1] - aspect[0])
    area = int(rows * cols * s)
    h, w = round(math.sqrt(area * a)), round(math.sqrt(area / a))
    return min(max(h, 1), rows), min(max(w, 1), cols)


def random_blocks(generator, n: int, grid_size, size) -> torch.Tensor:
    """(n, rows*cols) boolean masks, each one ``size`` block at a uniformly random place."""
    (rows, cols), (h, w) = grid_size, size
    top = (torch.rand(n, generator=generator) * (rows - h + 1)).long()
    left = (torch.rand(n, generator=generator) * (cols - w + 1)).long()
    r, c = torch.arange(rows), torch.arange(cols)
    in_rows = (r >= top[:, None]) & (r < top[:, None] + h)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + w)
    return (in_rows[:, :, None] & in_cols[:, None, :]).reshape(n, rows * cols)


def multi_block(generator: torch.Generator, n: int, grid_size, num_targets: int = 4,
                target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5), context_scale=(0.85, 1.0),
                min_context: int = 4, tries: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """I-JEPA's masks: per sample ``num_targets`` (possibly overlapping) target blocks and
    one square context block with the targets' patches removed. As in the paper's code the
    block sizes are drawn once per batch and the places per sample; a sample whose context
    keeps fewer than ``min_context`` patches is drawn again.

    Returns context (n, K) and targets (n, num_targets, h*w) patch indices. K is the
    smallest context in the global batch; larger contexts keep a random subset of K
    (the paper's code keeps the first K in raster order)."""
    start, total = global_rows(n)
    patches = grid_size[0] * grid_size[1]
    target_size = block_size(generator, grid_size, target_scale, target_aspect)
    context_size = block_size(generator, grid_size, context_scale, (1.0, 1.0))
    targets = torch.zeros(total, num_targets, patches, dtype=torch.bool)
    context = torch.zeros(total, patches, dtype=torch.bool)
    for attempt in range(tries + 1):
        redo = context.sum(dim=1) < min_context
        if not redo.any():
            break
        if attempt == tries:
            raise ValueError(f"I-JEPA masks: no context of {min_context} patches left beside the "
                             f"targets on a {grid_size} grid after {tries} tries; use larger images")
        new_targets = random_blocks(generator, total * num_targets, grid_size, target_size)
        new_targets = new_targets.reshape(total, num_targets, patches)
        new_context = random_blocks(generator, total, grid_size, context_size) & ~new_targets.any(dim=1)
        targets[redo], context[redo] = new_targets[redo], new_context[redo]
    keep = int(context.sum(dim=1).min())
    order = (torch.rand(total, patches, generator=generator) + (~context).float()).argsort(dim=1)
    context_index = order[:, :keep].sort(dim=1).values
    target_index = targets.nonzero()[:, 2].reshape(total, num_targets, -1)
    return context_index[start:start + n], target_index[start:start + n]
