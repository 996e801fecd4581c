"""WebDataset tar shards: written by ``selfsup pack``, read with random access.

``pack_folder`` writes a folder's images into tar shards with the ``webdataset`` package's
``ShardWriter`` (the layout img2dataset and OpenCLIP use: one ``KEY.jpg``/``.png``/... member
per image, ``KEY.cls`` with its class index when the folder has class sub-folders), and
``classes.json`` beside them. The files' bytes are copied as they are, or re-encoded as JPEG
(quality 95) with the short side resized to ``image_size`` (the aspect ratio kept, so crops
can still come from the whole image); TIFF files are always copied, since JPEG would keep
three of a stack's C planes.

Reading: ``open_shards`` indexes every member of the shards (a directory of ``*.tar``, one
``.tar``, or a brace pattern such as ``DIR/{000000..000099}.tar``) by its byte offset, in
parallel over the shards, without decoding anything. A shard source is then a
``StreamSource`` whose samples are shard members: training crops them in worker processes
exactly as it crops a streamed folder's files (each rank and worker reads the samples of its
slice of each batch), so ``--resume`` replays the same crops. Sequential readers such as
webdataset's own ``WebDataset`` cannot seek to a sample; the index is what gives that.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from selfsup.data.base import DataError
from selfsup.errors import ConfigError
from selfsup.data.sources import IMAGE_EXTENSIONS

CLASSES = "classes.json"


@dataclass(frozen=True)
class Member:
    """One image inside a tar shard, read by seeking to its bytes."""

    shard: str
    offset: int
    size: int
    name: str

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def open_bytes(self) -> io.BytesIO:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = io.BytesIO(f.read(self.size))
        data.name = self.name
        return data

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def shard_paths(spec: str) -> list[Path]:
    """The shards ``spec`` names: a directory's ``*.tar`` files, one ``.tar`` file, or a brace
    pattern (``DIR/{000000..000009}.tar``), in order."""
    if "{" in spec:
        from braceexpand import braceexpand

        paths = [Path(p) for p in braceexpand(spec)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: no such shard (of {len(paths)} in {spec})")
        return paths
    path = Path(spec)
    return sorted(path.glob("*.tar")) if path.is_dir() else [path]


def is_shards(path: Path) -> bool:
    """Whether ``path`` names tar shards: a pattern or a file ending in .tar, or a directory
    holding .tar files and no image files at its top."""
    text = str(path)
    if "{" in text and ".tar" in text:
        return True
    if path.is_file():
        return path.suffix == ".tar"
    if path.is_dir():
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_file()]
        return any(n.endswith(".tar") for n in names) and not any(n.lower().endswith(IMAGE_EXTENSIONS) for n in names)
    return False


def _index_shard(shard: Path) -> tuple[list[Member], dict[str, int]]:
    images, labels = [], {}
    try:
        with tarfile.open(shard) as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, _, extension = info.name.partition(".")
                if extension == "cls":
                    labels[key] = int(tar.extractfile(info).read().decode().strip())
                elif ("." + extension).lower().endswith(IMAGE_EXTENSIONS):
                    images.append(Member(str(shard), info.offset_data, info.size, info.name))
    except (tarfile.TarError, OSError, ValueError) as error:
        raise DataError(f"{shard}: cannot read tar shard ({error})") from None
    return images, labels


def open_shards(spec: str, image_size: int | None = None):
    """A ``StreamSource`` over every image member of the shards ``spec`` names."""
    from selfsup.data.stream import StreamSource, choose_channels, choose_size
    from selfsup.progress import stage

    shards = shard_paths(spec)
    if not shards:
        raise DataError(f"{spec}: no .tar shards")
    with ThreadPoolExecutor(min(16, 2 * (os.cpu_count() or 1))) as pool:
        parts = list(pool.map(_index_shard, shards))
    members = [m for images, _ in parts for m in images]
    if not members:
        raise DataError(f"{spec}: the {len(shards)} shard(s) hold no image files")
    found = {key: label for _, labels in parts for key, label in labels.items()}
    keys = [m.name.partition(".")[0] for m in members]
    labels = classes = None
    if found and all(k in found for k in keys):
        labels = torch.tensor([found[k] for k in keys], dtype=torch.long)
        listing = shards[0].parent / CLASSES
        classes = json.loads(listing.read_text()) if listing.is_file() else \
            [str(c) for c in range(int(labels.max()) + 1)]
    root = shards[0].parent
    size = image_size or choose_size(members[:256], spec)
    channels = choose_channels(members[:64], spec)
    stage("streaming %d images from %d shard(s) at %d px", len(members), len(shards), size)
    return StreamSource(Path(spec).name, root, [str(m) for m in members], size, labels, classes, members=members,
                        channels=channels)


def pack_folder(folder: str | os.PathLike, out: str | os.PathLike, image_size: int | None = None,
                shard_size: int = 1000) -> dict:
    """Write the images below ``folder`` into tar shards in ``out``; returns what was written."""
    import webdataset as wds
    from PIL import Image, ImageOps

    from selfsup.atomic import check_output, write_text
    from selfsup.data.stream import index_folder
    from selfsup.progress import bar

    folder, out = Path(folder), check_output(out, "folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    if image_size is not None and not 8 <= image_size <= 4096:
        raise ConfigError(f"image_size={image_size}: expected 8 to 4096 (pixels of the short side)")
    if isinstance(shard_size, bool) or not 1 <= shard_size <= 10**7:
        raise ConfigError(f"shard_size={shard_size}: expected 1 to 10000000 images a shard")
    if out.exists() and any(out.glob("*.tar")):
        raise DataError(f"{out}: already holds shards; choose another --out")
    files, labels, classes = index_folder(folder)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    with wds.ShardWriter(str(out / "%06d.tar"), maxcount=shard_size, verbose=0) as sink:
        for i, name in enumerate(bar(files, desc="packing", unit="img")):
            path = folder / name
            extension = path.suffix.lower().lstrip(".").replace("jpeg", "jpg")
            data = path.read_bytes()
            if image_size and extension not in ("tif", "tiff"):  # TIFF stacks keep their planes as they are
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        image = ImageOps.exif_transpose(image).convert("RGB")
                        scale = image_size / min(image.size)
                        if scale < 1:
                            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                                 Image.Resampling.BICUBIC, reducing_gap=3.0)
                        buffer = io.BytesIO()
                        image.save(buffer, "JPEG", quality=95)
                        data, extension = buffer.getvalue(), "jpg"
                except Exception as error:
                    skipped.append((str(path), f"cannot decode ({type(error).__name__})"))
                    continue
            sample = {"__key__": f"{i:09d}", extension: data}
            if labels is not None:
                sample["cls"] = str(int(labels[i])).encode()
            sink.write(sample)
            written += 1
    if classes is not None:
        write_text(out / CLASSES, json.dumps(classes) + "\n")
    return {"images": written, "shards": len(list(out.glob("*.tar"))), "skipped": skipped,
            "classes": classes}
