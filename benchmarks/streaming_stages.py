"""The stages after training at scale (issue 18 part 3): `neighbors`, `curate` and `dedupe`
on N synthetic embeddings of dimension 256, each in its own process so that its peak RSS
is its own.

Data, made here and streamed to a Parquet file with `write_embedding_batches` (row group
by row group): 1,000 Gaussian clusters (centres N(0, 1) per dimension, noise N(0, 1)),
sizes long-tailed (p_c ~ 1 / sqrt(c + 1)), labels = cluster; in each chunk of 50,000
rows, 1% are replaced by near-copies (noise N(0, 0.05)) of other rows of the chunk, the
planted duplicates.

- crossover: exact flat vs IVF (build + `--queries` queries) on the first 25k-400k rows,
  which sets ``EXACT_MAX`` in selfsup/evaluate/neighbours.py.
- neighbors: `selfsup.tasks.neighbors.neighbors` (read the file, build the index the
  `auto` rule picks, search `--queries` ids, k = 10); recall@10 against an exact flat
  search for 1,000 of the queries (outside the timing).
- curate: `selfsup.tasks.curate.curate --budget` (default N / 10).
- dedupe: `selfsup.tasks.dedupe.dedupe --threshold 0.95`; the share of planted pairs in
  one group, and the rows grouped.

    python benchmarks/streaming_stages.py            # 50,000 rows (about 2 CPU minutes)
    python benchmarks/streaming_stages.py --full     # 1,000,000 rows, budget 100,000
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/streaming_stages.py --full --threads 1

Prints one line per stage and a final `RESULT {json}` line: per stage wall and CPU
seconds (on a shared machine, CPU seconds are the figure contention does not inflate) and
the peak RSS of its process right after the timed call (before the recall check).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, CLUSTERS, CHUNK = 256, 1000, 50_000


def make_data(path: Path, rows: int, seed: int = 0) -> np.ndarray:
    """Write the synthetic embeddings to ``path`` chunk by chunk; returns the planted
    (copy, original) pairs (an original is a row of the same chunk that is no copy)."""
    from selfsup.tasks.embed import write_embedding_batches

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    p = 1 / np.sqrt(np.arange(CLUSTERS) + 1)
    labels = rng.choice(CLUSTERS, rows, p=p / p.sum())
    planted = []

    def batches():
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            block = centres[labels[start:start + n]] + rng.normal(size=(n, DIM)).astype(np.float32)
            order = rng.permutation(n)
            copies, originals = order[:n // 100], order[n // 100:][rng.integers(0, n - n // 100, n // 100)]
            block[copies] = block[originals] + rng.normal(scale=0.05, size=(len(copies), DIM)).astype(np.float32)
            labels[start + copies] = labels[start + originals]
            planted.append(np.stack([start + copies, start + originals], axis=1))
            yield block

    write_embedding_batches(path, [str(i) for i in range(rows)], batches(), labels)
    return np.concatenate(planted)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(call):
    """(result, figures): wall and CPU seconds of ``call()``, and the process' peak RSS right after it."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    return result, {"seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(cpu_seconds() - cpu, 1),
                    "peak_rss_mb": round(peak_rss_mb())}


