"""``selfsup neighbors``: the nearest neighbours of samples of a run's data (or of an
embeddings file), searched with ``selfsup.evaluate.neighbours.NeighborIndex`` (faiss): exact
up to ``EXACT_MAX`` samples, an inverted file (IVF) above; the rows say which
(``index_description``), and a saved index records its kind beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from selfsup.atomic import check_output, write_text
from selfsup.config import ConfigError
from selfsup.data import DataError
from selfsup.modalities import BUILTIN_DATASETS
from selfsup.evaluate.neighbours import NeighborIndex
from selfsup.progress import stage
from selfsup.tasks.common import Embedded, check_count, load_embeddings


class NeighborRows(list):
    """The rows of ``neighbors``, and ``index_description``: the kind of index searched."""

    index_description: str = ""


def _queries(query: str | None, searcher: NeighborIndex, run_or_file, accelerator=None, devices=None,
             base: Embedded | None = None) -> Embedded:
    """``query``: None (every indexed sample), comma-separated ids of indexed samples, or a
    data source embedded with the same run."""
    if query is None and base is not None:
        return base
    lookup = {sample_id: i for i, sample_id in enumerate(searcher.ids_)}
    wanted = list(lookup) if query is None else [q for q in query.split(",") if q]
    if not wanted:
        raise ConfigError(f"query={query!r}: names no sample; give sample ids or a data source")
    if all(q in lookup for q in wanted):  # the index stores the (normalised) embeddings
        return Embedded(searcher.vectors([lookup[q] for q in wanted]), wanted)
    if "," not in query and not Path(run_or_file).is_file() and (Path(query).exists() or query in BUILTIN_DATASETS):
        return load_embeddings(run_or_file, query, accelerator, devices)
    missing = next(q for q in wanted if q not in lookup)
    raise DataError(f"query={missing!r}: not a sample id of the data, nor a data source")


def index_source(run_or_file, data: str | None) -> dict:
    """What a saved index is built from: a run's checkpoint (the one ``last`` names) and its
    data, or an embeddings file as it is now (path, size, modification time)."""
    path = Path(run_or_file).resolve()
    if path.is_dir():
        return {"run": str(path), "checkpoint": str((path / "checkpoints" / "last").resolve()), "data": data}
    stat = path.stat()
    return {"file": str(path), "bytes": stat.st_size, "modified_ns": stat.st_mtime_ns}


def _describe(source: dict | None) -> str:
    if source is None:
        return "embeddings it does not record (saved by an earlier selfsup)"
    if "file" in source:
        return f"{source['file']} as it was then" if Path(source["file"]).exists() else source["file"]
    return f"run {source['run']} ({Path(source['checkpoint']).name}" + \
        (f", data {source['data']})" if source["data"] else ")")


def neighbors(run_or_file, data: str | None = None, query: str | None = None, k: int = 10,
              index: str | os.PathLike | None = None, kind: str = "auto", out=None,
              accelerator: str | None = None, devices: str | None = None) -> NeighborRows:
    """Rows ``(query_id, rank, neighbour_id, similarity)``: the ``k`` most similar samples of
    ``data`` for each query. With ``index`` a saved index is reused if the file exists,
    else the new one is saved there. ``out``: also write the rows as a TSV file.
    ``accelerator``/``devices``: where a run embeds (default: the run's, else CPU)."""
    for path, name in ((out, "out"), (index, "index")):
        if path is not None:
            check_output(path, "file", name)
    base, source = None, index_source(run_or_file, data)
    if index is not None and Path(index).is_file():
        searcher = NeighborIndex.load(index)
        if searcher.source_ != source:  # never search another run's or file's samples silently
            raise ConfigError(f"index={index}: built from {_describe(searcher.source_)}, not from "
                              f"{_describe(source)}; pass another --index, or remove it to rebuild it")
    else:
        base = load_embeddings(run_or_file, data, accelerator, devices)
        searcher = NeighborIndex(kind).fit(base.embeddings, base.ids)
        if index is not None:
            searcher.save(index, source)
    check_count("k", k, len(searcher.ids_))
    stage("searching a %s index of %d samples", searcher.description_, len(searcher.ids_))
    queries = _queries(query, searcher, run_or_file, accelerator, devices, base)
    similarities, positions = searcher.search(queries.embeddings, k)
    rows = NeighborRows((queries.ids[q], rank + 1, searcher.ids_[p], float(s))
                        for q in range(len(queries)) for rank, (p, s) in enumerate(zip(positions[q], similarities[q]))
                        if p >= 0)
    rows.index_description = searcher.description_
    if out is not None:
        write_table(out, ("query_id", "rank", "neighbor_id", "similarity"), rows)
    return rows


def write_table(path, header: tuple[str, ...], rows) -> None:
    """A tab-separated file with a header line."""
    lines = ["\t".join(header)] + ["\t".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in row)
                                   for row in rows]
    write_text(path, "\n".join(lines) + "\n")
