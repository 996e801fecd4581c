"""Dedupe on injected duplicates (issue 19): precision and recall of the pairs it flags.

Takes the images of ``--data`` (e.g. the 10,000 CIFAR-10 test JPEGs) as originals, picks
``--fraction`` of them (seeded) and writes one copy of each, the five kinds in equal shares:

- ``exact``: the file's bytes;
- ``jpeg``: decoded and re-encoded as JPEG at quality 50-75;
- ``shift``: moved by 1 or 2 px in x and/or y (edge pixels repeated), saved as PNG;
- ``crop``: a centred-ish crop of 90-95% of the area, resized back (bicubic), PNG;
- ``flip``: mirrored left-right, PNG.

The injected set (originals as symlinks + copies) is embedded once with the run's encoder
(``--run``; without it, SimCLR on ``--pretrain-data`` for ``--epochs`` epochs of
``smallcnn`` is trained first, through ``selfsup.tasks.pretrain``); then, for each
threshold of the sweep, it is grouped both ways ``selfsup dedupe`` compares: by embedding
(``duplicate_groups``) and by pixels (``copy_pairs`` + ``groups_from_pairs``), and the
same groups are computed on the originals' rows alone (the set without injected
duplicates). At the library's defaults, ``selfsup.tasks.dedupe.dedupe`` (the function
behind ``selfsup dedupe``) is also called on both folders and must agree with the sweep.
``--montage PNG`` draws the originals' groups at the defaults, to judge them by eye.

CIFAR-10 test is not free of duplicates, so a pair of two originals is not always wrong.
``--labels CSV`` (columns ``a,b,score,verdict``, verdict ``same`` or ``different``: a
person's judgement whether two originals are one photograph, as ciFAIR judged CIFAR's
train/test copies) counts an original pair labelled ``same`` as correct, and an original
as wrongly flagged only when its group holds no ``same`` partner of it; the figures without
the labels are printed beside. ``--sheets DIR`` writes every original pair inside a pixel
group at a threshold >= ``--label-from`` that the labels lack, as numbered sheets
(``sheet-K.png``, 4x enlarged) and ``to_label.csv``, for a person to judge.

A flagged pair is every pair of samples in one group; it is correct when both are an
original and its copy (one copy per original here). Precision = correct / flagged pairs,
recall = injected pairs in one group / injected pairs, per kind too. On the clean set,
``flagged`` = share of the originals that fall into any group (``dropped``: share that the
keep-list drops). Also printed: per kind, the similarity of original and copy (min, 5th
percentile, median), and on the clean set the 99.5th percentile of every image's
similarity to its nearest other image: a threshold below it flags more than 0.5%.

    PYTHONPATH=. OMP_NUM_THREADS=2 nice -n 5 python benchmarks/dedupe_injected.py \\
        --data /tmp/cifar/cifar10-jpg/test --pretrain-data TRAIN_SLICE --epochs 5 --work /tmp/dd \\
        [--run RUN] [--montage groups.png]

Prints Markdown tables and a final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("exact", "jpeg", "shift", "crop", "flip")
SWEEP = {"embedding": (0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99),
         "pixels": (0.9, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def make_copy(kind: str, source: Path, target_stem: Path, rng: np.random.Generator) -> Path:
    """Writes the ``kind`` copy of ``source`` next to ``target_stem`` and returns its path."""
    if kind == "exact":
        target = target_stem.with_suffix(source.suffix)
        shutil.copyfile(source, target)
        return target
    image = Image.open(source).convert("RGB")
    if kind == "jpeg":
        target = target_stem.with_suffix(".jpg")
        image.save(target, quality=int(rng.integers(50, 76)))
        return target
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    if kind == "shift":
        while True:
            dy, dx = rng.integers(-2, 3, size=2)
            if dy or dx:
                break
        padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)), mode="edge")
        out = Image.fromarray(padded[2 - dy:2 - dy + h, 2 - dx:2 - dx + w])
    elif kind == "crop":
        side = np.sqrt(rng.uniform(0.90, 0.95))
        ch, cw = max(1, round(h * side)), max(1, round(w * side))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out = image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)
    elif kind == "flip":
        out = image.transpose(Image.FLIP_LEFT_RIGHT)
    else:
        raise ValueError(kind)
    target = target_stem.with_suffix(".png")
    out.save(target)
    return target


def build_injected(data: Path, work: Path, fraction: float, seed: int) -> tuple[Path, dict, dict]:
    """(folder, family of each id, kind of each copy's id): originals linked, copies written."""
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"--data {data}: no images found")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), round(fraction * len(files)), replace=False)
    folder = work / "injected"
    if folder.exists():
        shutil.rmtree(folder)
    family, kind_of = {}, {}
    for i, path in enumerate(files):
        rel = path.relative_to(data)
        (folder / rel.parent).mkdir(parents=True, exist_ok=True)
        (folder / rel).symlink_to(path.resolve())
        family[str(rel)] = i
    for n, i in enumerate(chosen):
        kind = KINDS[n % len(KINDS)]
        rel = files[i].relative_to(data)
        copy = make_copy(kind, files[i], folder / rel.parent / f"zz-{kind}-{rel.stem}", rng)
        copy_id = str(copy.relative_to(folder))
        family[copy_id], kind_of[copy_id] = int(i), kind
    return folder, family, kind_of


