"""Training a run: ``prepare(config)`` (checks, data, resolved config, method) then
``fit(prepared)`` (Lightning: devices, DDP, precision, checkpoints, metrics).

A run directory holds ``config.yaml`` (every option, resolved), ``checkpoints/`` (one
directory per kept epoch, ``last`` linking the newest complete one) and ``metrics.jsonl``;
``selfsup.tasks.pretraining`` adds the evaluation (``summary.json``) and the report, and
``selfsup.runs.Run`` opens the directory afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from selfsup import augment, backbones, methods, modalities
from selfsup.atomic import check_output, write_text
from selfsup.config import ConfigError, PretrainConfig, validate
from selfsup.data import ImageSource, holdout_split
from selfsup.devices import (AUTOCAST, check_accelerator, concrete_accelerator, cpu_bf16_hazard,
                             default_precision, device_count, training_device)
from selfsup.methods.options import check_options, option_defaults
from selfsup.errors import Interrupted
from selfsup.progress import interactive
from selfsup.train.checkpoint import CheckpointError, SafeCheckpointIO, load_checkpoint, resume_point
from selfsup.train.lock import RunLock, job_id
from selfsup.train.init import load_init, read_init
from selfsup.train.loggers import check_loggers, create_loggers, hyperparameters
from selfsup.train.sync_batchnorm import convert_batchnorm
from selfsup.train.speed import apply_speed_switches, default_channels_last, keep_freed_memory
from selfsup.train.module import DivergenceError, EpochCheckpoint, JsonlLogger, PretrainModule, ProgressBar, train_loader

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
    """The method's constructor options set in ``config`` (``method_options``, and the
    ``temperature``/``momentum`` fields), checked against its signature."""
    cls = methods.METHODS[config.method]
    options = check_options(cls, dict(config.method_options or {}))
    accepted = option_defaults(cls)
    for field_name, argument in METHOD_OPTIONS.items():
        value = getattr(config, field_name)
        if value is None:
            continue
        if argument not in accepted:
            raise ConfigError(f"{field_name}={value!r}: not an option of method {config.method}")
        if argument in options and options[argument] != value:
            raise ConfigError(f"{field_name}={value!r}: method_options sets {argument}={options[argument]!r}; "
                              f"give one of them")
        options[argument] = value
    return options


def resolve(config: PretrainConfig, source: ImageSource) -> PretrainConfig:
    """Fill every ``None`` default with the value this run uses."""
    cls = methods.METHODS[config.method]
    epochs = config.epochs or DEFAULT_EPOCHS.get(config.data, 100)
    modality = modalities.get(source.modality)
    default = cls.default_backbone if cls.default_backbone in backbones.MODALITY and \
        backbones.MODALITY[cls.default_backbone] == source.modality else None
    backbone = config.backbone or default or modality.default_backbone(source.image_size)
    # the paper's optimizer, warm-up and crop for this backbone and image size
    paper = cls.paper_settings(backbone, small_images=modality.sized and augment.recipes.small(source.image_size))
    resolved = dict(
        modality=source.modality,
        epochs=epochs,
        image_size=source.image_size,
        input_shape=source.input_shape,
        backbone=backbone,
        crop_min_scale=config.crop_min_scale or (paper["crop_min_scale"] or recipe_crop_scale(cls.recipe, source.image_size)[0]
                                                 if modality.sized else None),
        optimizer=config.optimizer or paper["optimizer"].name,
        lr=config.lr or paper["optimizer"].lr,
        weight_decay=paper["optimizer"].weight_decay if config.weight_decay is None else config.weight_decay,
        warmup_epochs=default_warmup_epochs(epochs, paper["warmup_fraction"]) if config.warmup_epochs is None
        else config.warmup_epochs,
    )
    if config.channels_last is None:
        resolved["channels_last"] = default_channels_last(resolved["backbone"], source.modality)
    resolved["accelerator"] = concrete_accelerator(config.accelerator)  # what this run used
    if config.workers is None:
        resolved["workers"] = min(8, os.cpu_count() or 1) if getattr(source, "streamed", False) else 0
    if config.precision == "auto":
        resolved["precision"] = default_precision(source.modality, resolved["accelerator"])
    # every option the method runs with, so config.yaml reproduces it (YAML has no tuples)
    every = {**option_defaults(cls), **paper["options"], **method_options(config)}
    resolved["method_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in every.items()}
    for field_name, argument in METHOD_OPTIONS.items():
        if argument in every and getattr(config, field_name) is None:
            resolved[field_name] = every[argument]
    resolved["small_stem"] = backbones.default_small_stem(resolved["backbone"]) if config.small_stem is None \
        else config.small_stem
    resolved["backbone_options"] = dict(config.backbone_options or {})
    if backbones.modality(resolved["backbone"]) != source.modality:
        raise ConfigError(f"backbone={resolved['backbone']}: a {backbones.modality(resolved['backbone'])} "
                          f"backbone, but {config.data} holds {source.modality} data")
    return dataclasses.replace(config, **resolved)


def check_cpu_bf16(config: PretrainConfig, asked: str, backbone: torch.nn.Module) -> PretrainConfig:
    """``config`` with a precision whose gradients are right: where CPU bf16 autocast returns
    garbage gradients for this backbone and image size (``devices.cpu_bf16_hazard``),
    ``auto`` becomes 32-true with a warning, and an explicit bf16 precision is refused."""
    if AUTOCAST.get(config.precision) is not torch.bfloat16 or training_device(config.accelerator).type != "cpu":
        return config
    hazard = cpu_bf16_hazard(backbone, config.sample_shape())
    if hazard is None:
        return config
    why = (f"backbone {config.backbone} at image_size {config.image_size} has a strided convolution on a "
           f"one-pixel feature map, {hazard}, where CPU bf16 gradients come out wrong")
    if asked == "auto":
        warnings.warn(f"precision auto: 32-true, not bf16-mixed: {why}", stacklevel=4)
        return dataclasses.replace(config, precision="32-true")
    raise ConfigError(f"precision={config.precision}: {why}; use --precision 32-true or a larger --image-size")


def default_warmup_epochs(epochs: int, fraction: float) -> int:
    """The paper's warm-up, ``fraction`` of the epochs (at least one epoch unless it has none)."""
    return max(1, int(epochs * fraction)) if fraction > 0 else 0


