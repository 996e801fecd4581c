"""Backbones from other libraries by name, ``timm/NAME`` and ``torchvision/NAME``, and a
user's own module (``wrap``); each maps a batch to (B, D) and knows D as ``.dim``.

- ``timm/NAME``: ``timm.create_model(NAME, num_classes=0, **options)``, the pooled features
  of any ``timm.list_models()`` name with random weights (nothing is downloaded). A model
  whose input size is fixed (its pretrained config says ``fixed_input_size``, as for ViTs)
  gets ``img_size=image_size`` unless ``options`` give one, so a 32 px run of
  ``timm/vit_tiny_patch16_224`` has a 2 x 2 patch grid.
- ``torchvision/NAME``: ``torchvision.models.get_model(NAME, weights=None, **options)``
  (a classification model) with its last classifier layer (in ``fc``, ``classifier``,
  ``heads`` or ``head``) replaced by ``Identity``; its ViTs get ``image_size``.

Images of C != 3 channels: a timm model is built with ``in_chans=C``; a torchvision model
is refused (it has no such argument), with one line naming the alternatives.

Both keep their library's architecture, so their weights load back into that library
unchanged (``selfsup export``). ``small_stem`` is opt-in for them: a model with a ``conv1``
and a ``maxpool`` (the ResNet family of either library) then gets the built-in ResNets'
3x3 stride-1 stem without max-pool, and ``changes`` holds the lines that make a library
model match. D is measured by one forward pass of two blank images in eval mode (which
draws no random numbers), except where the caller gives it.
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

from selfsup.errors import ConfigError

TIMM, TORCHVISION = "timm/", "torchvision/"
CLASSIFIERS = ("fc", "classifier", "heads", "head")  # where torchvision keeps its classifier


class Wrapped(nn.Module):
    """A library's (or a user's) model ``net`` whose output is the (B, ``dim``) embedding.
    ``library``/``architecture``/``model_args`` say how that library builds ``net`` again,
    ``classifier`` which of its modules was replaced by ``Identity``, and ``changes`` the
    Python lines (on a ``model`` built so) that turn it into ``net``."""

    library: str | None = None

    def __init__(self, net: nn.Module, dim: int, architecture: str | None = None,
                 model_args: dict | None = None, classifier: str | None = None, changes=()):
        super().__init__()
        self.net, self.dim = net, dim
        self.architecture, self.model_args = architecture, dict(model_args or {})
        self.classifier, self.changes = classifier, list(changes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TimmModel(Wrapped):
    library = "timm"


class TorchvisionModel(Wrapped):
    library = "torchvision"


def weights_module(backbone: nn.Module) -> nn.Module:
    """The module whose state dict is the backbone's exported weights: the library's (or
    user's) model inside a wrapper, else the backbone itself."""
    return backbone.net if isinstance(backbone, Wrapped) else backbone


def is_external(name: str) -> bool:
    return name.startswith((TIMM, TORCHVISION))


def available(name: str) -> list[str]:
    """The model names of the library that ``name``'s prefix names."""
    if name.startswith(TIMM):
        import timm

        return timm.list_models()
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)  # classification models only


def check_name(name: str) -> str | None:
    """Why ``name`` (``timm/NAME`` or ``torchvision/NAME``) is not a model, or None."""
    prefix, model = name.split("/", 1)
    names = available(name)
    if model in names:
        return None
    close = difflib.get_close_matches(model, names, n=3)
    hint = f"; close: {', '.join(close)}" if close else ""
    listing = "timm.list_models()" if prefix == "timm" else "torchvision.models.list_models(module=torchvision.models)"
    return f"not in {listing} ({len(names)} names){hint}"


def measure_dim(net: nn.Module, input_shape) -> int:
    """D of a module that maps a batch to (B, D): one forward pass of two zero samples."""
    training = net.training
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(2, *input_shape))
    finally:
        net.train(training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"backbone {type(net).__name__}: expected a (batch, dim) output, got {shape}")
    return out.shape[1]


def wrap(module: nn.Module, dim: int | None = None, input_shape=(3, 32, 32)) -> nn.Module:
    """A user's ``module`` (batch -> (B, D)) as a selfsup backbone with ``.dim``; D is
    measured with one forward pass of two zero samples of ``input_shape`` unless given."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"wrap: expected an nn.Module, got {type(module).__name__}")
    return Wrapped(module, dim or measure_dim(module, input_shape))


def channels(input_shape) -> int:
    """The channel count of images of ``input_shape`` (C, H, W); 3 when not given."""
    return int(input_shape[0]) if input_shape else 3


def in_channels_changes(net: nn.Module, in_channels: int) -> list[str]:
    """A ResNet-style ``conv1`` made to take ``in_channels`` (same shape otherwise), in
    place; the line that makes the library's model match."""
    conv1 = net.conv1
    net.conv1 = nn.Conv2d(in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding,
                          bias=conv1.bias is not None)
    return [f"model.conv1 = torch.nn.Conv2d({in_channels}, {conv1.out_channels}, kernel_size={conv1.kernel_size}, "
            f"stride={conv1.stride}, padding={conv1.padding}, bias={conv1.bias is not None})"]


