"""Vision Transformers (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") built
from timm's modules with random weights; nothing is downloaded.

``vit_tiny`` (width 192, 12 blocks, 3 heads) and ``vit_small`` (384, 12, 6) are DeiT's
sizes; ``vit_mini`` (128, 4, 4) is ours for small images on a CPU, where a 12-block ViT
costs 1-3 s a step. Patches are 4 px for images up to 64 px (a 32 px image gives 8 x 8
tokens) and 16 px above. There is no class token: the embedding is the mean of the patch
tokens after the final LayerNorm, the pooling MAE (fine-tuning) and I-JEPA (evaluation)
use, and the only one I-JEPA trains. ``use_class_token()`` adds a learned [CLS] token
whose output becomes the embedding (DINO's and MoCo v3's ViTs). Positional embeddings are fixed 2-D sine-cosine, as
in MoCo v3, MAE and I-JEPA.

Weights start as in MAE's reference code (after the JAX ViT): every linear layer and the
patch projection (as a linear map of the flattened patch) Xavier-uniform, biases zero.
timm's default (truncated normal, std 0.02) leaves a random ViT nearly linear in its input,
so the mean of its patch tokens says little more than the mean patch: on digits at 32 px
a random vit_mini reaches kNN top-1 0.472 that way and 0.725 with Xavier, and after 3
epochs of MAE 0.536 and 0.742 (``benchmarks/vit_digits.py``, BENCHMARKS.md).

Masked-image methods reach inside: ``patch_embed``, ``pos_embed`` (1, N, D), ``blocks``,
``norm``, ``grid_size`` and ``tokens(x, keep)``, which encodes only the patches whose
indices (row-major over the grid) are in ``keep``. ``TokenPredictor`` is the narrow ViT
that MAE's decoder and I-JEPA's predictor are made of.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.external import TimmModel, Wrapped, channels
from selfsup.backbones.registry import register
from selfsup.errors import ConfigError

# timm is imported where it is used: it takes a second or two, which every command would pay
SIZES = {"vit_mini": (128, 4, 4), "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}
# the timm architecture a ViT is exported as (its model_args set width, depth, heads and the rest)
TIMM_NAMES = {192: "vit_tiny_patch16_224", 384: "vit_small_patch16_224"}


def default_patch_size(image_size: int) -> int:
    return 4 if image_size <= 64 else 16


def sincos_pos_embed(grid_size: tuple[int, int], dim: int) -> torch.Tensor:
    """(1, H*W, dim) fixed embedding of the grid positions, row-major like the patches."""
    from timm.layers import build_sincos2d_pos_embed

    return build_sincos2d_pos_embed(list(grid_size), dim)[None]


def xavier_init(module: nn.Module) -> None:
    """MAE's initialisation of a linear layer or patch projection (use with ``.apply``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight.view(len(module.weight), -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens[b, index[b, j]]`` for (B, N, D) tokens and (B, K) indices: (B, K, D)."""
    return torch.gather(tokens, 1, index[..., None].expand(-1, -1, tokens.shape[-1]))