def views(config: PretrainConfig, modality: str, recipe: str):
    """The augmentation recipe for ``recipe`` on ``modality`` data (ConfigError if none)."""
    crop_scale = None if config.crop_min_scale is None else (config.crop_min_scale, 1.0)
    try:
        return modalities.get(modality).views(recipe, config.image_size, crop_scale)
    except ValueError as error:
        raise ConfigError(f"method={config.method}: {error}") from None


def recipe_crop_scale(name: str, image_size: int) -> tuple[float, float]:
    """The crop scale image recipe ``name`` uses by default at ``image_size`` px (its paper's)."""
    return augment.create(name, image_size).views[0].crop_scale


def build_backbone(config: PretrainConfig):
    """The backbone a resolved config describes, freshly initialised (from the global seed)."""
    return backbones.create(config.backbone, small_stem=config.small_stem, image_size=config.image_size,
                            input_shape=config.input_shape, options=config.backbone_options)


def build_method(config: PretrainConfig, distributed: bool = False, init: bool = True) -> methods.Method:
    """The method and backbone a resolved config describes, freshly initialised from its
    seed, the backbone then loaded from ``config.init`` when set (and ``init``) so that
    EMA targets start from it too; with ``distributed``, losses that use other samples
    gather them from all processes."""
    torch.manual_seed(config.seed)
    backbone = build_backbone(config)
    if init and config.init:
        load_init(backbone, config.init, config.backbone)
    options = method_options(config)
    if distributed and "gather_distributed" in inspect.signature(methods.METHODS[config.method]).parameters:
        options["gather_distributed"] = True
    return methods.create(config.method, backbone, **options)


def prepare_data(config: PretrainConfig):
    source = modalities.open_source(config.data, config.image_size, config.label_column, cache_dir=config.cache_dir,
                                    modality=config.modality, data_mode=config.data_mode)
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


