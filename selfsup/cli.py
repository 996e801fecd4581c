"""The ``selfsup`` command line: each command maps to one public Python function."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path

from selfsup.config import LOGGERS, ConfigError, PretrainConfig, from_dict, read_options

EPILOG = "Run `selfsup COMMAND --help` for the options of a command."


def _pretrain_parser(sub) -> None:
    parser = sub.add_parser("pretrain", help="pretrain an encoder with a self-supervised method",
                            description="Pretrain an encoder on DATA with METHOD, evaluate it "
                                        "(kNN, linear probe, RankMe) and write a run directory.",
                            argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", metavar="FILE", help="YAML file of options (e.g. a run's config.yaml); "
                                                        "options given on the command line override it")
    parser.add_argument("--method-option", action="append", metavar="NAME=VALUE", dest="method_option",
                        help="an option of the method, e.g. queue_size=8192 (repeatable; `selfsup methods NAME` "
                             "lists them with their defaults)")
    parser.add_argument("--backbone-option", action="append", metavar="NAME=VALUE", dest="backbone_option",
                        help="a keyword argument of a timm/ or torchvision/ backbone, e.g. drop_path_rate=0.1 "
                             "(repeatable; recorded in config.yaml as backbone_options)")
    parser.add_argument("--logger", action="append", choices=LOGGERS, metavar="NAME",
                        help="an experiment tracker beside metrics.jsonl: csv, tensorboard, mlflow or wandb "
                             "(repeatable; Lightning's loggers, offline, below the run directory; "
                             "tensorboard, mlflow and wandb need the extra of that name)")
    for f in dataclasses.fields(PretrainConfig):
        if not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f.metadata["help"] + ("" if default is None or f.metadata.get("required") else f" (default: {default})")
        base = f.type.replace(" | None", "")
        if base == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, type={"int": int, "float": float, "str": str}[base],
                                help=help_text, metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfsup", epilog=EPILOG,
                                     description="Self-supervised representation learning: pretrain, "
                                                 "evaluate and use encoders on unlabeled data.")
    parser.add_argument("--version", action="version", version=f"selfsup {_version()}")
    from selfsup.tasks.commands import add_parsers as add_task_parsers, add_placement_options

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _pretrain_parser(sub)

    evaluate = sub.add_parser("evaluate", help="re-evaluate a run's last checkpoint",
                              description="kNN top-1, linear-probe top-1 and RankMe of a run's "
                                          "backbone, beside the same backbone with random weights.")
    evaluate.add_argument("run", metavar="RUN_DIR", help="run directory written by `selfsup pretrain`")
    evaluate.add_argument("--data", help="labelled data source to evaluate on (default: the run's data; "
                                         "its fixed holdout split is the test set)")
    evaluate.add_argument("--knn-k", type=int, help="neighbours of the weighted kNN of the summary "
                                                    "numbers (default: the run's; k=10/20/100/200 are always reported)")
    evaluate.add_argument("--quick", action="store_true",
                          help="only the summary numbers (kNN, linear probe, RankMe), not few-shot, "
                               "clustering and the k / regularisation sweeps")
    add_placement_options(evaluate)

    bench = sub.add_parser("benchmark", help="compare methods with the same budget and protocol",
                           description="Pretrain each method with the same data, backbone and epochs, "
                                       "evaluate every protocol, and write results.md and results.csv.")
    bench.add_argument("--methods", required=True, help="comma-separated method names, e.g. simclr,byol")
    bench.add_argument("--data", required=True, help="data source (as for pretrain)")
    bench.add_argument("--epochs", type=int, required=True, help="training epochs for every method")
    bench.add_argument("--out", default="results", help="results directory (default: results)")
    bench.add_argument("--backbone", help="backbone for every method (default: as pretrain chooses)")
    bench.add_argument("--batch-size", type=int, help="batch size for every method (default: 256)")
    bench.add_argument("--image-size", type=int, help="image size for every method (default: as pretrain)")
    bench.add_argument("--seed", type=int, help="seed for every method (default: 0)")

    report = sub.add_parser("report", help="rebuild a run's report.html",
                            description="Write RUN_DIR/report.html: results, training curves, "
                                        "embedding map, nearest-neighbour grids, skipped files.")
    report.add_argument("run", metavar="RUN_DIR", help="run directory written by `selfsup pretrain`")
    add_placement_options(report)

    add_task_parsers(sub)  # every registered task command: embed, neighbors, dedupe, cluster, ...

    sub.add_parser("datasets", help="list the built-in datasets",
                   description="List the built-in datasets (they ship offline).")
    listing = sub.add_parser("methods", help="list the self-supervised methods",
                             description="List the self-supervised methods and their papers; with NAME, "
                                         "the method's options and their defaults (its paper's settings).")
    listing.add_argument("name", nargs="?", metavar="NAME", help="a method to show in full")
    for command in sub.choices.values():
        command.add_argument("--quiet", action="store_true", default=False,
                             help="no progress bars and no stage messages (they show only on a terminal anyway)")
    return parser


def _version() -> str:
    from selfsup import __version__

    return __version__


def run(argv: list[str] | None = None) -> int:
    from selfsup.tasks.commands import COMMANDS as TASK_COMMANDS

    from selfsup import progress

    args = vars(build_parser().parse_args(argv))
    progress.set_quiet(args.pop("quiet"))
    progress.configure_logging()
    command = args.pop("command")
    if command != "pretrain" and (args.get("accelerator") or args.get("devices")):
        from selfsup.devices import check_inference

        # before loading anything; without --accelerator, where a GPU-trained run would run here
        check_inference(args["accelerator"] or "auto", args["devices"] or "1")
    if command == "pretrain":
        from selfsup.tasks import pretrain

        values = {}
        if "config" in args:
            values = read_options(args.pop("config"))
        for flag, field_name in (("method_option", "method_options"), ("backbone_option", "backbone_options")):
            if flag in args:
                values[field_name] = {**(values.get(field_name) or {}),
                                      **parse_options(args.pop(flag), flag.replace("_", "-"))}
        if "logger" in args:
            values["loggers"] = list(dict.fromkeys([*(values.get("loggers") or []), *args.pop("logger")]))
        config = from_dict({**values, **args}, "command line")
        processes = launch_count(config)
        if processes > 1:
            return launch(processes, config, sys.argv[1:] if argv is None else argv)
        summary = pretrain(config)
        if summary:
            print(summary_line(summary))
    elif command == "evaluate":
        from selfsup.evaluate.run import evaluate_run

        print(json.dumps(evaluate_run(args["run"], args["data"], args["knn_k"], full=not args["quick"],
                                      accelerator=args["accelerator"], devices=args["devices"]), indent=2))
    elif command == "benchmark":
        from selfsup.tasks.benchmark import benchmark

        shared = {k: args[k] for k in ("backbone", "batch_size", "image_size", "seed") if args[k] is not None}
        benchmark([m for m in args["methods"].split(",") if m], args["data"], args["epochs"], args["out"],
                  **shared)
        print((Path(args["out"]) / "results.md").read_text())
    elif command == "report":
        from selfsup.report import build_report

        print(f"wrote {build_report(args['run'], args['accelerator'], args['devices'])}")
    elif command in TASK_COMMANDS:
        TASK_COMMANDS[command].run(args)
    elif command == "datasets":
        from selfsup.modalities import BUILTIN_DATASETS

        width = max(len(name) for name in BUILTIN_DATASETS)
        print(f"{'name':<{width}} {'modality':<10} {'size':>6}  labels  description")
        for d in BUILTIN_DATASETS.values():
            print(f"{d.name:<{width}} {d.modality:<10} {d.size:>6}  {'yes' if d.has_labels else 'no':<6}  {d.description}")
    elif command == "methods":
        from selfsup import catalogue

        print(catalogue.card(args["name"]) if args["name"] else catalogue.listing())
    return 0


def parse_options(items: list[str], flag: str = "method-option") -> dict:
    """``["queue_size=8192", "temperature=0.2"]`` (of ``--flag``) as a mapping of YAML-read values."""
    from selfsup.methods.options import parse_value

    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{flag}={item!r}: expected NAME=VALUE")
        options[name.strip()] = parse_value(value.strip())
    return options


def launch_count(config: PretrainConfig) -> int:
    """Processes to start for ``--devices N`` outside torchrun (1: run in this process)."""
    from selfsup.devices import check_accelerator, device_count
    from selfsup.train.run import under_torchrun

    check_accelerator(config.accelerator, config.devices)
    return 1 if under_torchrun() else device_count(config.devices, config.accelerator)


def launch(processes: int, config: PretrainConfig, argv: list[str]) -> int:
    """Run this command in ``processes`` processes on this machine, one device each, with
    torchrun's launcher (as ``torchrun --standalone --nproc_per_node=N -m selfsup.cli ...``);
    the exit code is the first failed process's, whose error it has printed itself."""
    import os

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run as torchrun

    devices = config.devices.strip()
    if "," in devices:  # a list of GPUs: these become local ranks 0..N-1
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    print(f"selfsup: starting {processes} processes (torchrun --standalone --nproc_per_node={processes})",
          file=sys.stderr)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(parse_args(["--standalone", f"--nproc_per_node={processes}", "-m", "selfsup.cli", *argv]))
    except ChildFailedError as error:
        codes = [failure.exitcode for failure in error.failures.values()]
        return next((c for c in codes if c > 0), 1)
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_line(s: dict) -> str:
    return (f"{s['method']} on {s['data']}: kNN top-1 {_fmt(s['knn_top1'])} "
            f"(random weights {_fmt(s['baseline_knn_top1'])}), linear top-1 {_fmt(s['linear_top1'])} "
            f"(random weights {_fmt(s['baseline_linear_top1'])}), RankMe {s['rankme']:.1f}, "
            f"{s['epochs']} epochs in {s['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> None:
    """Run a command; nothing escapes as a traceback. Exit codes: 0 done, 2 refused (the
    library's one-line errors: options, data, checkpoints, divergence; and bad usage), 130 and
    143 stopped by SIGINT or SIGTERM (the line names the last good checkpoint), 141 (as a
    process killed by SIGPIPE) when whoever reads stdout closed it first (``| head``),
    silently, 1 anything unexpected (one line naming a log file that holds the traceback)."""
    from selfsup.errors import ONE_LINE, DataError, Interrupted

    warnings.simplefilter("default")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # every process measures the same monitors (selfsup.evaluate.monitoring): nothing to synchronise
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")
    warnings.filterwarnings("ignore", message=r".*torch.distributed.nn.functional.\w+ is deprecated.*")
    # Lightning's notices ("GPU available", its litlogger tip): importing lightning sets its
    # package logger back to INFO, so the level goes on the logger that writes them
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        sys.exit(run(argv))
    except ONE_LINE as error:
        import os

        # under torchrun every process checks the same options and data: one of them says so
        if not isinstance(error, (ConfigError, DataError)) or int(os.environ.get("RANK", 0)) == 0:
            print(f"selfsup: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as error:
        print(f"selfsup: {one_line(error)}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("selfsup: interrupted (SIGINT); resume a pretraining run with --resume", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # a bug, or an input no check foresaw: one line, the traceback in a file
        if isinstance(error, BrokenPipeError) and stdout_reader_gone():  # `selfsup ... | head`: not an error of ours
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
            sys.exit(141)
        log = crash_log()
        print(f"selfsup: unexpected error: {type(error).__name__}: {one_line(error)} (please report it; "
              f"the traceback is in {log})", file=sys.stderr)
        sys.exit(1)


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end was closed (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout
        return False


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def crash_log() -> str:
    """Write the traceback being handled to a new file (in ``$SELFSUP_CRASH_DIR``, default the
    temporary directory) and return its path."""
    import os
    import tempfile
    import time
    import traceback

    directory = Path(os.environ.get("SELFSUP_CRASH_DIR") or tempfile.gettempdir())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"selfsup-crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log",
                                    dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(f"selfsup {_version()}\nargv: {sys.argv!r}\n\n{traceback.format_exc()}")
        return path
    except OSError as error:
        return f"nowhere ({directory}: {error.strerror})"


if __name__ == "__main__":
    main()
