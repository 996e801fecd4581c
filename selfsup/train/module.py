"""Lightning glue: the module that turns batches into views and steps a method, the
sampler that fixes the data order, the JSONL metrics logger, and the checkpoint callback.

Every random draw is derived from (seed, epoch) for the data order and (seed, step) for
the augmentations, never from global state: a resumed run replays what the interrupted
run would have done.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset, Sampler

from selfsup.atomic import write_text
from selfsup.augment import Recipe
from selfsup.augment.ops import SliceDraws
from selfsup.errors import DataError, DivergenceError  # noqa: F401  (DivergenceError: raised here, caught by the CLI)
from selfsup.methods import Method
from selfsup.train.checkpoint import link_last, remove_stale_temporaries
from selfsup.methods.optim import create_optimizer, warmup_cosine


def derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class IndexedImages(Dataset):
    """In-memory uint8 images; indexed by a batch of indices, returns (images, indices)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        index = torch.as_tensor(index)
        return self.images[index], index


class EpochBatches(Sampler):
    """Index batches of a permutation drawn from (seed, epoch); incomplete batches dropped.
    With several processes each takes its slice of every global batch."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.size // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(
            derived_seed(self.seed, self.epoch)))
        local = self.batch_size // self.world_size
        for b in range(len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.rank * local:(self.rank + 1) * local].tolist()


class EpochIndexBatches(EpochBatches):
    """``EpochBatches`` that also name their epoch: a streamed batch's crops depend on it."""

    def __iter__(self):
        for batch in super().__iter__():
            yield self.epoch, batch


def train_loader(train, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 recipe: Recipe | None = None, workers: int = 0) -> DataLoader:
    """Batches of (samples, indices) of an in-memory source or tensor (the recipe crops on the device),
    or, for a streamed source, of (one uint8 batch per view of ``recipe``, indices), cropped
    from the full images in ``workers`` processes (``selfsup.data.stream``)."""
    if getattr(train, "streamed", False):
        from selfsup.data.stream import StreamViews

        views = [(spec.size, spec.crop_scale) for spec in recipe.views]
        sampler = EpochIndexBatches(len(train), batch_size, seed, rank, world_size)
        return DataLoader(StreamViews(train, views, seed), sampler=sampler, batch_size=None, num_workers=workers,
                          persistent_workers=workers > 0, prefetch_factor=2 if workers else None)
    samples = train if isinstance(train, torch.Tensor) else train.samples
    sampler = EpochBatches(len(samples), batch_size, seed, rank, world_size)
    return DataLoader(IndexedImages(samples), sampler=sampler, batch_size=None, num_workers=0)


class PretrainModule(L.LightningModule):
    def __init__(self, method: Method, recipe: Recipe, mean, std, *, optimizer: str, lr: float,
                 weight_decay: float, warmup_epochs: int, epochs: int, steps_per_epoch: int, seed: int,
                 batch_size: int, labels: torch.Tensor | None = None, skipped: list | None = None):
        super().__init__()
        self.skipped = [] if skipped is None else skipped  # files the workers could not decode are added here
        if method.needs_labels and labels is None:
            raise ValueError(f"method {method.name} needs the training labels")
        self.labels = labels  # (N,) for the in-memory images; only methods that need them see them
        self.batch_size = batch_size
        self.method, self.recipe = method, recipe
        self.mean, self.std = list(mean), list(std)
        self.optimizer_name, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.warmup_steps = warmup_epochs * steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.seed = seed

    def training_step(self, batch, batch_idx):
        images, indices, *skipped = batch  # streamed: one uint8 batch per view, cropped already
        if skipped and skipped[0]:
            from selfsup.data.stream import report_skipped

            report_skipped(skipped[0], self.skipped)
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.global_step))
        if self.trainer.world_size > 1:  # this process holds one slice of the global batch
            generator = SliceDraws(generator, self.batch_size, self.global_rank * len(indices))
        if isinstance(images, (list, tuple)):
            views = self.recipe.finish(images, generator, self.mean, self.std)
        else:
            views = self.recipe(images, generator, self.mean, self.std)
        if self.method.needs_labels:
            labels = self.labels[indices.to(self.labels.device)].to(images.device)
            out = self.method.training_step(views, labels=labels)
        else:
            out = self.method.training_step(views)
        if not isinstance(out, dict) or "loss" not in out or "embeddings" not in out:
            raise TypeError(f"{type(self.method).__name__}.training_step must return a StepOutput dict "
                            f"(selfsup.methods.base.step_output), got {type(out).__name__}")
        loss, logs = out["loss"], out.get("logs", {})
        if not torch.isfinite(loss):
            raise DivergenceError(f"loss is {loss.item()} at step {self.global_step} "
                                  f"(epoch {self.current_epoch})")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True, batch_size=len(indices))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        for name, value in logs.items():
            self.log(name, value, on_step=True, on_epoch=False)
        return out  # the monitors read its embeddings in on_train_batch_end

    def on_before_optimizer_step(self, optimizer):
        # the gradients are final (and unscaled under fp16) here
        progress = self.global_step / max(1, self.total_steps)
        for group in optimizer.param_groups:
            if group.get("decayed", False):
                group["weight_decay"] = self.method.weight_decay_at(progress, self.weight_decay)
        self.method.before_optimizer_step(progress, self.current_epoch)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # global_step has already advanced past the step just taken
        self.method.after_optimizer_step((self.global_step - 1) / max(1, self.total_steps))

    def on_train_start(self):
        # a resumed run restores its scheduler's plan; with more epochs than it was planned for
        # the cosine continues to the new end, from the first new step (the restored lr is the old plan's)
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            for schedule in getattr(scheduler, "lr_lambdas", ()):
                if isinstance(schedule, WarmupCosine):
                    schedule.warmup_steps, schedule.total_steps = self.warmup_steps, self.total_steps
            if hasattr(scheduler, "lr_lambdas"):
                lrs = [base * schedule(scheduler.last_epoch)
                       for base, schedule in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
                for group, lr in zip(scheduler.optimizer.param_groups, lrs):
                    group["lr"] = lr
                scheduler._last_lr = lrs

    def configure_optimizers(self):
        optimizer = create_optimizer(self.optimizer_name, self.method, self.lr, self.weight_decay)
        # one multiplier per group: the warm-up and cosine decay, or 1 for a fixed-lr group and for
        # every group of a method whose paper keeps its lr constant (TS2Vec)
        constant = self.method.lr_schedule == "constant"
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, [
            FixedLR() if group.get("fixed_lr") or constant else WarmupCosine(self.warmup_steps, self.total_steps)
            for group in optimizer.param_groups])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ProgressBar(TQDMProgressBar):
    """Lightning's bar without the logger's version number (``v_num``), which says nothing here."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class WarmupCosine:
    """The lr multiplier per step; a class, so LambdaLR's state_dict holds its two numbers."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.warmup_steps, self.total_steps)