def _check_free_space(out: Path, method: torch.nn.Module, keep: int = 2) -> None:
    """Checkpoints hold the weights and about as much optimizer state again; ``keep`` of
    them plus one being written must fit, or the run would fail at its first save."""
    size = sum(t.numel() * t.element_size() for t in [*method.parameters(), *method.buffers()])
    needed = 2 * size * (keep + 1)
    free = shutil.disk_usage(out).free
    if free < needed:
        raise ConfigError(f"out={str(out)!r}: {free / 2**20:.0f} MiB free, checkpoints need about "
                          f"{needed / 2**20:.0f} MiB")


@dataclasses.dataclass
class Prepared:
    """A run ready to train: its resolved config (saved as config.yaml by rank 0), data,
    views, and the method built from the seed with this process's switches applied."""

    config: PretrainConfig
    out: Path
    source: object
    train: object
    test: object | None
    recipe: object
    method: methods.Method
    rank: int
    world_size: int
    started: float
    lock: RunLock | None = None  # held by rank 0 until ``release()``
    resume_from: Path | None = None  # the checkpoint a resumed run continues from

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    @property
    def last(self) -> Path:
        return self.out / "checkpoints" / "last"


def prepare(config: PretrainConfig) -> Prepared:
    """Check ``config``, take the run directory's lock, open its data, resolve every default,
    write ``config.yaml`` and build the method: every refusal happens here, before any
    training. The lock (rank 0's; see ``selfsup.train.lock``) is held until ``release()``;
    a resume continues from ``resume_point`` (the newest complete checkpoint)."""
    validate(config)
    check_accelerator(config.accelerator, config.devices)
    check_processes(config)
    method_options(config)
    check_loggers(config.loggers)  # a missing tracker package fails before the data is read
    if config.init and not config.resume:
        read_init(config.init)  # a missing or unreadable file fails before the data is read
    out = Path(config.out) if config.out else default_out(config)
    check_output(out, "folder")
    lock, created = RunLock(out), not out.exists()
    if _world()[0] == 0:  # rank 0 holds the lock for every rank of its job
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    elif config.out and job_id() and os.environ.get("GROUP_RANK", "0") == "0":
        lock.join()  # the other ranks on rank 0's machine: refused with it when another job holds the lock
    try:
        return _prepare(config, out, lock)
    except BaseException:
        if created and lock.held:  # a refused run leaves no directory behind
            lock.path.unlink()
            with contextlib.suppress(OSError):
                out.rmdir()
        lock.release()
        raise


RESUME_MAY_CHANGE = ("report", "workers", "data_mode", "cache_dir", "keep_freed_memory", "compile")


def resume_changes(config: PretrainConfig, saved: PretrainConfig, out: Path) -> dict:
    """What options given with ``--resume`` change: ``--epochs`` (handled by the caller) and
    how the run goes on (``RESUME_MAY_CHANGE``: returned to apply); any other option that
    differs from the run's config.yaml is refused in one line naming it, rather than ignored."""
    defaults = PretrainConfig()
    changes = {}
    for f in dataclasses.fields(PretrainConfig):
        value, planned = getattr(config, f.name), getattr(saved, f.name)
        if f.name in ("resume", "out", "epochs") or value == getattr(defaults, f.name) or value == planned:
            continue
        if f.name in RESUME_MAY_CHANGE:
            changes[f.name] = value
        elif isinstance(value, dict) and isinstance(planned, dict) and value.items() <= planned.items():
            continue  # options the run has, with the same values (config.yaml lists every one)
        elif f.name == "data" and Path(value).exists() and Path(value).resolve() == Path(planned).resolve():
            continue
        else:
            raise ConfigError(f"{f.name}={value!r}: the run in {out} has {planned!r}; --resume continues it as "
                              f"its config.yaml says (only --epochs and {', '.join(RESUME_MAY_CHANGE)} may change)")
    return changes