def small_stem_changes(net: nn.Module, name: str) -> list[str]:
    """Replace a ResNet-style stem (``conv1``, ``maxpool``) by a 3x3 stride-1 conv without
    max-pool, in place; the lines that make the library's model match."""
    conv1 = getattr(net, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(net, "maxpool"):
        raise ConfigError(f"small_stem=True: {name} has no ResNet stem (conv1 and maxpool) to replace; "
                          f"pass --no-small-stem")
    net.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return [f"model.conv1 = torch.nn.Conv2d({conv1.in_channels}, {conv1.out_channels}, kernel_size=3, "
            f"stride=1, padding=1, bias=False)", "model.maxpool = torch.nn.Identity()"]


def _build(call, name: str, options: dict):
    """``call()``; a library's refusal of the arguments (when building, or in the forward
    pass that measures D) becomes one line naming them."""
    try:
        return call()
    except ConfigError:
        raise
    except (TypeError, ValueError, RuntimeError) as error:
        where = f"backbone_options={options!r}: {name} cannot be built with them" if options \
            else f"backbone={name}: cannot be built"
        raise ConfigError(f"{where} ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


def timm_backbone(name: str, image_size: int = 224, small_stem: bool = False, options: dict | None = None,
                  in_channels: int = 3) -> TimmModel:
    import timm
    from timm.models import get_pretrained_cfg

    architecture = name.removeprefix(TIMM)
    args = dict(options or {})
    if in_channels != 3:
        if args.get("in_chans", in_channels) != in_channels:
            raise ConfigError(f"backbone_options={options!r}: in_chans={args['in_chans']}, but the images have "
                              f"{in_channels} channels")
        args["in_chans"] = in_channels
    pretrained = get_pretrained_cfg(architecture)
    if pretrained is not None and pretrained.fixed_input_size and "img_size" not in args:
        args["img_size"] = image_size
    args.pop("num_classes", None)  # the embedding is the pooled features
    net = _build(lambda: timm.create_model(architecture, pretrained=False, num_classes=0, **args), name, args)
    changes = small_stem_changes(net, name) if small_stem else []
    size = args.get("img_size", image_size)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return TimmModel(net, _build(lambda: measure_dim(net, (args.get("in_chans", 3), *size)), name, args),
                     architecture, args,
                     changes=changes)


def torchvision_backbone(name: str, image_size: int = 224, small_stem: bool = False,
                         options: dict | None = None, in_channels: int = 3) -> TorchvisionModel:
    import torchvision

    if in_channels != 3:  # torchvision's models have no argument for it, and each names its first layer differently
        raise ConfigError(f"backbone={name}: torchvision models take 3-channel images, the data has {in_channels} "
                          f"channels; use a built-in backbone (smallcnn, resnet18, resnet50, vit_*) or "
                          f"timm/NAME (built with in_chans={in_channels})")

    architecture = name.removeprefix(TORCHVISION)
    args = dict(options or {})
    builder = torchvision.models.get_model_builder(architecture)
    if builder.__module__ == "torchvision.models.vision_transformer" and "image_size" not in args:
        args["image_size"] = image_size  # its positional embeddings are made for one size
    args.pop("weights", None)
    net = _build(lambda: torchvision.models.get_model(architecture, weights=None, **args), name, args)
    classifier = replace_classifier(net, name)
    changes = small_stem_changes(net, name) if small_stem else []
    size = args.get("image_size", image_size)
    return TorchvisionModel(net, _build(lambda: measure_dim(net, (3, size, size)), name, args), architecture, args,
                            classifier, changes)


def replace_classifier(net: nn.Module, name: str) -> str:
    """Replace the last ``nn.Linear`` of torchvision's classifier by ``Identity``; its path."""
    for attribute in CLASSIFIERS:
        head = getattr(net, attribute, None)
        if isinstance(head, nn.Linear):
            setattr(net, attribute, nn.Identity())
            return attribute
        if isinstance(head, nn.Sequential):
            linear = [key for key, module in head.named_children() if isinstance(module, nn.Linear)]
            if linear:
                setattr(head, linear[-1], nn.Identity())
                return f"{attribute}.{linear[-1]}"
    raise ConfigError(f"backbone={name}: no linear classifier in {', '.join(CLASSIFIERS)} to remove")


def create_external(name: str, image_size: int = 224, small_stem: bool = False, options: dict | None = None,
                    in_channels: int = 3) -> Wrapped:
    """``timm/NAME`` or ``torchvision/NAME`` (ConfigError for an unknown name) for images of
    ``in_channels`` channels: timm builds it with ``in_chans``, torchvision refuses C != 3."""
    problem = check_name(name)
    if problem:
        raise ConfigError(f"backbone={name}: {problem}")
    build = timm_backbone if name.startswith(TIMM) else torchvision_backbone
    return build(name, image_size, small_stem, options, in_channels)