class ViT(TimmModel):
    """timm's ``VisionTransformer`` as built by ``timm.create_model(architecture,
    num_classes=0, **model_args)``: its ``forward`` and timm's give the same embedding."""

    def __init__(self, width: int, depth: int, heads: int, image_size: int = 224,
                 patch_size: int | None = None, in_channels: int = 3):
        from timm.models.vision_transformer import VisionTransformer

        patch_size = patch_size or default_patch_size(image_size)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size}: a ViT needs a multiple of its patch size "
                             f"{patch_size}")
        args = dict(img_size=image_size, patch_size=patch_size, embed_dim=width, depth=depth, num_heads=heads,
                    class_token=False, global_pool="avg", fc_norm=False)
        if in_channels != 3:  # timm's default; only then in model_args, which export writes
            args["in_chans"] = in_channels
        super().__init__(VisionTransformer(num_classes=0, **args), width,
                         TIMM_NAMES.get(width, "vit_tiny_patch16_224"), args)
        self.patch_size, self.in_channels = patch_size, in_channels
        self.grid_size = tuple(self.net.patch_embed.grid_size)
        self.net.apply(xavier_init)
        with torch.no_grad():
            self.net.pos_embed.copy_(sincos_pos_embed(self.grid_size, width))
        self.net.pos_embed.requires_grad_(False)
        # other image sizes (multi-crop's local crops): zero-padded to whole patches, their own grid's
        # positions (``embed_patches``); the run's size is unchanged
        self.net.patch_embed.strict_img_size, self.net.patch_embed.dynamic_img_pad = False, True

    # the parts MAE and I-JEPA use, named as in timm
    patch_embed = property(lambda self: self.net.patch_embed)
    pos_embed = property(lambda self: self.net.pos_embed)
    blocks = property(lambda self: self.net.blocks)
    norm = property(lambda self: self.net.norm)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, N, D) patch embeddings plus positions. An image of
        another size than the ViT's (a local crop) is zero-padded to whole patches and gets
        the fixed sine-cosine positions of its own grid, as DINO interpolates its positions."""
        patches = self.patch_embed(x)
        if x.shape[-2:] == self.net.patch_embed.img_size:
            return patches + self.pos_embed
        grid = self.net.patch_embed.dynamic_feat_size(x.shape[-2:])
        return patches + sincos_pos_embed(grid, self.dim).to(patches)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.net.norm_pre(tokens)))

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens after the final norm: (B, N, D), or (B, K, D) for the patches at the
        (B, K) indices ``keep``, the others never entering the encoder."""
        tokens = self.embed_patches(x)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        return self.encode(tokens)

    @property
    def has_class_token(self) -> bool:
        return self.net.cls_token is not None

    def use_class_token(self) -> "ViT":
        """Prepend a learned [CLS] token to the patch tokens, its output (after the final
        norm) the embedding: timm's ``class_token=True, global_pool="token"``, with
        ``no_embed_class=True`` since the fixed positions are the patches' only (the token
        has none, as in MoCo v3). Initialised as in DINO (truncated normal, std 0.02)."""
        if not self.has_class_token:
            net = self.net
            net.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, self.dim), std=0.02))
            net.has_class_token, net.num_prefix_tokens, net.no_embed_class = True, 1, True
            net.global_pool = "token"
            self.model_args.update(class_token=True, global_pool="token", no_embed_class=True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_class_token:
            return self.tokens(x).mean(dim=1)
        tokens = self.embed_patches(x)
        token = self.net.cls_token.expand(len(tokens), -1, -1)
        return self.encode(torch.cat([token, tokens], dim=1))[:, 0]


def is_vit(backbone: "str | nn.Module") -> bool:
    """Whether ``backbone`` (a name, or a built backbone) is a Vision Transformer: a built-in
    ViT, or a library's model whose architecture name says ViT or DeiT (``timm/vit_*``,
    ``timm/deit_*``, ``torchvision/vit_*``). Methods whose paper has one setting for ResNets
    and another for ViTs (MoCo v3) choose by it."""
    if isinstance(backbone, str):
        name = backbone.lower()
        return name in SIZES or ("/" in name and name.split("/", 1)[1].startswith(("vit", "deit")))
    if isinstance(backbone, ViT):
        return True
    return isinstance(backbone, Wrapped) and bool(backbone.library) and \
        is_vit(f"{backbone.library}/{backbone.architecture}")


def require_vit(backbone: nn.Module, method: str) -> ViT:
    """``backbone`` if it is a built-in ViT, whose patch tokens masked-image methods use."""
    if not isinstance(backbone, ViT):
        got = f"{backbone.library}/{backbone.architecture}" if isinstance(backbone, Wrapped) and backbone.library \
            else type(backbone).__name__
        raise ConfigError(f"{method} needs a ViT backbone ({', '.join(SIZES)}) for its patch tokens; "
                          f"got {got} (ViTs of timm/ or torchvision/ give no patch tokens here)")
    return backbone


class TokenPredictor(nn.Module):
    """A narrow ViT that reads encoded tokens at known grid positions and predicts ``out_dim``
    values at query positions: the inputs are projected to ``width`` and given the positions'
    embeddings, each query is a shared learned mask token plus its position's embedding,
    all pass through timm Blocks together, and the queries' outputs are projected."""

    def __init__(self, in_dim: int, out_dim: int, grid_size: tuple[int, int], width: int = 128,
                 depth: int = 4, heads: int = 4):
        super().__init__()
        from timm.models.vision_transformer import Block, init_weights_vit_timm

        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos_embed", sincos_pos_embed(grid_size, width), persistent=False)
        self.blocks = nn.Sequential(*[Block(width, heads, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        self.apply(init_weights_vit_timm)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, K, in_dim) tokens at (B, K) positions, (B, Q) query positions -> (B, Q, out_dim)."""
        pos = self.pos_embed.expand(len(tokens), -1, -1)
        x = self.embed(tokens) + gather_tokens(pos, positions)
        q = self.mask_token + gather_tokens(pos, queries)
        x = self.norm(self.blocks(torch.cat([x, q], dim=1)))
        return self.head(x[:, -queries.shape[1]:])


@register("image")
def vit_mini(image_size: int = 224, input_shape=None, **_) -> ViT:
    return ViT(*SIZES["vit_mini"], image_size=image_size, in_channels=channels(input_shape))


@register("image")
def vit_tiny(image_size: int = 224, input_shape=None, **_) -> ViT:
    return ViT(*SIZES["vit_tiny"], image_size=image_size, in_channels=channels(input_shape))


@register("image")
def vit_small(image_size: int = 224, input_shape=None, **_) -> ViT:
    return ViT(*SIZES["vit_small"], image_size=image_size, in_channels=channels(input_shape))