def _prepare(config: PretrainConfig, out: Path, lock: RunLock) -> Prepared:
    resume_from = None
    if config.resume:
        if not (out / "config.yaml").exists():
            raise ConfigError(f"resume: {out} holds no run to resume (no config.yaml)")
        saved = PretrainConfig.load(out / "config.yaml")
        config = dataclasses.replace(saved, resume=True, epochs=config.epochs or saved.epochs,
                                     out=str(out), **resume_changes(config, saved, out))
        validate(config)
        resume_from = resume_point(out / "checkpoints")
        trained = load_checkpoint(resume_from)["epoch"] + 1 if resume_from else 0
        if config.epochs < trained:
            raise ConfigError(f"epochs={config.epochs}: the run has already trained {trained} epochs; "
                              f"pass --epochs {trained} or more to continue it")
    elif (out / "checkpoints").exists() and _world()[0] == 0:  # other ranks may start after rank 0 made it
        raise ConfigError(f"out={str(out)!r}: already holds a run; pass --resume to continue it "
                          f"or choose another --out")
    epochs = config.epochs or DEFAULT_EPOCHS.get(config.data, 100)
    if config.warmup_epochs is not None and config.warmup_epochs > epochs:
        raise ConfigError(f"warmup_epochs={config.warmup_epochs}: expected at most the {epochs} epochs "
                          f"(a longer warm-up never reaches the learning rate)")

    started = time.time()
    if config.keep_freed_memory:
        keep_freed_memory()
    source, train, test = prepare_data(config)
    if methods.METHODS[config.method].needs_labels and train.labels is None:
        raise ConfigError(f"method={config.method}: needs labelled data")
    out.mkdir(parents=True, exist_ok=True)
    asked_precision = config.precision
    config = resolve(dataclasses.replace(config, out=str(out)), source)
    recipe = views(config, source.modality, methods.METHODS[config.method].recipe)
    if config.mean is None:
        mean, std = modalities.get(source.modality).statistics(source.samples)
        config = dataclasses.replace(config, mean=mean, std=std)
    rank, world_size = _world()
    batch_size = min(config.batch_size, len(train))
    batch_size -= batch_size % world_size
    if batch_size != config.batch_size:
        warnings.warn(f"batch_size={config.batch_size} does not fit {len(train)} training images "
                      f"split over {world_size} process(es); using {batch_size}", stacklevel=3)
        config = dataclasses.replace(config, batch_size=batch_size)
    if config.log_every_n_steps is None:
        steps_per_epoch = len(train) // config.batch_size
        config = dataclasses.replace(config, log_every_n_steps=max(1, min(50, steps_per_epoch // 2)))
    method = build_method(config, distributed=world_size > 1, init=not config.resume)  # resume: the checkpoint's
    if config.batch_size < method.min_batch_size:
        raise ConfigError(f"batch_size={config.batch_size}: method {config.method} needs at least "
                          f"{method.min_batch_size} samples a step")
    config = check_cpu_bf16(config, asked_precision, method.backbone)
    if rank == 0:
        config.save(out / "config.yaml")
        _write_skipped(out, source.skipped)
    device = training_device(config.accelerator)
    if world_size > 1 and config.sync_batchnorm:  # the statistics of the global batch, as one process
        method = convert_batchnorm(method, device.type)
    method = apply_speed_switches(method, config.channels_last, config.compile)
    _check_free_space(out, method)
    return Prepared(config, out, source, train, test, recipe, method, rank, world_size, started, lock, resume_from)


def fit(run: Prepared, callbacks=(), monitor=None) -> float:
    """Train ``run.method`` with Lightning (resuming from ``checkpoints/last`` with
    ``resume``), writing metrics.jsonl and a checkpoint per epoch; returns the seconds of
    ``trainer.fit``. ``callbacks`` run after every epoch before the checkpoint; while
    ``monitor.collapsed_at`` is set under ``monitor.stop_on_collapse`` no checkpoint is written."""
    config, out, last = run.config, run.out, run.last
    loader = train_loader(run.train, config.batch_size, config.seed, run.rank, run.world_size, run.recipe,
                          config.workers)
    module = PretrainModule(
        run.method, run.recipe, config.mean, config.std, optimizer=config.optimizer,
        lr=config.lr * config.batch_size / 256, weight_decay=config.weight_decay,
        warmup_epochs=config.warmup_epochs, epochs=config.epochs, steps_per_epoch=len(loader),
        seed=config.seed, batch_size=config.batch_size,
        labels=run.train.labels if run.method.needs_labels else None, skipped=run.source.skipped)
    resume_from = run.resume_from
    resume_step = (load_checkpoint(resume_from)["global_step"] if resume_from else 0) if config.resume else None
    if resume_step:  # Lightning creates the first iterator before it sets the sampler's epoch: with persistent
        loader.sampler.set_epoch(resume_step // len(loader))  # workers that iterator serves the resumed epoch
    if run.rank == 0:  # made by another rank first, a slow-starting rank 0 would see an earlier run
        (out / "checkpoints").mkdir(exist_ok=True)
    trackers = create_loggers(config, out)
    trainer = L.Trainer(
        max_epochs=config.epochs, max_steps=config.max_steps or -1, accelerator=config.accelerator, **_distribution(config, run.world_size),
        precision=config.precision, logger=[JsonlLogger(out / "metrics.jsonl", resume_step), *trackers],
        callbacks=[*callbacks, EpochCheckpoint(out / "checkpoints", monitor=monitor),
                   *([ProgressBar()] if interactive() else [])],
        enable_progress_bar=interactive(), enable_checkpointing=False,
        plugins=[SafeCheckpointIO()], use_distributed_sampler=False,
        log_every_n_steps=config.log_every_n_steps,
        enable_model_summary=False,
        default_root_dir=str(out))
    for tracker in trackers:  # the whole configuration, once (rank 0; Lightning's loggers check)
        tracker.log_hyperparams(hyperparameters(config))
    fit_started = time.time()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
    except (DivergenceError, CheckpointError) as error:
        raise type(error)(f"{error}; training stopped, last good checkpoint: {_last_good(last)}") from None
    except KeyboardInterrupt:  # before the Trainer's own handler is in place
        raise _interrupted("SIGINT", 130, trainer, last, out) from None
    except SystemExit as exit:  # Lightning turns SIGTERM and Ctrl-C into a SystemExit without a useful code
        if isinstance(exit, SIGTERMException) or trainer.received_sigterm:
            raise _interrupted("SIGTERM", 143, trainer, last, out) from None
        if trainer.interrupted:
            raise _interrupted("SIGINT", 130, trainer, last, out) from None
        raise
    seconds = time.time() - fit_started
    _record_skipped(run)  # the last collective of the run
    if run.world_size > 1 and torch.distributed.is_initialized():
        # Gloo's worker threads otherwise outlive the interpreter's teardown and a rank that
        # exits first may abort ("terminate called without an active exception", SIGABRT;
        # pytorch/pytorch#190489). Only after a fit that succeeded: on an error another rank
        # may still be inside a collective.
        torch.distributed.destroy_process_group()
    return seconds


def _record_skipped(run: Prepared) -> None:
    """The files any rank's workers skipped while training, in the source's ``skipped`` list
    and (rank 0) in ``skipped_files.txt``."""
    from selfsup.data.stream import add_skipped

    skipped = run.source.skipped
    if run.world_size > 1 and torch.distributed.is_initialized():
        every = [None] * run.world_size
        torch.distributed.all_gather_object(every, list(skipped))
        for part in every:
            add_skipped(skipped, part)
    if run.rank == 0:
        _write_skipped(run.out, skipped)


def _write_skipped(out: Path, skipped) -> None:
    write_text(out / "skipped_files.txt", "".join(f"{f}\t{why}\n" for f, why in skipped))


def _last_good(last: Path) -> str:
    return str(last.resolve()) if last.exists() else "none (no epoch finished)"


def _interrupted(signal_name: str, code: int, trainer, last: Path, out: Path) -> Interrupted:
    return Interrupted(f"stopped by {signal_name} at step {trainer.global_step} (epoch {trainer.current_epoch + 1}); "
                       f"last good checkpoint: {_last_good(last)}; continue with "
                       f"`selfsup pretrain --out {out} --resume`", code)
