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


@pytest.mark.parametrize("grid", [(8, 8), (4, 4), (14, 14)])
def test_multi_block_targets_are_blocks_and_context_avoids_them(grid):
    rows, cols = grid
    for step in range(5):
        context, targets = multi_block(step_generator(1, step), 16, grid)
        n, m, size = targets.shape
        assert (n, m) == (16, 4) and context.shape[0] == 16 and context.shape[1] >= 4
        assert context.min() >= 0 and context.max() < rows * cols
        assert targets.min() >= 0 and targets.max() < rows * cols
        for s in range(n):
            assert len(set(context[s].tolist())) == context.shape[1]
            assert not set(context[s].tolist()) & set(targets[s].flatten().tolist())
            for block in targets[s]:
                r, c = block // cols, block % cols
                h, w = int(r.max() - r.min() + 1), int(c.max() - c.min() + 1)
                assert h * w == size == len(set(block.tolist()))  # a full h x w rectangle
        assert 0.05 <= size / (rows * cols) <= 0.3  # scale 0.15-0.2 up to rounding
        assert len({tuple(t.flatten().tolist()) for t in targets}) > 1  # places differ per sample


def test_block_size_follows_scale_and_aspect():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        h, w = masking.block_size(g, (14, 14), (0.15, 0.2), (0.75, 1.5))
        assert 0.12 <= h * w / 196 <= 0.23 and 0.5 <= h / w <= 2
        assert masking.block_size(g, (14, 14), (1.0, 1.0), (1.0, 1.0)) == (14, 14)


def test_impossible_context_is_an_error():
    with pytest.raises(ValueError, match="no context of 17 patches"):
        multi_block(step_generator(0, 0), 2, (4, 4), min_context=17, tries=3)
