"""Command-line subcommands of the tasks (neighbors, dedupe, cluster, curate, finetune,
adapt): their options, and one call each to the task's public function."""

from __future__ import annotations

import json

SOURCE_HELP = "run directory written by `selfsup pretrain`, or an embeddings file from `selfsup embed`"
COMMANDS = ("neighbors", "dedupe", "cluster", "curate", "finetune", "adapt")


def add_placement_options(parser) -> None:
    """``--accelerator``/``--devices`` of a command that runs a trained model."""
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "auto"),
                        help="where the model runs (default: what the run was trained on when this machine "
                             "has it, else cpu)")
    parser.add_argument("--devices", help="GPUs to split batches over: a count or a list like 0,1 (default: 1)")


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def add_parsers(sub) -> None:
    p = sub.add_parser("neighbors", help="nearest neighbours of samples (faiss)",
                       description="The K most similar samples (cosine of embeddings) of each query: "
                                   "exact search up to 200,000 samples, HNSW above.")
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source searched (default: the run's data)")
    p.add_argument("--query", help="comma-separated sample ids, or a data source embedded with the run "
                                   "(default: every sample)")
    p.add_argument("--k", type=int, default=10, help="neighbours per query (default: 10)")
    p.add_argument("--index", help="faiss index file: reused when it exists, else written")
    p.add_argument("--kind", default="auto", choices=("auto", "flat", "hnsw"), help="index kind (default: auto)")
    p.add_argument("--out", help="TSV file of query_id, rank, neighbor_id, similarity (default: print)")
    add_placement_options(p)

    p = sub.add_parser("dedupe", help="groups of near-duplicate samples and a keep-list",
                       description="Near-duplicates: centred-embedding cosine at least THRESHOLD.")
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--threshold", type=float, default=0.9, help="cosine similarity of centred embeddings (default: 0.9)")
    p.add_argument("--no-center", action="store_true", help="raw cosine, without subtracting the mean embedding")
    p.add_argument("--out", help="directory for groups.tsv and keep.txt")
    add_placement_options(p)

    p = sub.add_parser("cluster", help="cluster samples without labels (k-means, SCAN)",
                       description="k-means, then SCAN (neighbour consistency + self-labelling) on the "
                                   "embeddings; with labels, accuracy (Hungarian), NMI and ARI.")
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--clusters", type=int, help="number of clusters (default: eigengap estimate)")
    p.add_argument("--views", type=int, default=4, help="augmented views embedded for SCAN (default: 4)")
    p.add_argument("--epochs", type=int, default=100, help="SCAN epochs (default: 100)")
    p.add_argument("--out", help="TSV file of id, kmeans, scan cluster ids")
    add_placement_options(p)

    p = sub.add_parser("curate", help="select a balanced subset (hierarchical k-means)",
                       description="Balanced subset of BUDGET samples (Vo et al. 2024).")
    p.add_argument("run", metavar="RUN_OR_EMBEDDINGS", help=SOURCE_HELP)
    p.add_argument("--budget", type=int, required=True, help="number of samples to select")
    p.add_argument("--data", help="data source (default: the run's data)")
    p.add_argument("--levels", type=_levels, help="clusters per level from the bottom, e.g. 100,10")
    p.add_argument("--out", help="file of selected ids, one a line")
    add_placement_options(p)

    p = sub.add_parser("finetune", help="train a classifier from a run with few labels",
                       description="Linear head or full fine-tuning on few labels, optionally with "
                                   "FixMatch pseudo-labels; accuracy on the data's 20%% holdout.")
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

    p = sub.add_parser("adapt", help="adapt a classifier to shifted data (TENT)",
                       description="Test-time entropy minimisation of the BatchNorm parameters on "
                                   "unlabelled shifted data; accuracy when DATA has labels.")
    p.add_argument("run", metavar="CLASSIFIER_DIR", help="directory written by `selfsup finetune --out`")
    p.add_argument("--data", required=True, help="shifted data source, of the classifier's modality")
    p.add_argument("--corrupt", choices=("noise", "blur", "contrast"), help="corrupt DATA first (a demo shift; tables and series: noise)")
    p.add_argument("--severity", type=int, default=3, help="corruption severity 1-5 (default: 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    p.add_argument("--epochs", type=int, default=1, help="passes over DATA (default: 1, online)")
    p.add_argument("--out", help="TSV file of id, predicted class")
    add_placement_options(p)


def _short(result: dict, *long: str) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in long}, indent=2)


def run_command(command: str, a: dict) -> None:
    from selfsup.tasks.neighbors import write_table

    where = {"accelerator": a["accelerator"], "devices": a["devices"]}
    if command == "neighbors":
        from selfsup.tasks.neighbors import neighbors

        rows = neighbors(a["run"], a["data"], a["query"], a["k"], a["index"], a["kind"], a["out"], **where)
        if a["out"] is None:
            print("\n".join("\t".join(str(v) for v in row) for row in rows))
        else:
            print(f"wrote {len(rows)} rows to {a['out']}")
    elif command == "dedupe":
        from selfsup.tasks.dedupe import dedupe

        result = dedupe(a["run"], a["data"], a["threshold"], not a["no_center"], out=a["out"], **where)
        print(f"{len(result['groups'])} groups of near-duplicates among {result['samples']} samples; "
              f"keep {len(result['keep'])}" + (f"; wrote {a['out']}" if a["out"] else ""))
    elif command == "cluster":
        from selfsup.tasks.cluster import cluster

        print(_short(cluster(a["run"], a["data"], a["clusters"], a["views"], a["epochs"], out=a["out"], **where),
                     "kmeans_ids", "scan_ids"))
    elif command == "curate":
        from selfsup.tasks.curate import curate

        print(_short(curate(a["run"], a["budget"], a["data"], a["levels"], out=a["out"], **where), "selected"))
    elif command == "finetune":
        from selfsup.tasks.finetune import finetune

        print(_short(finetune(a["run"], a["labels"], a["data"], a["mode"], a["pseudo_label"], a["steps"],
                              a["scratch"], out=a["out"], **where)))
    elif command == "adapt":
        from selfsup.tasks.adapt import adapt

        result = adapt(a["run"], a["data"], a["corrupt"], a["severity"], a["lr"], epochs=a["epochs"], **where)
        if a["out"]:
            write_table(a["out"], ("id", "prediction"), zip(result["ids"], result["predictions"]))
        print(_short(result, "ids", "predictions"))
