import pytest
import torch

from selfsup import backbones
from selfsup.backbones.vit import TokenPredictor, ViT, gather_tokens, sincos_pos_embed


def small_vit(image_size=16):
    torch.manual_seed(0)
    return ViT(width=32, depth=2, heads=2, image_size=image_size)


def test_sizes_patch_sizes_and_shapes():
    tiny = backbones.create("vit_tiny", image_size=32)
    assert (tiny.dim, tiny.patch_size, tiny.grid_size, tiny.num_patches) == (192, 4, (8, 8), 64)
    x = torch.randn(2, 3, 32, 32)
    assert tiny(x).shape == (2, 192) and tiny.tokens(x).shape == (2, 64, 192)
    small = backbones.create("vit_small", image_size=96)
    assert (small.dim, small.patch_size, small.grid_size) == (384, 16, (6, 6))
    assert len(small.blocks) == 12 and small.net.cls_token is None
    default = backbones.create("vit_tiny")  # existing callers pass no image size
    assert default.patch_size == 16 and default.grid_size == (14, 14)


def test_mini_size_for_small_images():
    mini = backbones.create("vit_mini", image_size=32)
    assert (mini.dim, len(mini.blocks), mini.net.blocks[0].attn.num_heads) == (128, 4, 4)
    assert mini(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_weights_start_xavier_uniform_as_in_mae():
    vit = small_vit()
    for weight in (vit.blocks[0].mlp.fc1.weight, vit.patch_embed.proj.weight):
        fan_out, fan_in = len(weight), weight[0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5
        # uniform on [-bound, bound]: its std is bound / sqrt(3), not timm's 0.02
        assert weight.abs().max() <= bound
        assert abs(weight.std().item() - bound / 3 ** 0.5) < 0.1 * bound
    assert vit.blocks[0].attn.qkv.bias.abs().max() == 0


def test_cnn_backbones_still_built_as_before():
    assert backbones.create("smallcnn").dim == 256
    assert backbones.create("resnet18", small_stem=True, image_size=32).dim == 512


def test_image_size_must_be_a_multiple_of_the_patch_size():
    with pytest.raises(ValueError, match="multiple of its patch size 4"):
        backbones.create("vit_tiny", image_size=30)


def test_embedding_is_mean_of_normalised_patch_tokens():
    vit = small_vit().eval()
    x = torch.randn(3, 3, 16, 16)
    tokens = vit.tokens(x)
    assert torch.allclose(vit(x), tokens.mean(dim=1), atol=1e-6)
    # the final LayerNorm (weight 1, bias 0 at init) leaves every token with mean 0, var 1
    assert torch.allclose(tokens.mean(-1), torch.zeros(3, 16), atol=1e-5)
    assert torch.allclose(tokens.var(-1, unbiased=False), torch.ones(3, 16), atol=1e-3)


def test_tokens_follow_the_row_major_patch_grid():
    vit = small_vit()
    x = torch.randn(2, 3, 16, 16)
    embedded = vit.patch_embed(x)
    p = vit.patch_size
    for i in range(vit.num_patches):
        r, c = divmod(i, vit.grid_size[1])
        patch = x[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p]
        assert torch.allclose(embedded[:, i], vit.patch_embed.proj(patch).flatten(1), atol=1e-5)


def test_fixed_sincos_positions_are_not_trained():
    vit = small_vit()
    assert not vit.pos_embed.requires_grad
    assert torch.allclose(vit.pos_embed, sincos_pos_embed((4, 4), 32))
    assert vit.pos_embed[0, 0].ne(vit.pos_embed[0, 1]).any()
    vit(torch.randn(2, 3, 16, 16)).sum().backward()
    assert vit.pos_embed.grad is None and vit.patch_embed.proj.weight.grad is not None


def test_tokens_of_kept_patches_ignore_the_others():
    vit = small_vit().eval()
    x = torch.randn(2, 3, 16, 16)
    keep = torch.tensor([[0, 5, 10], [15, 3, 1]])
    out = vit.tokens(x, keep)
    assert out.shape == (2, 3, 32)
    assert torch.allclose(out, vit.encode(gather_tokens(vit.embed_patches(x), keep)), atol=1e-6)
    changed = x.clone()
    changed[:, :, 12:, 4:8] = 5.0  # patch 13: kept by neither sample
    assert torch.allclose(vit.tokens(changed, keep), out, atol=1e-6)
    changed[1, :, 12:, 12:] = 5.0  # patch 15: kept by sample 1
    assert not torch.allclose(vit.tokens(changed, keep)[1], out[1])


def test_gather_tokens():
    tokens = torch.arange(24.0).reshape(2, 4, 3)
    index = torch.tensor([[3, 0], [1, 1]])
    expected = torch.stack([tokens[0, [3, 0]], tokens[1, [1, 1]]])
    assert torch.equal(gather_tokens(tokens, index), expected)


def test_token_predictor_outputs_one_prediction_per_query():
    torch.manual_seed(0)
    predictor = TokenPredictor(32, 7, (4, 4), width=16, depth=1, heads=2).eval()
    tokens, positions = torch.randn(2, 3, 32), torch.tensor([[0, 1, 2], [5, 6, 7]])
    queries = torch.tensor([[8, 9], [10, 11]])
    out = predictor(tokens, positions, queries)
    assert out.shape == (2, 2, 7)
    # queries differ only by position, so their predictions do too
    assert not torch.allclose(out[:, 0], out[:, 1])
    # no query attends to a particular order: permuting the context changes nothing
    permuted = predictor(tokens[:, [2, 0, 1]], positions[:, [2, 0, 1]], queries)
    assert torch.allclose(out, permuted, atol=1e-5)


def test_other_image_sizes_get_their_own_grid_of_positions():
    """Multi-crop's local crops (DINO): a 14 px crop of a 16 px ViT with 4 px patches is
    zero-padded to 16 px, a 4 x 4 grid, with that grid's sine-cosine positions."""
    vit = small_vit(16)
    crop = torch.randn(2, 3, 14, 14)
    padded = torch.nn.functional.pad(crop, (0, 2, 0, 2))
    assert torch.allclose(vit.embed_patches(crop), vit.patch_embed(padded) + sincos_pos_embed((4, 4), 32), atol=1e-6)
    smaller = torch.randn(2, 3, 8, 8)
    assert torch.allclose(vit.embed_patches(smaller), vit.patch_embed(smaller) + sincos_pos_embed((2, 2), 32),
                          atol=1e-6)
    assert vit(smaller).shape == (2, 32) and vit.use_class_token()(crop).shape == (2, 32)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(vit.embed_patches(x), vit.patch_embed(x) + vit.pos_embed)  # the run's size as before
