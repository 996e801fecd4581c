"""The tasks' command-line subcommands. Each registers its options and its runner in one
place (``@command``), so the CLI adds whatever is registered and has no list to forget."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Callable

SOURCE_HELP = "run directory written by `selfsup pretrain`, or an embeddings file from `selfsup embed`"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    arguments: Callable  # arguments(parser): add the command's options
    run: Callable  # run(args: dict): call the task's public function and print its result


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, description: str, run: Callable):
    """Register the decorated ``arguments(parser)`` as the options of command ``name``."""
    def register(arguments):
        COMMANDS[name] = Command(name, help, description, arguments, run)
        return arguments
    return register


def add_parsers(sub) -> None:
    for c in COMMANDS.values():
        c.arguments(sub.add_parser(c.name, help=c.help, description=c.description))


def add_placement_options(parser) -> None:
    """``--accelerator``/``--devices`` of a command that runs a trained model."""
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "cuda", "auto"),
                        help="where the model runs (default: what the run was trained on when this machine "
                             "has it, else cpu)")
    parser.add_argument("--devices", help="GPUs to split batches over: a count or a list like 0,1 (default: 1)")


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def _short(result: dict, *long: str) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in long}, indent=2)


def _where(a: dict) -> dict:
    return {"accelerator": a["accelerator"], "devices": a["devices"]}


def _run_embed(a: dict) -> None:
    from selfsup.tasks.embed import embed_run

    rows = embed_run(a["run"], a["data"], a["out"], a["accelerator"], a["devices"])
    print(f"wrote {rows} embeddings to {a['out']}")


@command("embed", help="write one embedding per sample to a file",
         description="Embed every sample of a data source with a run's backbone.",
         run=_run_embed)
def _embed_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="run directory written by `selfsup pretrain`")
    p.add_argument("--data", help="data source to embed (default: the run's data)")
    p.add_argument("--out", required=True,
                   help="output file: .parquet (columns id, embedding[, label]) or .npy "
                        "(array; ids in <name>.ids.txt)")
    add_placement_options(p)


def _run_neighbors(a: dict) -> None:
    from selfsup.tasks.neighbors import neighbors

    rows = neighbors(a["run"], a["data"], a["query"], a["k"], a["index"], a["kind"], a["out"], **_where(a))
    if a["out"] is None:
        print("\n".join("\t".join(str(v) for v in row) for row in rows))
        print(f"index: {rows.index_description}", file=sys.stderr)
    else:
        print(f"wrote {len(rows)} rows to {a['out']} (index: {rows.index_description})")


@command("neighbors", help="nearest neighbours of samples (faiss)",
         description="The K most similar samples (cosine of embeddings) of each query: "
                     "exact search up to 200,000 samples, an inverted file (IVF, approximate) above; "
                     "the index kind is printed.",
         run=_run_neighbors)
def _neighbors_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source searched (default: the run's data)")
    p.add_argument("--query", help="comma-separated sample ids, or a data source embedded with the run "
                                   "(default: every sample)")
    p.add_argument("--k", type=int, default=10, help="neighbours per query (default: 10)")
    p.add_argument("--index", help="faiss index file: reused when it exists, else written")
    p.add_argument("--kind", default="auto", choices=("auto", "flat", "ivf", "hnsw"),
                   help="index kind: flat (exact), ivf or hnsw (approximate); default auto")
    p.add_argument("--out", help="TSV file of query_id, rank, neighbor_id, similarity (default: print)")
    add_placement_options(p)


def _run_dedupe(a: dict) -> None:
    from selfsup.tasks.dedupe import dedupe

    result = dedupe(a["run"], a["data"], a["threshold"], not a["no_center"], a["clusters"], out=a["out"], by=a["by"],
                    **_where(a))
    loosest = min((p["loosest"] for p in result["pairs"]), key=lambda pair: pair[2], default=None)
    print(f"{len(result['groups'])} groups of near-duplicates among {result['samples']} samples "
          f"(by {result['by']}, threshold {result['threshold']}); "
          f"keep {len(result['keep'])}" + (f"; loosest pair in a group: {loosest[0]} ~ {loosest[1]} "
                                            f"({loosest[2]:.3f})" if loosest else "")
          + (f"; wrote {a['out']}" if a["out"] else ""))


@command("dedupe", help="groups of near-duplicate samples and a keep-list",
         description="Near-duplicates of the sample kept for them (groups do not chain): of images, by "
                     "default, copies by aligned pixel correlation (shifts, mirror, re-encoding, small crops; "
                     "no model); else centred-embedding cosine (SemDeDup: range search inside k-means clusters).",
         run=_run_dedupe)
def _dedupe_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--by", default="auto", choices=("auto", "embedding", "pixels"),
                   help="pixels (images: copies, no model), embedding (centred-embedding cosine, semantic "
                        "near-duplicates too) or auto: pixels for images from a run, else embedding (default: auto)")
    p.add_argument("--threshold", type=float, help="similarity at least this (default: 0.97 by pixels, "
                                                   "0.9 by embedding)")
    p.add_argument("--no-center", action="store_true", help="raw cosine, without subtracting the mean embedding")
    p.add_argument("--clusters", type=int, help="k-means clusters the search runs inside (default: one per "
                                                "1,000 samples)")
    p.add_argument("--out", help="directory for groups.tsv and keep.txt")
    add_placement_options(p)


def _run_cluster(a: dict) -> None:
    from selfsup.tasks.cluster import cluster

    print(_short(cluster(a["run"], a["data"], a["clusters"], a["views"], a["epochs"], a["self_label_epochs"],
                         out=a["out"], heads=a["heads"], update_backbone=a["update_backbone"],
                         backbone_epochs=a["backbone_epochs"], **_where(a)),
                 "kmeans_ids", "scan_ids"))


@command("cluster", help="cluster samples without labels (k-means, SCAN)",
         description="k-means, then SCAN (neighbour consistency + self-labelling) on the "
                     "embeddings; with labels, accuracy (Hungarian), NMI and ARI.",
         run=_run_cluster)
def _cluster_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--clusters", type=int, help="number of clusters (default: eigengap estimate)")
    p.add_argument("--views", type=int, default=4, help="augmented views embedded for SCAN (default: 4)")
    p.add_argument("--epochs", type=int, default=100, help="SCAN epochs of the heads on frozen embeddings "
                                                           "(default: 100)")
    p.add_argument("--self-label-epochs", type=int, default=50, help="self-labelling epochs (default: 50)")
    p.add_argument("--heads", type=int, default=10, help="SCAN heads trained at once; the one of lowest SCAN "
                                                         "loss is kept (default: 10)")
    p.add_argument("--update-backbone", action="store_true",
                   help="also fine-tune (a copy of) the run's backbone with the SCAN loss on augmented views, "
                        "as the paper does (slower; needs a run directory)")
    p.add_argument("--backbone-epochs", type=int, default=20, help="SCAN epochs with --update-backbone "
                                                                   "(default: 20)")
    p.add_argument("--out", help="TSV file of id, kmeans, scan cluster ids")
    add_placement_options(p)


def _run_curate(a: dict) -> None:
    from selfsup.tasks.curate import curate

    print(_short(curate(a["run"], a["budget"], a["data"], a["levels"], out=a["out"], **_where(a)), "selected"))


@command("curate", help="select a balanced subset (hierarchical k-means)",
         description="Balanced subset of BUDGET samples (Vo et al. 2024).",
         run=_run_curate)
def _curate_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--budget", type=int, required=True, help="number of samples to select")
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--levels", type=_levels, help="clusters per level from the bottom, e.g. 100,10")
    p.add_argument("--out", help="file of selected ids, one a line")
    add_placement_options(p)


def _run_finetune(a: dict) -> None:
    from selfsup.tasks.finetune import finetune

    print(_short(finetune(a["run"], a["labels"], a["data"], a["mode"], a["pseudo_label"], a["steps"],
                          a["scratch"], out=a["out"], **_where(a))))


@command("finetune", help="train a classifier from a run with few labels",
         description="Linear head or full fine-tuning on few labels, optionally with "
                     "FixMatch pseudo-labels; accuracy on the data's 20%% holdout.",
         run=_run_finetune)
def _finetune_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="run directory written by `selfsup pretrain`")
    p.add_argument("--labels", required=True, help="labelled samples per class (drawn from the data's "
                                                   "labels), or a CSV file of id,label lines")
    p.add_argument("--data", help="data source: images, table or series (default: the run's data)")
    p.add_argument("--mode", default="linear", choices=("linear", "full"), help="what learns (default: linear)")
    p.add_argument("--pseudo-label", action="store_true", help="FixMatch on the unlabelled rest")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (default: 300)")
    p.add_argument("--scratch", action="store_true", help="also train from random weights on the labels only")
    p.add_argument("--out", help="directory for the classifier (for `selfsup adapt`)")
    add_placement_options(p)


def _run_adapt(a: dict) -> None:
    from selfsup.atomic import check_output
    from selfsup.tasks.adapt import adapt
    from selfsup.tasks.neighbors import write_table

    if a["out"]:
        check_output(a["out"])
    result = adapt(a["run"], a["data"], a["corrupt"], a["severity"], a["lr"], epochs=a["epochs"], **_where(a))
    if a["out"]:
        write_table(a["out"], ("id", "prediction"), zip(result["ids"], result["predictions"]))
    print(_short(result, "ids", "predictions"))


@command("adapt", help="adapt a classifier to shifted data (TENT)",
         description="Test-time entropy minimisation of the BatchNorm parameters on "
                     "unlabelled shifted data; accuracy when DATA has labels.",
         run=_run_adapt)
def _adapt_arguments(p) -> None:
    p.add_argument("run", metavar="CLASSIFIER_DIR", help="directory written by `selfsup finetune --out`")
    p.add_argument("--data", required=True, help="shifted data source, of the classifier's modality")
    p.add_argument("--corrupt", choices=("noise", "blur", "contrast"), help="corrupt DATA first (a demo shift; tables and series: noise)")
    p.add_argument("--severity", type=int, default=3, help="corruption severity 1-5 (default: 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    p.add_argument("--epochs", type=int, default=1, help="passes over DATA (default: 1, online)")
    p.add_argument("--out", help="TSV file of id, predicted class")
    add_placement_options(p)


def _run_export(a: dict) -> None:
    from selfsup.export import export_run

    info = export_run(a["run"], a["format"], a["out"])
    print(f"wrote {', '.join(info['files'])} to {a['out']} ({a['format']}: {info['backbone']}, "
          f"{info['dim']}-dimensional embeddings)")


@command("export", help="write a run's backbone for timm, torchvision, safetensors or ONNX",
         description="Export the backbone of a run's last checkpoint, loadable without selfsup: a timm folder "
                     "(timm.create_model('local-dir:OUT', pretrained=True, num_classes=0)), torchvision weights, "
                     "a safetensors state dict or an ONNX graph; OUT/README.md shows how to load it.",
         run=_run_export)
def _export_arguments(p) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="run directory written by `selfsup pretrain`")
    p.add_argument("--format", required=True, choices=("timm", "torchvision", "safetensors", "onnx"),
                   help="timm: config.json + model.safetensors for timm.create_model; torchvision: weights for "
                        "torchvision.models.get_model with the classifier removed; safetensors: the state dict of "
                        "any backbone; onnx: model.onnx with a dynamic batch axis")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if needed)")


def _run_pack(a: dict) -> None:
    from selfsup.data.shards import pack_folder

    done = pack_folder(a["folder"], a["out"], a["image_size"], a["shard_size"])
    skipped = f"; skipped {len(done['skipped'])} unreadable: {done['skipped'][0][0]}" if done["skipped"] else ""
    print(f"wrote {done['images']} images in {done['shards']} shard(s) to {a['out']}"
          f"{' with labels' if done['classes'] else ''}{skipped}")


@command("pack", help="write an image folder as WebDataset tar shards",
         description="Pack the images below FOLDER into WebDataset tar shards (KEY.jpg, KEY.cls when the folder "
                     "has class sub-folders, classes.json) that `--data OUT` (or OUT/{000000..000009}.tar) streams.",
         run=_run_pack)
def _pack_arguments(p) -> None:
    p.add_argument("folder", metavar="FOLDER", help="an image folder, as for pretrain --data")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the shards (must hold none yet)")
    p.add_argument("--image-size", type=int, help="re-encode as JPEG with the short side resized down to this "
                                                  "(default: copy the files' bytes as they are)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default: 1000)")
