"""``pretrain(config)``, the main job: train a method on a data source, watch it without
labels, evaluate it beside the same backbone with random weights, write the summary and the
report. Training itself is ``selfsup.train`` (``prepare`` then ``fit``); the label-free
monitors and the protocols are ``selfsup.evaluate``; the run directory is ``selfsup.runs.Run``.
"""

from __future__ import annotations

import time

from selfsup.config import PretrainConfig
from selfsup.evaluate.monitoring import RepresentationMonitor
from selfsup.evaluate.run import evaluate_model, evaluation_size
from selfsup.methods import Method
from selfsup.progress import stage
from selfsup.runs import Run
from selfsup.train import fit, prepare
from selfsup.train.run import build_method
from selfsup.train.speed import apply_speed_switches


def pretrain(config: PretrainConfig) -> dict:
    """Train ``config.method`` on ``config.data``, evaluate it, and return the summary
    (rank 0; the other processes of a torchrun job return {})."""
    prepared = prepare(config)
    try:
        return _pretrain(prepared)
    finally:
        prepared.release()  # the run directory's lock


def _pretrain(prepared) -> dict:
    config, train, test = prepared.config, prepared.train, prepared.test
    run = Run(prepared.out, config)
    where = run.placement()  # the training device (rank 0's) and precision
    rank_zero = prepared.rank == 0
    if rank_zero:
        stage("evaluating the backbone with random weights (the baseline) on %s", where)
    baseline = evaluate_model(random_weights(prepared), train, test, config, where) if rank_zero else {}
    monitor = RepresentationMonitor(config.monitor_samples, stop_on_collapse=config.stop_on_collapse)
    if rank_zero:
        stage("training %s on %d samples for %d epochs into %s", config.method, len(train), config.epochs,
              prepared.out)
    train_seconds = fit(prepared, callbacks=[monitor], monitor=monitor)
    if not rank_zero:
        return {}
    stage("evaluating the trained backbone")
    result = evaluate_model(prepared.method, train, test, config, where)  # on the training device again
    source = prepared.source
    summary = {
        "method": config.method, "data": config.data, "epochs": config.epochs,
        "seconds": round(time.time() - prepared.started, 1),
        "train_seconds": round(train_seconds, 1),  # trainer.fit alone: steps, monitors, checkpoints
        **result,
        **{f"baseline_{k}": v for k, v in baseline.items()},
        "backbone": config.backbone, "image_size": config.image_size,
        "train_samples": len(train), "test_samples": 0 if test is None else len(test),
        "evaluation_train_samples": evaluation_size(len(train)),
        "skipped_files": len(source.skipped),
        "skipped": [{"file": f, "reason": why} for f, why in source.skipped],
        "protocol": run.protocol,
        "collapsed_after_epoch": monitor.collapsed_at,
    }
    run.write_summary(summary)
    if config.report:
        stage("writing the report")
        from selfsup.report import build_report

        build_report(run.directory)
    return summary


def random_weights(prepared) -> Method:
    """The baseline: the method before training, or with random weights when it starts from ``init``."""
    config = prepared.config
    return apply_speed_switches(build_method(config, init=False), config.channels_last) if config.init \
        else prepared.method