class FixedLR:
    """The multiplier of a group whose lr the schedule leaves at its base value."""

    def __call__(self, step: int) -> float:
        return 1.0


class JsonlLogger(Logger):
    """Appends one JSON object per logged step/epoch to ``metrics.jsonl``.

    Resuming from a checkpoint taken after ``resume_step`` optimizer steps (0: from the
    start), it keeps the lines of steps ``0 .. resume_step - 1``, which the checkpoint holds,
    and drops the rest, which the resumed run logs again: every step appears once. A torn
    last line (a hard kill or power loss mid-write) is dropped with a warning."""

    def __init__(self, path: Path, resume_step: int | None = None):
        super().__init__()
        self.path = Path(path)
        if resume_step is not None and self.path.exists() and rank_zero_only.rank == 0:
            kept = [line for line, record in read_metrics(self.path) if record.get("step", 0) < resume_step]
            write_text(self.path, "".join(line + "\n" for line in kept))

    @property
    def name(self):
        return "jsonl"

    @property
    def version(self):
        return 0

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs):
        pass

    @rank_zero_only
    def log_metrics(self, metrics, step=None):
        record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[tuple[str, dict]]:
    """(line, record) of every line of a metrics.jsonl; a torn last line is skipped with a
    warning, any other unreadable line is a ``DataError`` naming it."""
    text = Path(path).read_text(errors="replace")
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):
                warnings.warn(f"{path}: ignoring a torn last line (line {number}, an interrupted write)",
                              stacklevel=3)
                continue
            raise DataError(f"{path}: line {number} is not a JSON object") from None
        records.append((line, record))
    return records


class EpochCheckpoint(L.Callback):
    """After every epoch: write ``checkpoints/epoch-NNNN`` atomically, then move ``last``
    to it, then delete older epochs beyond ``keep``."""

    def __init__(self, directory: Path, keep: int = 2, monitor=None):
        self.directory, self.keep, self.monitor = Path(directory), keep, monitor
        remove_stale_temporaries(self.directory)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.monitor is not None and self.monitor.stop_on_collapse and self.monitor.collapsed_at:
            return  # a collapsed state is never checkpointed: last stays the last good one
        # weights can turn NaN where the loss does not show it (a weight that meets only
        # padding); such a state is never checkpointed either
        broken = [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()]
        if broken:
            raise DivergenceError(f"{len(broken)} weight tensor(s) hold NaN or inf after epoch "
                                  f"{trainer.current_epoch + 1}, first {broken[0]}")
        path = self.directory / f"epoch-{trainer.current_epoch + 1:04d}"
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            link_last(self.directory, path)
            epochs = sorted(p for p in self.directory.glob("epoch-*") if p.is_dir())
            for old in epochs[:-self.keep]:
                trainer.strategy.remove_checkpoint(old)