def id_pair(a: str, b: str) -> tuple[str, str]:
    """The key of a pair of sample ids, whichever comes first."""
    return tuple(sorted((a, b)))


def targets_met(scores: dict) -> bool:
    """The issue's targets: precision and recall >= 0.95, <= 0.5% of the clean set flagged."""
    return scores["precision"] >= 0.95 and scores["recall"] >= 0.95 and scores["clean"]["flagged"] <= 0.005


def read_labels(path: str | None) -> dict:
    """{(a, b) sorted ids of two originals: True where a person judged them one photograph}."""
    if path is None:
        return {}
    import csv

    labels = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["verdict"] not in ("same", "different"):
                raise SystemExit(f"{path}: verdict {row['verdict']!r} of {row['a']}, {row['b']}: expected same or different")
            labels[id_pair(row["a"], row["b"])] = row["verdict"] == "same"
    return labels


def pair_scores(groups: list[list[int]], ids: list[str], family: dict, kind_of: dict, same: dict | None = None) -> dict:
    """Precision and recall of the flagged pairs (every pair inside a group), overall and per
    kind; with ``same`` (``read_labels``), a pair of two originals labelled same is correct."""
    family_of = np.array([family[i] for i in ids])
    truth = {}  # (a, b) sorted row pair -> kind, for every original-copy pair
    row_of = {sample: r for r, sample in enumerate(ids)}
    originals = {family[i]: row_of[i] for i in ids if i not in kind_of}
    for copy_id, kind in kind_of.items():
        truth[tuple(sorted((originals[family[copy_id]], row_of[copy_id])))] = kind
    flagged = [tuple(sorted(p)) for g in groups for p in combinations(g, 2)]
    correct = {p for p in flagged if family_of[p[0]] == family_of[p[1]]
               or (same or {}).get(id_pair(ids[p[0]], ids[p[1]]), False)}
    found = {p for p in correct if p in truth}
    kind_row = {row_of[c]: k for c, k in kind_of.items()}
    scores = {"flagged_pairs": len(flagged), "correct": len(correct),
              "precision": round(len(correct) / len(flagged), 4) if flagged else 1.0,
              "recall": round(len(found) / len(truth), 4) if truth else 1.0,
              "false_pairs_of_originals": sum(p[0] not in kind_row and p[1] not in kind_row and p not in correct
                                              for p in flagged)}
    for kind in KINDS:
        involving = [p for p in flagged if kind_row.get(p[0]) == kind or kind_row.get(p[1]) == kind]
        good = [p for p in involving if family_of[p[0]] == family_of[p[1]]]
        total = sum(k == kind for k in truth.values())
        scores[kind] = {"recall": round(sum(truth.get(p) == kind for p in found) / total, 4) if total else None,
                        "precision": round(len(good) / len(involving), 4) if involving else 1.0}
    return scores


