"""The pretraining configuration: every option, its default, its help and its check.

The command line is generated from these fields, and a run directory's ``config.yaml``
holds them all, resolved (``None`` defaults replaced by what was actually used).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from selfsup.atomic import write_text
from selfsup.errors import ConfigError


MAX_EPOCHS = 100_000  # an epoch count is a plan, not "for ever"
MAX_BATCH = 1 << 20
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")  # experiment trackers (selfsup.train.loggers)


def option(default, help: str, **metadata):
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class PretrainConfig:
    data: str = option(None, "data source: a built-in dataset name (see `selfsup datasets`), "
                             "a folder of images (incl. TIFF, 16-bit, N channels), a .npy/.npz array (integer: images, "
                             "float: time series (N, T) or (N, C, T)), a .csv/.parquet table or a UCR/UEA .ts file", required=True)
    modality: str | None = option(None, "image, table or timeseries: how to read --data (default: inferred; a "
                                        "float array of shape (N, H, W) with H == W >= 8 or H > 64 could be "
                                        "either images or series and is refused without it)")
    method: str = option("simclr", "self-supervised method (see `selfsup methods`)")
    out: str | None = option(None, "run directory (default: runs/<data>-<method>, numbered if taken)")
    epochs: int | None = option(None, "training epochs (default: 30 for digits, 100 otherwise)")
    batch_size: int = option(256, "images per optimizer step (all processes together)")
    backbone: str | None = option(None, "smallcnn, resnet18, resnet50, vit_mini, vit_tiny or vit_small, "
                                        "timm/NAME (any timm.list_models() name) or torchvision/NAME (a torchvision "
                                        "classification model), with random weights "
                                        "(default: vit_mini for MAE/I-JEPA, else smallcnn up to 64 px, resnet18 above)")
    backbone_options: dict | None = option(None, "keyword arguments of a timm/ or torchvision/ backbone, e.g. "
                                                  "{drop_path_rate: 0.1}, or a built-in's options, e.g. "
                                                  "dilated_cnn's {depth: 6} (command line: --backbone-option "
                                                  "NAME=VALUE, repeatable)", cli=False)
    small_stem: bool | None = option(None, "ResNet stem for small images: 3x3 stride-1 conv, no max-pool "
                                           "(default: on for the built-in resnet18/resnet50, off for timm/ and "
                                           "torchvision/ backbones, which then keep their library's architecture)")
    init: str | None = option(None, "start from these backbone weights, loaded strictly: a .safetensors (or "
                                    "weights-only .pth) state dict, a folder with model.safetensors (from "
                                    "`selfsup export`, or timm's config.json + model.safetensors), a checkpoint "
                                    "directory or a run directory (its last checkpoint)")
    image_size: int | None = option(None, "side in pixels images are resized to "
                                          "(default: digits 32, folders the median short side up to 224, arrays as stored)")
    optimizer: str | None = option(None, "lars, sgd or adamw (default: the method's, see `selfsup methods`)")
    lr: float | None = option(None, "learning rate per 256 images, scaled by batch_size/256 "
                                    "(default: the method's, see `selfsup methods`)")
    weight_decay: float | None = option(None, "weight decay (default: the method's, see `selfsup methods`)")
    warmup_epochs: int | None = option(None, "linear learning-rate warm-up before cosine decay "
                                             "(default: the paper's, a tenth of the epochs for most methods, none "
                                             "for MoCo v2, SimSiam and RotNet)")
    crop_min_scale: float | None = option(None, "smallest area fraction of a random resized (global) crop, "
                                                "in (0, 1] (default: the method's recipe, e.g. 0.08 for SimCLR)")
    temperature: float | None = option(None, "softmax temperature of contrastive losses (SimCLR default 0.5)")
    momentum: float | None = option(None, "base EMA momentum of the target network (BYOL default 0.99)")
    method_options: dict | None = option(None, "options of the method by name, e.g. {queue_size: 8192} "
                                                "(`selfsup methods NAME` lists them with their defaults; "
                                                "command line: --method-option NAME=VALUE, repeatable)", cli=False)
    data_mode: str = option("auto", "image folders: memory (decoded once into RAM: fastest), stream (decoded "
                                    "as needed in worker processes, every crop from the full image; memory stays "
                                    "flat in the data size) or auto (memory when the decoded set fits in a quarter "
                                    "of RAM, else stream; the log says which)")
    workers: int | None = option(None, "stream mode: DataLoader worker processes that decode and crop "
                                       "(default: the CPU count, at most 8)")
    max_steps: int | None = option(None, "stop after this many optimizer steps (smoke runs, benchmarks); the "
                                         "schedule stays that of --epochs")
    cache_dir: str | None = option(None, "folder for a cache of decoded image folders, memory-mapped and "
                                         "rebuilt when the folder changes (default: decode every run)")
    holdout: float = option(0.2, "fraction of labelled data held out (stratified, fixed) for evaluation "
                                 "and excluded from pretraining; 0 to pretrain on all")
    knn_k: int = option(20, "neighbours of the weighted kNN evaluation")
    seed: int = option(0, "seed of every random draw (weights, data order, augmentations)")
    accelerator: str = option("cpu", "Lightning accelerator: cpu, gpu, auto")
    devices: str = option("1", "Lightning devices: a count, a list like 0,1, or auto")
    precision: str = option("auto", "Lightning precision: 32-true, bf16-mixed, 16-mixed, or auto: bf16-mixed for "
                                    "image backbones where the device has bf16 units (CUDA with bf16, CPUs with "
                                    "avx512_bf16 or AMX; 2x faster CPU steps measured), else 32-true")
    channels_last: bool | None = option(None, "channels_last memory format for the network (default: on for "
                                              "convolutional image backbones, whose CPU steps it made 24-41 percent "
                                              "faster; 2 processes then match 1 only to ~2e-5)")
    sync_batchnorm: bool = option(True, "with several processes, BatchNorm normalises with the statistics of the "
                                        "global batch, as one process would (SimCLR's global BN); off: each "
                                        "process's own, fewer synchronisations but not what 1 process computes")
    compile: bool = option(False, "torch.compile the backbone (faster steps after a compile of tens of seconds)")
    keep_freed_memory: bool = option(True, "keep freed memory for reuse instead of returning it to the kernel "
                                           "(glibc; measured 2.8x faster augmentation, 21 percent faster CPU steps; "
                                           "the process stays at its peak memory)")
    stop_on_collapse: bool = option(False, "stop when the representation collapses (RankMe or embedding std "
                                           "at its floor after an epoch), keeping the last good checkpoint")
    monitor_samples: int = option(1024, "rows of the last training steps of each epoch (their own embeddings, "
                                         "no extra pass) that the label-free monitors read (RankMe, alignment, "
                                         "uniformity, collapse)")
    loggers: list | None = option(None, "experiment trackers beside metrics.jsonl (always written): csv, "
                                        "tensorboard, mlflow, wandb (Lightning's loggers, writing below the run "
                                        "directory, offline unless the tracker's own settings say otherwise; "
                                        "command line: --logger NAME, repeatable)", cli=False)
    report: bool = option(True, "write report.html (curves, embedding map, neighbour grids) at the end")
    log_every_n_steps: int | None = option(None, "steps between logged metrics (default: about twice an epoch, at most 50)")
    resume: bool = option(False, "continue the run in --out (default: the newest runs/<data>-<method>*) "
                                 "from its last checkpoint")
    label_column: str | None = option(None, "tables: the column holding class labels (evaluation only, "
                                            "never a feature)")
    input_shape: list | None = option(None, "shape of one sample (measured on the data)", cli=False)
    mean: list | None = option(None, "per-channel input mean (measured on the data)", cli=False)
    std: list | None = option(None, "per-channel input std (measured on the data)", cli=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def sample_shape(self) -> list[int]:
        """One sample's shape as the backbone takes it: (C, S, S) for images, the data's for
        tables and series."""
        if not self.image_size:
            return list(self.input_shape)
        return [int(self.input_shape[0]) if self.input_shape else 3, self.image_size, self.image_size]

    def save(self, path: Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "PretrainConfig":
        return from_dict(read_options(path), str(path))


def read_options(path) -> dict:
    """The options of a YAML file (a run's config.yaml or a user's), checked to be known."""
    from selfsup.methods.options import read_yaml  # 5e-4 read as a number

    try:
        values = read_yaml(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"config={str(path)!r}: cannot read ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config={str(path)!r}: expected a mapping of options")
    check_known(values, f"config={str(path)!r}")
    return values


def check_known(values: dict, where: str) -> None:
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r}; known: {', '.join(sorted(names))}")


def from_dict(values: dict, where: str = "config") -> PretrainConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(values).__name__}")
    check_known(values, where)
    config = PretrainConfig(**values)
    validate(config)
    return config


WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
         "list": "a list", "dict": "a mapping of names to values"}


def _check(condition: bool, name: str, value, rule: str) -> None:
    if not condition:
        raise ConfigError(f"{name}={value!r}: {rule}")


def validate(config: PretrainConfig) -> None:
    """Raise ``ConfigError`` naming the first field whose value is not allowed."""
    from selfsup import backbones, methods
    from selfsup.methods.optim import OPTIMIZERS

    types = {f.name: f.type for f in dataclasses.fields(PretrainConfig)}
    for name, declared in types.items():
        value = getattr(config, name)
        if value is None:  # a resumed run's data is in its config.yaml
            _check(" | None" in declared or (name == "data" and config.resume and config.out), name, value,
                   "is required" + (" (or --resume with --out RUN)" if name == "data" else ""))
            continue
        base = declared.replace(" | None", "")
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}[base]
        ok = isinstance(value, expected) and not (base in ("int", "float") and isinstance(value, bool))
        _check(ok, name, value, f"expected {WORDS[base]}")
        _check(base != "float" or math.isfinite(value), name, value, "expected a finite number")

    _check(config.modality is None or config.modality in ("image", "table", "timeseries"), "modality",
           config.modality, "expected image, table or timeseries")
    _check(config.method in methods.METHODS, "method", config.method,
           f"expected one of {', '.join(methods.METHODS)}")
    _check(config.backbone is None or backbones.known(config.backbone), "backbone", config.backbone,
           f"expected one of {', '.join(backbones.MODALITY)}, timm/NAME or torchvision/NAME")
    if config.backbone is not None and backbones.is_external(config.backbone):
        from selfsup.backbones.external import check_name

        problem = check_name(config.backbone)
        _check(problem is None, "backbone", config.backbone, problem)
    if config.backbone_options and config.backbone in backbones.MODALITY:  # a built-in's (else at build)
        backbones.check_builder_options(config.backbone, config.backbone_options)
    _check(config.optimizer is None or config.optimizer in OPTIMIZERS, "optimizer",
           config.optimizer, f"expected one of {', '.join(OPTIMIZERS)}")
    _check(config.epochs is None or 1 <= config.epochs <= MAX_EPOCHS, "epochs", config.epochs,
           f"expected 1 to {MAX_EPOCHS}")
    _check(config.warmup_epochs is None or config.epochs is None or config.warmup_epochs <= config.epochs,
           "warmup_epochs", config.warmup_epochs,
           f"expected at most epochs={config.epochs} (a longer warm-up never reaches the learning rate)")
    _check(0 <= config.seed < 2**32, "seed", config.seed, "expected 0 to 2**32 - 1")
    _check(config.batch_size <= MAX_BATCH, "batch_size", config.batch_size, f"expected at most {MAX_BATCH}")
    _check(config.batch_size >= 2, "batch_size", config.batch_size, "expected >= 2")
    _check(config.image_size is None or 8 <= config.image_size <= 1024, "image_size",
           config.image_size, "expected 8 to 1024")
    _check(config.lr is None or config.lr > 0, "lr", config.lr, "expected > 0")
    _check(config.weight_decay is None or config.weight_decay >= 0, "weight_decay",
           config.weight_decay, "expected >= 0")
    _check(config.warmup_epochs is None or config.warmup_epochs >= 0, "warmup_epochs",
           config.warmup_epochs, "expected >= 0")
    _check(config.crop_min_scale is None or 0 < config.crop_min_scale <= 1, "crop_min_scale", config.crop_min_scale,
           "expected in (0, 1]")
    _check(config.temperature is None or config.temperature > 0, "temperature",
           config.temperature, "expected > 0")
    _check(config.momentum is None or 0 <= config.momentum < 1, "momentum", config.momentum,
           "expected in [0, 1)")
    _check(0 <= config.holdout < 1, "holdout", config.holdout, "expected in [0, 1)")
    _check(config.knn_k >= 1, "knn_k", config.knn_k, "expected >= 1")
    _check(all(name in LOGGERS for name in config.loggers or ()), "loggers", config.loggers,
           f"expected names among {', '.join(LOGGERS)}")
    _check(config.data_mode in ("auto", "memory", "stream"), "data_mode", config.data_mode,
           "expected auto, memory or stream")
    _check(config.workers is None or config.workers >= 0, "workers", config.workers, "expected >= 0")
    _check(config.max_steps is None or config.max_steps >= 1, "max_steps", config.max_steps, "expected >= 1")
    _check(config.monitor_samples >= 2, "monitor_samples", config.monitor_samples, "expected >= 2")
    _check(config.log_every_n_steps is None or config.log_every_n_steps >= 1, "log_every_n_steps",
           config.log_every_n_steps, "expected >= 1")
    _check(config.precision in ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"),
           "precision", config.precision, "expected auto, 32-true, bf16-mixed, 16-mixed or bf16-true")