def stage(args) -> dict:
    """One stage in this process; returns its figures."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    path = Path(args.file)
    if args.stage == "crossover":  # flat vs IVF, build + queries, on the first n rows
        from selfsup.evaluate.neighbours import NeighborIndex
        from selfsup.tasks.common import read_embeddings_file

        x = read_embeddings_file(path).embeddings
        rng, figures = np.random.default_rng(2), {}
        for n in [n for n in (25_000, 50_000, 100_000, 200_000, 400_000) if n <= len(x)]:
            queries = x[np.sort(rng.choice(n, min(n, args.queries), replace=False))]
            row, found = {}, {}
            for kind in ("flat", "ivf"):
                start = cpu_seconds()
                found[kind] = NeighborIndex(kind).fit(x[:n]).search(queries, 10)[1]
                row[f"{kind}_cpu_seconds"] = round(cpu_seconds() - start, 2)
            row["ivf_recall_at_10"] = round(float(np.mean([len(set(a) & set(e)) / 10
                                                           for a, e in zip(found["ivf"], found["flat"])])), 4)
            figures[str(n)] = row
        return figures
    if args.stage == "neighbors":
        from selfsup.tasks.neighbors import neighbors

        rng = np.random.default_rng(1)
        queries = np.sort(rng.choice(args.rows, args.queries, replace=False))
        rows, figures = timed(lambda: neighbors(path, query=",".join(str(q) for q in queries), k=10))
        found = {}
        for query_id, _, neighbour_id, _ in rows:
            found.setdefault(query_id, []).append(int(neighbour_id))
        from selfsup.evaluate.neighbours import NeighborIndex
        from selfsup.tasks.common import read_embeddings_file

        x = read_embeddings_file(path).embeddings
        sample = queries[:1000]
        _, exact = NeighborIndex("flat").fit(x).search(x[sample], 10)
        recall = float(np.mean([len(set(found[str(q)]) & set(e)) / 10 for q, e in zip(sample, exact)]))
        return {**figures, "index": rows.index_description, "queries": args.queries,
                "recall_at_10": round(recall, 4), "recall_sample": len(sample)}
    if args.stage == "curate":
        from selfsup.tasks.curate import curate

        result, figures = timed(lambda: curate(path, args.budget))
        return {**figures, "budget": args.budget, "selected": len(result["selected"]),
                **{k: round(v, 3) for k, v in result.items() if k.startswith("class_entropy")}}
    from selfsup.tasks.dedupe import dedupe

    result, figures = timed(lambda: dedupe(path, threshold=0.95))
    planted = np.load(args.planted)
    group_of = {sample: g for g, members in enumerate(result["groups"]) for sample in members}
    together = np.mean([str(a) in group_of and group_of[str(a)] == group_of.get(str(b)) for a, b in planted])
    return {**figures, "groups": len(result["groups"]), "grouped": len(group_of),
            "planted_pairs": len(planted), "planted_found": round(float(together), 4), "keep": len(result["keep"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 rows")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--budget", type=int, help="curate budget (default: rows / 10)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--stages", default="crossover,neighbors,curate,dedupe",
                        help="crossover: flat vs IVF build + queries on 25k-400k of the rows")
    parser.add_argument("--data-dir", help="keep the generated data here and reuse it when present "
                                           "(default: a temporary folder)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--planted", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full:
        args.rows = 1_000_000
    args.budget = args.budget or args.rows // 10
    if args.stage:
        figures = stage(args)
        figures.setdefault("peak_rss_mb", round(peak_rss_mb()))
        print("STAGE " + json.dumps(figures))
        return
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.data_dir or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "embeddings.parquet"
        start = time.perf_counter()
        import pyarrow.parquet as pq

        reused = path.is_file() and (folder / "planted.npy").is_file() and \
            pq.ParquetFile(path).metadata.num_rows == args.rows
        if not reused:
            np.save(folder / "planted.npy", make_data(path, args.rows))
        result = {"data_reused": bool(reused), "rows": args.rows, "dim": DIM, "threads": args.threads, "cores": os.cpu_count(),
                  "write_seconds": round(time.perf_counter() - start, 1), "write_peak_rss_mb": round(peak_rss_mb()),
                  "file_mb": round(path.stat().st_size / 2**20)}
        print(f"{'reused' if reused else 'wrote'} {args.rows} x {DIM} embeddings ({result['file_mb']} MB)"
              + ("" if reused else f" in {result['write_seconds']} s"), flush=True)
        for name in args.stages.split(","):
            command = [sys.executable, __file__, "--stage", name, "--file", str(path), "--rows", str(args.rows),
                       "--queries", str(args.queries), "--budget", str(args.budget), "--threads", str(args.threads),
                       "--planted", str(Path(folder) / "planted.npy")]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            figures = json.loads(next(line for line in out.splitlines() if line.startswith("STAGE "))[6:])
            print(f"{name}: {figures}", flush=True)
            result[name] = figures
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