def clean_scores(groups: list[list[int]], n: int, ids: list[str] | None = None, same: dict | None = None) -> dict:
    """On the originals: the share in any group (``flagged``) and the share the keep-list drops;
    with ``same`` (``read_labels``) only originals with no partner labelled same in their group
    count as flagged (a dropped member counts when it is not the same as its group's first)."""
    def alike(i, j):
        return bool(same) and same.get(id_pair(ids[i], ids[j]), False)

    flagged = sum(not any(alike(i, j) for j in g if j != i) for g in groups for i in g)
    dropped = sum(not alike(g[0], i) for g in groups for i in g[1:])
    return {"groups": len(groups), "flagged": round(flagged / n, 4), "dropped": round(dropped / n, 4),
            "largest_group": max((len(g) for g in groups), default=0)}


def original_pairs(groups: list[list[int]], ids: list[str], kind_of: dict) -> set:
    """Sorted id pairs of two originals inside one group."""
    return {id_pair(ids[a], ids[b]) for g in groups for a, b in combinations(g, 2)
            if ids[a] not in kind_of and ids[b] not in kind_of}


def save_sheets(pairs: list[tuple[str, str, float]], data: Path, folder: Path, per_sheet: int = 12) -> None:
    """Numbered sheets of image pairs to judge (4x enlarged, number above each pair) and ``to_label.csv``."""
    from PIL import ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "to_label.csv", "w") as f:
        f.write("n,a,b,score,verdict\n" + "".join(f"{n},{a},{b},{s:.4f},\n" for n, (a, b, s) in enumerate(pairs)))
    for start in range(0, len(pairs), per_sheet):
        tiles = []
        for n, (a, b, s) in enumerate(pairs[start:start + per_sheet], start):
            left, right = (Image.open(data / i).convert("RGB").resize((128, 128), Image.NEAREST) for i in (a, b))
            tile = Image.new("RGB", (128 * 2 + 8, 128 + 16), "white")
            tile.paste(left, (0, 16))
            tile.paste(right, (136, 16))
            ImageDraw.Draw(tile).text((2, 2), f"{n}  {s:.3f}", fill="black")
            tiles.append(tile)
        sheet = Image.new("RGB", ((264 + 16) * 3, (144 + 8) * ((len(tiles) + 2) // 3)), "white")
        for t, tile in enumerate(tiles):
            sheet.paste(tile, ((t % 3) * 280, (t // 3) * 152))
        sheet.save(folder / f"sheet-{start // per_sheet}.png")
    print(f"wrote {len(pairs)} unlabelled pairs of originals to {folder}/to_label.csv and sheet-*.png")


def similarity_profile(x: np.ndarray, ids: list[str], family: dict, kind_of: dict, clean_rows: np.ndarray) -> dict:
    """Per kind: cosine of original and copy; clean set: the 99.5th percentile of nearest-other similarity."""
    from selfsup.evaluate.neighbours import NeighborIndex

    row_of = {sample: r for r, sample in enumerate(ids)}
    originals = {family[i]: row_of[i] for i in ids if i not in kind_of}
    profile = {}
    for kind in KINDS:
        pairs = [(originals[family[c]], row_of[c]) for c, k in kind_of.items() if k == kind]
        s = np.array([float(x[a] @ x[b]) for a, b in pairs])
        profile[kind] = {"min": round(float(s.min()), 4), "p5": round(float(np.percentile(s, 5)), 4),
                         "median": round(float(np.median(s)), 4)}
    clean = np.ascontiguousarray(x[clean_rows])
    similarity, _ = NeighborIndex("flat").fit(clean).search(clean, 2)
    nearest_other = similarity[:, 1]
    profile["clean_nearest_other"] = {"p99.5": round(float(np.percentile(nearest_other, 99.5)), 4),
                                      "p99": round(float(np.percentile(nearest_other, 99)), 4),
                                      "median": round(float(np.median(nearest_other)), 4)}
    return profile


def save_montage(groups: list[list[str]], data: Path, path: Path) -> None:
    """Each group's first two images side by side, 8 groups a row, 3x enlarged."""
    tiles = []
    for group in groups:
        a, b = (np.asarray(Image.open(data / i).convert("RGB").resize((32, 32))) for i in group[:2])
        tiles.append(np.concatenate([a, np.zeros((32, 2, 3), np.uint8), b, np.full((32, 8, 3), 255, np.uint8)], 1))
    if not tiles:
        return
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 8)
    grid = np.concatenate([np.concatenate(tiles[r:r + 8], 1) for r in range(0, len(tiles), 8)], 0)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)
    print(f"wrote {path}: the clean set's {len(groups)} groups, the first two members of each, row by row")


def pretrain_encoder(data: str, epochs: int, out: Path) -> Path:
    from selfsup.config import PretrainConfig
    from selfsup.tasks import pretrain

    pretrain(PretrainConfig(data=data, method="simclr", backbone="smallcnn", epochs=epochs, out=str(out),
                            report=False))
    return out


def main() -> None:
    from selfsup.tasks.common import load_embeddings
    from selfsup.tasks import dedupe as dd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of original images (e.g. cifar10-jpg/test)")
    parser.add_argument("--run", help="a pretrained run directory (default: pretrain SimCLR on --pretrain-data)")
    parser.add_argument("--pretrain-data", help="images to pretrain on when --run is not given")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", default="/tmp/dedupe-injected", help="scratch directory")
    parser.add_argument("--fraction", type=float, default=0.05, help="share of originals that get a copy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", help="CSV a,b,score,verdict (same|different) of original pairs judged by a person")
    parser.add_argument("--sheets", help="folder: write the original pairs the labels lack, as numbered sheets to judge")
    parser.add_argument("--label-from", type=float, default=0.95,
                        help="--sheets covers pixel groups at thresholds from this one up")
    parser.add_argument("--montage", help="a PNG of the clean set's groups at the defaults (first two members of each), "
                                          "to judge by eye whether they are duplicates")
    args = parser.parse_args()
    same = read_labels(args.labels)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    if args.run is None:
        if args.pretrain_data is None:
            raise SystemExit("give --run or --pretrain-data")
        args.run = str(pretrain_encoder(args.pretrain_data, args.epochs, work / "run"))
        print(f"pretrained {args.run} in {time.perf_counter() - started:.0f} s", flush=True)
    folder, family, kind_of = build_injected(Path(args.data), work, args.fraction, args.seed)
    embedded = load_embeddings(args.run, str(folder))
    ids = embedded.ids
    clean_rows = np.array([r for r, i in enumerate(ids) if i not in kind_of])
    clean_ids = [ids[r] for r in clean_rows]
    clean_row = {sample: r for r, sample in enumerate(clean_ids)}
    print(f"{len(ids)} images, {len(kind_of)} injected copies ({len(kind_of) // len(KINDS)} of each kind), "
          f"{len(clean_rows)} originals", flush=True)

    profile = similarity_profile(dd._centred_unit(embedded.embeddings, True), ids, family, kind_of, clean_rows)
    print("\ncosine of original and copy (centred embeddings of the injected set):\n\n| kind | min | 5th pct | median |\n"
          "|---|---|---|---|")
    for kind in KINDS:
        p = profile[kind]
        print(f"| {kind} | {p['min']} | {p['p5']} | {p['median']} |")
    c = profile["clean_nearest_other"]
    print(f"\nclean set, each image's cosine to its nearest other image: median {c['median']}, "
          f"99th pct {c['p99']}, 99.5th pct {c['p99.5']}", flush=True)

    images = dd.copy_images(embedded.source.samples)
    pixel_pairs, clean_pixel_pairs = dd.copy_pairs(images), dd.copy_pairs(images[clean_rows])
    representations = {  # name: (groups of the injected set, groups of the clean set) at a threshold
        "embedding": (lambda t: dd.duplicate_groups(embedded.embeddings, t),
                      lambda t: dd.duplicate_groups(embedded.embeddings[clean_rows], t)),
        "pixels": (lambda t: dd.groups_from_pairs(len(ids), *pixel_pairs, t),
                   lambda t: dd.groups_from_pairs(len(clean_rows), *clean_pixel_pairs, t))}
    sweep, to_judge = {}, {}
    for by, (injected_groups, clean_groups) in representations.items():
        print(f"\nby={by}:\n\n| threshold | precision | recall | " + " | ".join(f"{k} P / R" for k in KINDS)
              + " | flagged pairs | clean: flagged | clean: dropped | clean: groups (largest) |\n|"
              + "---|" * (8 + len(KINDS)))
        sweep[by] = {}
        for threshold in SWEEP[by]:
            grouped, clean_grouped = injected_groups(threshold), clean_groups(threshold)
            scores = pair_scores(grouped, ids, family, kind_of)
            clean = clean_scores(clean_grouped, len(clean_rows))
            sweep[by][threshold] = {**scores, "clean": clean}
            line = (f"| {threshold} | {scores['precision']} | {scores['recall']} | "
                    + " | ".join(f"{scores[k]['precision']} / {scores[k]['recall']}" for k in KINDS)
                    + f" | {scores['flagged_pairs']} | {clean['flagged']} | {clean['dropped']} | "
                      f"{clean['groups']} ({clean['largest_group']}) |")
            if by == "pixels" and threshold >= args.label_from:
                to_judge[threshold] = (original_pairs(grouped, ids, kind_of)
                                       | original_pairs(clean_grouped, clean_ids, {}))
            if same and by == "pixels":
                labelled = {**pair_scores(grouped, ids, family, kind_of, same),
                            "clean": clean_scores(clean_grouped, len(clean_rows), clean_ids, same)}
                sweep[by][threshold]["labelled"] = labelled
                unjudged = sum(p not in same for p in to_judge.get(threshold, ()))
                line += (f" labelled: P {labelled['precision']}, clean flagged {labelled['clean']['flagged']}, "
                         f"dropped {labelled['clean']['dropped']}" + (f" ({unjudged} pairs unjudged)" if unjudged else ""))
            print(line, flush=True)

    if args.sheets:
        unlabelled = sorted({p for pairs in to_judge.values() for p in pairs} - set(same))
        rows = np.array([[clean_row[a], clean_row[b]] for a, b in unlabelled]).reshape(-1, 2)
        scores = dd.copy_similarity(images[clean_rows], rows) if len(rows) else []
        save_sheets([(a, b, float(s)) for (a, b), s in zip(unlabelled, scores)], Path(args.data), Path(args.sheets))
    result = dd.dedupe(args.run, str(folder))
    clean_result = dd.dedupe(args.run, args.data)
    by, default = result["by"], result["threshold"]
    row_of = {sample: r for r, sample in enumerate(ids)}
    groups = [[row_of[i] for i in g] for g in result["groups"]]
    at_default = {**pair_scores(groups, ids, family, kind_of),
                  "clean": clean_scores(clean_result["groups"], clean_result["samples"])}
    if same:
        clean_groups_at_default = [[clean_row[i] for i in g] for g in clean_result["groups"]]
        at_default["labelled"] = {**pair_scores(groups, ids, family, kind_of, same),
                                  "clean": clean_scores(clean_groups_at_default, len(clean_ids), clean_ids, same)}
    if args.montage:
        save_montage(clean_result["groups"], Path(args.data), Path(args.montage))
    row = sweep[by].get(default, {})
    agrees = {k: at_default[k] for k in ("precision", "recall", "clean")} == {k: row.get(k) for k in ("precision", "recall", "clean")}
    print(f"\nselfsup dedupe at its defaults (by={by}, threshold {default}): precision {at_default['precision']}, "
          f"recall {at_default['recall']}, clean set flagged {at_default['clean']['flagged']} "
          f"(dropped {at_default['clean']['dropped']}); same as the sweep's row: {agrees}")
    met = {"raw": targets_met(at_default)}  # "judged" too with --labels: scored with the judged pairs
    print(f"targets (P, R >= 0.95, clean flagged <= 0.005) met at the defaults: {met['raw']}")
    if same:
        judged = at_default["labelled"]
        met["judged"] = targets_met(judged)
        print(f"with the labels: precision {judged['precision']}, recall {judged['recall']}, clean set wrongly "
              f"flagged {judged['clean']['flagged']} (dropped {judged['clean']['dropped']}); targets met: "
              f"{met['judged']}")
    print(f"seconds {time.perf_counter() - started:.0f}; load average at end {os.getloadavg()}")
    print("RESULT " + json.dumps({"images": len(ids), "copies": len(kind_of), "run": args.run, "profile": profile,
                                  "sweep": {by: {str(t): r for t, r in rows.items()} for by, rows in sweep.items()},
                                  "default": {"by": by, "threshold": default},
                                  "at_default": at_default, "agrees_with_sweep": agrees, "targets_met": met}))


if __name__ == "__main__":
    main()
