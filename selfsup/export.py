"""``export_run(run, format, out)``: a run's backbone (last checkpoint) in a form that other
code loads without selfsup. Every format writes ``export.json`` (what the backbone is: its
name, library, constructor, input size and normalisation) and ``README.md`` (the lines
that load it); the weights are the backbone's state dict with the keys its library uses
(no ``method.backbone.net.`` prefixes), written atomically.

- ``timm``: timm's own folder, ``config.json`` (``architecture``, ``model_args``,
  ``num_classes: 0``, ``pretrained_cfg`` with the run's mean, std and input size) and
  ``model.safetensors``; ``timm.create_model("local-dir:DIR", pretrained=True,
  num_classes=0)`` builds the model and loads the weights. For ``timm/NAME`` backbones and
  the built-in ViTs (timm ``VisionTransformer``\\ s without class token, mean-pooled).
- ``torchvision``: ``model.safetensors`` for ``torchvision.models.get_model(NAME,
  weights=None)`` with its classifier layer replaced by ``Identity``. For
  ``torchvision/NAME`` and the built-in ResNets; where the backbone differs from the
  library's model (the small-image stem) README.md says exactly how, and gives the lines
  that make the library's model match.
- ``safetensors``: ``model.safetensors`` of any backbone (table and series ones too).
- ``onnx``: ``model.onnx``, input ``images`` and output ``embeddings`` with a dynamic
  batch axis (needs the ``onnx`` package: ``pip install 'selfsup[onnx]'``).

A format the backbone cannot be expressed in is refused in one line naming one it can.
``selfsup pretrain --init DIR`` starts a run from any of these folders but ONNX.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from selfsup.atomic import atomic_path, check_output, write_text
from selfsup.backbones import weights_module
from selfsup.backbones.external import TimmModel, TorchvisionModel, Wrapped
from selfsup.config import PretrainConfig
from selfsup.errors import ConfigError
from selfsup.runs import Run

FORMATS = ("timm", "torchvision", "safetensors", "onnx")
WEIGHTS = "model.safetensors"


def export_run(run_dir: str | os.PathLike, format: str, out: str | os.PathLike) -> dict:
    """Write the backbone of the run in ``run_dir`` (its last checkpoint) to folder ``out`` in
    ``format`` (one of ``FORMATS``); returns what ``export.json`` holds."""
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    out = check_output(out, "folder")
    run = Run(run_dir)
    backbone = run.method().backbone.cpu().float().eval()
    check_format(run.config, backbone, format)
    out.mkdir(parents=True, exist_ok=True)
    info = describe(run, backbone, format)
    info["files"] = ["model.onnx" if format == "onnx" else WEIGHTS, *(["config.json"] if format == "timm" else []),
                     "export.json", "README.md"]
    if format == "onnx":
        write_onnx(backbone, info, out / "model.onnx")
    else:
        write_weights(weights_module(backbone), out / WEIGHTS)
    if format == "timm":
        write_text(out / "config.json", json.dumps(timm_config(run.config, backbone), indent=2) + "\n")
    write_text(out / "export.json", json.dumps(info, indent=2) + "\n")
    write_text(out / "README.md", readme(info, out))
    return info


def check_format(config: PretrainConfig, backbone: nn.Module, format: str) -> None:
    """ConfigError, naming a format that works, when ``backbone`` cannot be written as ``format``."""
    if format == "timm" and (not isinstance(backbone, TimmModel) or backbone.changes):
        other = "torchvision" if isinstance(backbone, TorchvisionModel) else "safetensors"
        why = "has the small-image stem, which timm's model does not" if isinstance(backbone, TimmModel) \
            else "is not a timm model"
        raise ConfigError(f"format=timm: backbone {config.backbone} {why}; use --format {other}")
    if format == "torchvision" and not isinstance(backbone, TorchvisionModel):
        other = "timm" if isinstance(backbone, TimmModel) and not backbone.changes else "safetensors"
        raise ConfigError(f"format=torchvision: backbone {config.backbone} is not a torchvision model; "
                          f"use --format {other}")


def clean_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict as contiguous CPU tensors (channels_last weights included)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def write_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as temporary:
        save_file(clean_state(module), str(temporary), metadata={"format": "pt"})


def describe(run: Run, backbone: nn.Module, format: str) -> dict:
    """What ``export.json`` says: the backbone, how its library builds it, its input."""
    config = run.config
    info = {"format": format, "run": str(run.directory), "method": config.method, "backbone": config.backbone,
            "dim": backbone.dim, "input_shape": config.sample_shape(), "mean": config.mean, "std": config.std,
            "input": ("float images in [0, 1], resized to the size above, then (x - mean) / std per channel"
                      if config.image_size else "float samples, (x - mean) / std per feature or channel")}
    if isinstance(backbone, Wrapped) and backbone.library:
        info.update(library=backbone.library, architecture=backbone.architecture, model_args=backbone.model_args,
                    constructor=constructor(backbone))
        if backbone.classifier:
            info["classifier_removed"] = backbone.classifier
        info["changes"] = backbone.changes
        if backbone.changes:
            info["differences"] = differences(backbone)
    return info


def constructor(backbone: Wrapped) -> str:
    """The library call that builds the model inside ``backbone`` (before ``changes``)."""
    args = "".join(f", {k}={v!r}" for k, v in backbone.model_args.items())
    if backbone.library == "timm":
        return f"timm.create_model({backbone.architecture!r}, pretrained=False, num_classes=0{args})"
    return f"torchvision.models.get_model({backbone.architecture!r}, weights=None{args})"


def library_model(backbone: Wrapped) -> nn.Module:
    """The library's own model as ``constructor`` builds it (random weights)."""
    if backbone.library == "timm":
        import timm

        return timm.create_model(backbone.architecture, pretrained=False, num_classes=0, **backbone.model_args)
    import torchvision

    return torchvision.models.get_model(backbone.architecture, weights=None, **backbone.model_args)


