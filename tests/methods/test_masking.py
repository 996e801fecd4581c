import math

import pytest
import torch

from selfsup.methods import masking
from selfsup.methods.masking import multi_block, random_visible, step_generator


def test_random_visible_keeps_a_quarter_of_distinct_patches_per_sample():
    visible = random_visible(step_generator(0, 0), 32, 64, 16)
    assert visible.shape == (32, 16)
    assert all(len(set(row.tolist())) == 16 for row in visible)
    assert visible.min() >= 0 and visible.max() < 64
    assert len({tuple(sorted(row.tolist())) for row in visible}) == 32  # every sample its own mask


def test_masks_depend_only_on_seed_and_step():
    draw = lambda seed, step: random_visible(step_generator(seed, step), 4, 16, 4)
    assert torch.equal(draw(3, 7), draw(3, 7))
    assert not torch.equal(draw(3, 7), draw(3, 8)) and not torch.equal(draw(3, 7), draw(4, 7))


def test_each_process_gets_its_rows_of_the_global_batch(monkeypatch):
    whole_visible = random_visible(step_generator(0, 5), 8, 16, 4)
    whole_context, whole_targets = multi_block(step_generator(0, 5), 8, (4, 4))
    for rank in range(2):
        monkeypatch.setattr(masking, "global_rows", lambda n, rank=rank: (rank * n, 2 * n))
        rows = slice(rank * 4, rank * 4 + 4)
        assert torch.equal(random_visible(step_generator(0, 5), 4, 16, 4), whole_visible[rows])
        context, targets = multi_block(step_generator(0, 5), 4, (4, 4))
        assert torch.equal(context, whole_context[rows]) and torch.equal(targets, whole_targets[rows])


def reference_block_size(generator, grid, scale, aspect):
    """MaskCollator._sample_block_size of I-JEPA's src/masks/multiblock.py, written out again."""
    height, width = grid
    _rand = torch.rand(1, generator=generator).item()
    max_keep = int(height * width * (scale[0] + _rand * (scale[1] - scale[0])))
    aspect_ratio = aspect[0] + _rand * (aspect[1] - aspect[0])
    h, w = int(round(math.sqrt(max_keep * aspect_ratio))), int(round(math.sqrt(max_keep / aspect_ratio)))
    while h >= height:
        h -= 1
    while w >= width:
        w -= 1
    return h, w


def drawing(u):
    """A generator whose first torch.rand(1) is ``u`` to within 1e-4 (the first such seed)."""
    seed = next(s for s in range(10**6) if abs(torch.rand(1, generator=torch.Generator().manual_seed(s)) - u) < 1e-4)
    return torch.Generator().manual_seed(seed)


def test_block_size_is_the_reference_one():
    ours, theirs = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for grid, scale, aspect in [((14, 14), (0.15, 0.2), (0.75, 1.5)), ((14, 14), (0.85, 1.0), (1.0, 1.0)),
                                ((8, 8), (0.15, 0.2), (0.75, 1.5)), ((16, 16), (0.2, 0.8), (0.3, 3.0))] * 25:
        assert masking.block_size(ours, grid, scale, aspect) == reference_block_size(theirs, grid, scale, aspect)
    # one draw u sets both scale and aspect (u = 0: scale 0.1, ratio 0.5; u = 1: 0.5 and 2)
    low, high = (masking.block_size(drawing(u), (64, 64), (0.1, 0.5), (0.5, 2.0)) for u in (0.0, 1.0))
    assert low == (14, 29) and high == (63, 32)  # 409 patches at 1:2, 2048 at 2:1 (64 cut to 63)
    g = torch.Generator().manual_seed(1)
    assert masking.block_size(g, (14, 14), (1.0, 1.0), (1.0, 1.0)) == (13, 13)  # never the whole grid


def block_shape(block, cols):
    r, c = block // cols, block % cols
    return int(r.max() - r.min() + 1), int(c.max() - c.min() + 1), int(r.max()), int(c.max())


@pytest.mark.parametrize("grid", [(8, 8), (14, 14)])
def test_multi_block_targets_are_blocks_and_context_avoids_them(grid):
    rows, cols = grid
    for step in range(5):
        context, targets = multi_block(step_generator(1, step), 16, grid)
        n, m, size = targets.shape
        assert (n, m) == (16, 4) and context.shape[0] == 16 and context.shape[1] > 4  # more than min_keep
        assert context.min() >= 0 and context.max() < rows * cols
        for s in range(n):
            assert context[s].tolist() == sorted(set(context[s].tolist()))  # distinct, raster order
            assert not set(context[s].tolist()) & set(targets[s].flatten().tolist())
            for block in targets[s]:
                h, w, bottom, right = block_shape(block, cols)
                assert h * w == size == len(set(block.tolist()))  # a full h x w rectangle, one size a batch
                # corners uniform in [0, rows - h) x [0, cols - w), as the code's randint: never the last row
                assert bottom < rows - 1 and right < cols - 1
        assert 0.05 <= size / (rows * cols) <= 0.3  # scale 0.15-0.2 up to rounding
        assert len({tuple(t.flatten().tolist()) for t in targets}) > 1  # places differ per sample


def test_a_crowded_context_stops_avoiding_its_last_targets_first():
    """On a 4 x 4 grid the 3 x 3 context block rarely keeps more than 4 patches beside 4
    targets; the code then drops its acceptable regions from the last target backwards."""
    relaxed = 0
    for step in range(10):
        context, targets = multi_block(step_generator(2, step), 8, (4, 4))
        assert context.shape[1] > 4
        for s in range(8):
            overlapping = [i for i in range(4) if set(targets[s, i].tolist()) & set(context[s].tolist())]
            # the first target is the last to be given up (after 3 x 20 failures): never here
            assert 0 not in overlapping
            relaxed += bool(overlapping)
    assert relaxed > 0


def test_contexts_are_cut_to_the_smallest_keeping_the_first_in_raster_order(monkeypatch):
    drawn = []
    original = masking.random_blocks

    def recording(generator, n, grid_size, size):
        blocks = original(generator, n, grid_size, size)
        drawn.append(blocks)
        return blocks
    monkeypatch.setattr(masking, "random_blocks", recording)
    context, targets = multi_block(step_generator(3, 0), 6, (14, 14))
    assert len(drawn) == 2  # the targets, then one context draw that was valid for every sample
    full = drawn[1] & ~torch.nn.functional.one_hot(targets.flatten(1), 196).bool().any(dim=1)
    sizes = full.sum(dim=1)
    assert context.shape[1] == int(sizes.min()) and int(sizes.max()) > int(sizes.min())
    for s in range(6):
        assert context[s].tolist() == full[s].nonzero().flatten().tolist()[:context.shape[1]]


def test_impossible_context_is_an_error():
    with pytest.raises(ValueError, match="no context of more than 17 patches"):
        multi_block(step_generator(0, 0), 2, (4, 4), min_context=17, tries=3)
