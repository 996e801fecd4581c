"""``pretrain(config)``: data source -> views -> method -> Lightning -> run directory.

A run directory holds ``config.yaml`` (every option, resolved), ``checkpoints/`` (one
directory per kept epoch, ``last`` linking the newest complete one), ``metrics.jsonl``
and, once training ends, ``summary.json`` with the evaluation.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from selfsup import augment, backbones, methods
from selfsup.atomic import write_text
from selfsup.config import ConfigError, PretrainConfig, validate
from selfsup.data import ImageSource, holdout_split
from selfsup.data.cache import open_cached
from selfsup.devices import (Placement, check_accelerator, concrete_accelerator, default_precision,
                             device_count, placement, training_device)
from selfsup.evaluate.protocols import embed_splits, evaluate_embeddings
from selfsup.train.checkpoint import CheckpointError, SafeCheckpointIO, load_checkpoint, load_weights
from selfsup.train.monitors import RepresentationMonitor
from selfsup.train.sync_batchnorm import convert_batchnorm
from selfsup.train.speed import apply_speed_switches, default_channels_last, keep_freed_memory
from selfsup.train.module import DivergenceError, EpochCheckpoint, JsonlLogger, PretrainModule, train_loader

DEFAULT_EPOCHS = {"digits": 30}
METHOD_OPTIONS = {"temperature": "temperature", "momentum": "base_momentum"}


def default_out(config: PretrainConfig) -> Path:
    stem = Path(config.data).name or "data"
    base = Path("runs") / f"{Path(stem).stem}-{config.method}"
    if config.resume:  # the newest numbered run of this data and method
        taken = [p for p in [base, *base.parent.glob(base.name + "-*")] if (p / "config.yaml").exists()]
        return max(taken, key=lambda p: p.stat().st_mtime) if taken else base
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def method_options(config: PretrainConfig) -> dict:
    """The method-specific options set in ``config``, by constructor argument name."""
    cls = methods.METHODS[config.method]
    accepted = inspect.signature(cls.__init__).parameters
    options = {}
    for field_name, argument in METHOD_OPTIONS.items():
        value = getattr(config, field_name)
        if value is None:
            continue
        if argument not in accepted:
            raise ConfigError(f"{field_name}={value!r}: not an option of method {config.method}")
        options[argument] = value
    return options


def resolve(config: PretrainConfig, source: ImageSource) -> PretrainConfig:
    """Fill every ``None`` default with the value this run uses."""
    cls = methods.METHODS[config.method]
    signature = inspect.signature(cls.__init__).parameters
    epochs = config.epochs or DEFAULT_EPOCHS.get(config.data, 100)
    image = source.modality == "image"
    default = cls.default_backbone if cls.default_backbone in backbones.MODALITY and \
        backbones.MODALITY[cls.default_backbone] == source.modality else None
    resolved = dict(
        epochs=epochs,
        image_size=source.image_size,
        input_shape=source.input_shape,
        backbone=config.backbone or default or backbones.default_backbone(source.image_size, source.modality),
        crop_min_scale=config.crop_min_scale or (cls.crop_min_scale or recipe_crop_scale(cls.recipe)[0]
                                                 if image else None),
        optimizer=config.optimizer or cls.optimizer.name,
        lr=config.lr or cls.optimizer.lr,
        weight_decay=cls.optimizer.weight_decay if config.weight_decay is None else config.weight_decay,
        warmup_epochs=max(1, epochs // 10) if config.warmup_epochs is None else config.warmup_epochs,
    )
    if config.channels_last is None:
        resolved["channels_last"] = default_channels_last(resolved["backbone"], source.modality)
    resolved["accelerator"] = concrete_accelerator(config.accelerator)  # what this run used
    if config.precision == "auto":
        resolved["precision"] = default_precision(source.modality, resolved["accelerator"])
    for field_name, argument in METHOD_OPTIONS.items():
        if argument in signature and getattr(config, field_name) is None:
            resolved[field_name] = signature[argument].default
    if backbones.MODALITY[resolved["backbone"]] != source.modality:
        raise ConfigError(f"backbone={resolved['backbone']}: a {backbones.MODALITY[resolved['backbone']]} "
                          f"backbone, but {config.data} holds {source.modality} data")
    return dataclasses.replace(config, **resolved)


def views(config: PretrainConfig, modality: str, recipe: str):
    """The augmentation recipe for ``recipe`` on ``modality`` data (ConfigError if none)."""
    crop_scale = None if config.crop_min_scale is None else (config.crop_min_scale, 1.0)
    try:
        return augment.views_for(modality, recipe, config.image_size, crop_scale)
    except ValueError as error:
        raise ConfigError(f"method={config.method}: {error}") from None


def recipe_crop_scale(name: str) -> tuple[float, float]:
    """The crop scale a recipe uses by default (its paper's)."""
    return inspect.signature(augment.RECIPES[name]).parameters["crop_scale"].default


def build_method(config: PretrainConfig, distributed: bool = False) -> methods.Method:
    """The method and backbone a resolved config describes, freshly initialised from its
    seed; with ``distributed``, losses that use other samples gather them from all processes."""
    torch.manual_seed(config.seed)
    backbone = backbones.create(config.backbone, small_stem=config.small_stem, image_size=config.image_size,
                                input_shape=config.input_shape)
    options = method_options(config)
    if distributed and "gather_distributed" in inspect.signature(methods.METHODS[config.method]).parameters:
        options["gather_distributed"] = True
    return methods.create(config.method, backbone, **options)


def prepare_data(config: PretrainConfig):
    source = open_cached(config.data, config.image_size, config.cache_dir, config.label_column)
    train, test = holdout_split(source, config.holdout, seed=0)
    return source, train, test


def _world() -> tuple[int, int]:
    """(rank, world size) of a run launched by torchrun (or one process)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1


def launch_command(config: PretrainConfig) -> str:
    return (f"torchrun --standalone --nproc_per_node={device_count(config.devices, config.accelerator)} "
            f"-m selfsup.cli pretrain ...")


def check_processes(config: PretrainConfig) -> None:
    """One process per device: torchrun starts them (the ``selfsup`` command does so itself
    for ``--devices N``); a plain Python call with several devices is refused before any work."""
    wanted = device_count(config.devices, config.accelerator)
    if not under_torchrun():
        if wanted > 1:
            raise ConfigError(f"devices={config.devices}: one process per device; launch them with "
                              f"`{launch_command(config)}` or the `selfsup pretrain --devices` command")
        return
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if wanted not in (1, local):
        raise ConfigError(f"devices={config.devices}: torchrun started {local} process(es) on this machine, "
                          f"one device each; omit --devices or pass --devices {local}")


def _distribution(config: PretrainConfig, world_size: int) -> dict:
    """Trainer arguments: under torchrun the processes are already there, one device each."""
    if world_size == 1:
        return dict(devices=1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    return dict(devices=local, num_nodes=world_size // local, strategy="ddp")


def _check_writable(out: Path) -> None:
    """Fail before any work when the run directory cannot be created or written."""
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"out={str(out)!r}: cannot write in {existing}")


def _check_free_space(out: Path, method: torch.nn.Module, keep: int = 2) -> None:
    """Checkpoints hold the weights and about as much optimizer state again; ``keep`` of
    them plus one being written must fit, or the run would fail at its first save."""
    size = sum(t.numel() * t.element_size() for t in [*method.parameters(), *method.buffers()])
    needed = 2 * size * (keep + 1)
    free = shutil.disk_usage(out).free
    if free < needed:
        raise ConfigError(f"out={str(out)!r}: {free / 2**20:.0f} MiB free, checkpoints need about "
                          f"{needed / 2**20:.0f} MiB")


def pretrain(config: PretrainConfig) -> dict:
    """Train ``config.method`` on ``config.data``, evaluate it, and return the summary."""
    validate(config)
    check_accelerator(config.accelerator, config.devices)
    check_processes(config)
    method_options(config)
    out = Path(config.out) if config.out else default_out(config)
    last = out / "checkpoints" / "last"
    if config.resume:
        if not (out / "config.yaml").exists():
            raise ConfigError(f"resume: {out} holds no run to resume (no config.yaml)")
        saved = PretrainConfig.load(out / "config.yaml")
        config = dataclasses.replace(saved, resume=True, epochs=config.epochs or saved.epochs,
                                     out=str(out))
    elif (out / "checkpoints").exists() and _world()[0] == 0:  # other ranks may start after rank 0 made it
        raise ConfigError(f"out={str(out)!r}: already holds a run; pass --resume to continue it "
                          f"or choose another --out")
    _check_writable(out)

    started = time.time()
    if config.keep_freed_memory:
        keep_freed_memory()
    source, train, test = prepare_data(config)
    if methods.METHODS[config.method].needs_labels and train.labels is None:
        raise ConfigError(f"method={config.method}: needs labelled data")
    out.mkdir(parents=True, exist_ok=True)
    config = resolve(dataclasses.replace(config, out=str(out)), source)
    recipe = views(config, source.modality, methods.METHODS[config.method].recipe)
    if config.mean is None:
        mean, std = source.channel_stats()
        config = dataclasses.replace(config, mean=mean, std=std)
    rank, world_size = _world()
    batch_size = min(config.batch_size, len(train))
    batch_size -= batch_size % world_size
    if batch_size != config.batch_size:
        warnings.warn(f"batch_size={config.batch_size} does not fit {len(train)} training images "
                      f"split over {world_size} process(es); using {batch_size}", stacklevel=2)
        config = dataclasses.replace(config, batch_size=batch_size)
    if config.log_every_n_steps is None:
        steps_per_epoch = len(train) // config.batch_size
        config = dataclasses.replace(config, log_every_n_steps=max(1, min(50, steps_per_epoch // 2)))
    if rank == 0:
        config.save(out / "config.yaml")
        (out / "skipped_files.txt").write_text("".join(f"{f}\t{why}\n" for f, why in source.skipped))

    method = build_method(config, distributed=world_size > 1)
    if config.batch_size < method.min_batch_size:
        raise ConfigError(f"batch_size={config.batch_size}: method {config.method} needs at least "
                          f"{method.min_batch_size} samples a step")
    device = training_device(config.accelerator)
    if world_size > 1 and config.sync_batchnorm:  # the statistics of the global batch, as one process
        method = convert_batchnorm(method, device.type)
    method = apply_speed_switches(method, config.channels_last, config.compile)
    _check_free_space(out, method)
    mean, std = config.mean, config.std
    where = run_placement(config)
    baseline = _evaluate(method, train, test, mean, std, config, where) if rank == 0 else {}

    loader = train_loader(train.samples, config.batch_size, config.seed, rank, world_size)
    module = PretrainModule(
        method, recipe, mean, std, optimizer=config.optimizer,
        lr=config.lr * config.batch_size / 256, weight_decay=config.weight_decay,
        warmup_epochs=config.warmup_epochs, epochs=config.epochs, steps_per_epoch=len(loader),
        seed=config.seed, batch_size=config.batch_size,
        labels=train.labels if method.needs_labels else None)
    monitor = RepresentationMonitor(train.samples, mean, std, recipe, config.seed,
                                    samples=config.monitor_samples, stop_on_collapse=config.stop_on_collapse,
                                    dtype=where.dtype)
    resume_from = last.resolve() if config.resume and last.exists() else None
    resume_step = load_checkpoint(resume_from)["global_step"] if resume_from else None
    if rank == 0:  # made by another rank first, a slow-starting rank 0 would see an earlier run
        (out / "checkpoints").mkdir(exist_ok=True)
    trainer = L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, **_distribution(config, world_size),
        precision=config.precision, logger=JsonlLogger(out / "metrics.jsonl", resume_step),
        callbacks=[monitor, EpochCheckpoint(out / "checkpoints", monitor=monitor)], enable_checkpointing=False,
        plugins=[SafeCheckpointIO()], use_distributed_sampler=False,
        log_every_n_steps=config.log_every_n_steps,
        enable_model_summary=False,
        default_root_dir=str(out))
    fit_started = time.time()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
    except (DivergenceError, CheckpointError) as error:
        good = last.resolve() if last.exists() else "none (no epoch finished)"
        raise type(error)(f"{error}; training stopped, last good checkpoint: {good}") from None

    train_seconds = time.time() - fit_started
    if not trainer.is_global_zero:
        return {}
    result = _evaluate(method, train, test, mean, std, config, where)  # on the training device again
    summary = {
        "method": config.method, "data": config.data, "epochs": config.epochs,
        "seconds": round(time.time() - started, 1),
        "train_seconds": round(train_seconds, 1),  # trainer.fit alone: steps, monitors, checkpoints
        **result,
        **{f"baseline_{k}": v for k, v in baseline.items()},
        "backbone": config.backbone, "image_size": config.image_size,
        "train_samples": len(train), "test_samples": 0 if test is None else len(test),
        "skipped_files": len(source.skipped),
        "skipped": [{"file": f, "reason": why} for f, why in source.skipped],
        "protocol": protocol(config),
        "collapsed_after_epoch": monitor.collapsed_at,
    }
    write_json(out / "summary.json", summary)
    if config.report:
        from selfsup.report import build_report

        build_report(out)
    return summary


def protocol(config: PretrainConfig) -> str:
    return (f"frozen {config.backbone} embeddings; kNN: cosine, k={config.knn_k}, T=0.07 weighted votes; "
            f"linear: logistic regression on standardised embeddings; test = fixed stratified "
            f"{config.holdout:.0%} holdout (seed 0) excluded from pretraining")


def run_placement(config: PretrainConfig, accelerator: str | None = None, devices: str | None = None) -> Placement:
    """Where the run's model works after training: ``accelerator``/``devices`` when given, else
    its training device (rank 0's) and precision where this machine has it, else the CPU."""
    return placement(accelerator, devices, trained_on=config.accelerator, trained_precision=config.precision,
                     modality="image" if config.image_size else "table")


def _evaluate(method, train, test, mean, std, config, where: Placement) -> dict:
    train_embeddings, test_embeddings = embed_splits(method.backbone, train, test, mean, std, where)
    return evaluate_embeddings(train_embeddings, train.labels, test_embeddings,
                               None if test is None else test.labels, knn_k=config.knn_k)


def write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def load_run(run_dir: str | os.PathLike) -> tuple[PretrainConfig, methods.Method]:
    """The config and the method of a run, with the weights of its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    config = PretrainConfig.load(run_dir / "config.yaml")
    last = run_dir / "checkpoints" / "last"
    if not last.exists():
        raise CheckpointError(f"{run_dir}: no checkpoint yet (checkpoints/last is missing)")
    method = build_method(config)
    weights = {k.removeprefix("method."): v for k, v in load_weights(last).items()}
    apply_speed_switches(method, config.channels_last)  # the kernels the run's own evaluation used
    missing, unexpected = method.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{last}: weights do not match method {config.method} with backbone "
                              f"{config.backbone} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return config, method