def differences(backbone: Wrapped) -> list[str]:
    """Each module that ``changes`` replaces: what the library has there, and what the backbone has."""
    original, ours = library_model(backbone), backbone.net
    lines = []
    for change in backbone.changes:
        name = change.split("=", 1)[0].strip().removeprefix("model.")
        lines.append(f"{name}: {original.get_submodule(name)!r} in the library's model, "
                     f"{ours.get_submodule(name)!r} here")
    return lines


def attribute_path(path: str) -> str:
    """``classifier.2`` -> ``model.classifier[2]``: the Python expression of a submodule."""
    return "model" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split("."))


def timm_config(config: PretrainConfig, backbone: TimmModel) -> dict:
    """timm's ``config.json`` of a local folder: architecture, model arguments, preprocessing."""
    from timm.models import get_pretrained_cfg

    default = get_pretrained_cfg(backbone.architecture)
    pretrained = {"input_size": config.sample_shape(), "fixed_input_size": bool(default and default.fixed_input_size),
                  "crop_pct": 1.0, "crop_mode": "center", "mean": list(config.mean), "std": list(config.std),
                  "num_classes": 0}
    for key in ("first_conv", "classifier"):
        if default is not None and getattr(default, key, None) is not None:
            pretrained[key] = getattr(default, key)
    return {"architecture": backbone.architecture, "num_classes": 0, "num_features": backbone.dim,
            "model_args": backbone.model_args, "pretrained_cfg": pretrained}


def write_onnx(backbone: nn.Module, info: dict, path: Path) -> None:
    try:
        import onnx  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise ConfigError("format=onnx: needs the onnx package (pip install 'selfsup[onnx]')") from None
    module = weights_module(backbone)  # the wrapper's channels_last hook stays out of the graph
    example = torch.zeros(2, *info["input_shape"])
    with atomic_path(path) as temporary, torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
        torch.onnx.export(module, (example,), str(temporary), input_names=["images"], output_names=["embeddings"],
                          dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, dynamo=False)


def readme(info: dict, out: Path) -> str:
    """README.md of an export: what it is and the lines that load it without selfsup."""
    shape = " x ".join(str(s) for s in info["input_shape"])
    lines = [f"# {info['backbone']} from {info['run']} ({info['method']}), format {info['format']}", "",
             f"A backbone mapping a batch of {shape} inputs to {info['dim']}-dimensional embeddings.",
             f"Input: {info['input']}; mean {info['mean']}, std {info['std']}.", ""]
    if info.get("differences"):
        lines += [f"It differs from {info['library']}'s `{info['architecture']}`:", "",
                  *(f"- {d}" for d in info["differences"]), "",
                  "The lines after the constructor below make the library's model match.", ""]
    lines += ["```python", *load_code(info, out), "```", ""]
    return "\n".join(lines)


def load_code(info: dict, out: Path) -> list[str]:
    weights = str(out / WEIGHTS)
    if info["format"] == "onnx":
        return ["import onnxruntime", "", f"session = onnxruntime.InferenceSession({str(out / 'model.onnx')!r})",
                "embeddings = session.run(['embeddings'], {'images': images})[0]  # images: float32 numpy array"]
    if info["format"] == "timm":
        return ["import timm", "",
                f"model = timm.create_model({'local-dir:' + str(out)!r}, pretrained=True, num_classes=0).eval()",
                "embeddings = model(images)"]
    code = ["import torch", "from safetensors.torch import load_file", ""]
    if info.get("library") == "torchvision":
        code = ["import torch", "import torchvision", "from safetensors.torch import load_file", "",
                f"model = {info['constructor']}"]
        if info.get("classifier_removed"):
            code.append(f"{attribute_path(info['classifier_removed'])} = torch.nn.Identity()  # embeddings, not classes")
        code += info["changes"]
        code += [f"model.load_state_dict(load_file({weights!r}), strict=True)", "model.eval()",
                 "embeddings = model(images)"]
        return code
    if info.get("library") == "timm":
        code = ["import timm", "import torch", "from safetensors.torch import load_file", "",
                f"model = {info['constructor']}", *info["changes"],
                f"model.load_state_dict(load_file({weights!r}), strict=True)", "model.eval()",
                "embeddings = model(images)"]
        return code
    return code + [f"state_dict = load_file({weights!r})  # the weights of selfsup's {info['backbone']} backbone",
                   "# build it with selfsup.backbones.create(...) (see export.json) and load_state_dict(state_dict)"]
