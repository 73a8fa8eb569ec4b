"""What `ns shard` reads: the images of a collection, in a stable order, with keys and labels.

Four kinds of source, detected by `kind="auto"`:
- `list`: a `.csv` (`path[,label]`, optional `path,label` header) or `.jsonl` (`{"path", "label"}`)
  file; paths are relative to the list's folder; labels are class indices, or names with a
  classes file.
- `webdataset`: a `.tar`, `.tar.gz` or `.tgz`, or a folder of them (any WebDataset writer);
  labels from `KEY.cls`. A damaged tar gives the samples before the damage, listed in
  `Source.damaged` (or, with `strict`, raises DataError). See `ns_data.ingest.tar_listing`.
- `imagefolder`: a folder holding only class folders (labeled; classes are the sorted folder names
  or the lines of a classes file).
- `folder`: any other folder, walked recursively (unlabeled).

Sample keys are the relative path without its extension, with every ASCII character other than
letters, digits, `_`, `-` and `/` replaced by `_` (`a.b.jpg` gives `a_b`), so they hold no dots, are
stable and name the file. A part of the path with other characters is spelt in ASCII where NFKD
allows, plus a short hash of the part (`café` gives `cafe-` and 8 hex digits, `собака` the hash
alone), so different names keep different keys; so is a first folder that reads `__NAME__`, which
webdataset would skip as metadata. Hidden files (`.name`) are skipped; folders and lists keep their
sorted order. Links that lead out of a source folder are not followed but rejected.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import unicodedata
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ns_data.errors import DataError
from ns_data.images.formats import READ_EXTS
from ns_data.ingest.tar_listing import READ_ERRORS, is_compressed, is_tar, list_tar
from ns_data.shards.manifest import MANIFEST_NAME, Manifest
from ns_data.shards.writer import is_valid_key

SourceKind = Literal["auto", "imagefolder", "folder", "list", "webdataset"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("auto", "imagefolder", "folder", "list", "webdataset")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]")


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One candidate sample: where its bytes lie (a file, or a member of a tar) and its label."""

    key: str
    origin: str  # what messages and rejected.jsonl name: a relative path or `TAR:member`
    path: str
    offset: int  # in a .tar.gz: in the uncompressed stream
    size: int
    stamp: int  # mtime (ns) of `path`: part of the resume fingerprint
    label: int | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A file that is not written, and why."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class Source:
    """A resolved source: its items in order, class names (None: unlabeled) and known rejections.

    `damaged` holds one entry per damaged tar (its samples before the damage are in `items`).
    """

    kind: SourceKind
    root: Path
    items: list[SourceItem]
    classes: list[str] | None
    rejected: list[Rejection] = field(default_factory=list)
    damaged: list[Rejection] = field(default_factory=list)

    @property
    def description(self) -> str:
        return f"{self.kind}:{self.root}"


def sample_key(relative: str) -> str:
    """The sample key of a relative path: no extension, ASCII only, valid for webdataset and DALI."""
    head, name = posixpath.split(posixpath.normpath(relative).lstrip("/"))
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    parts = posixpath.join(head, stem).split("/")
    key = "/".join(map(_key_part, parts))
    if not is_valid_key(key):  # a first folder `__NAME__`: webdataset would skip it as metadata
        key = "/".join([_key_part(parts[0], hashed=True), *key.split("/")[1:]])
    return key


def _key_part(part: str, hashed: bool = False) -> str:
    """`part` with unsafe ASCII as `_`; with other characters (or `hashed`), spelt in ASCII by
    NFKD where it can be, plus a hash of `part`."""
    if part.isascii() and not hashed:
        return _UNSAFE.sub("_", part)
    spelt = _UNSAFE.sub("_", "".join(c for c in unicodedata.normalize("NFKD", part) if c.isascii()))
    original = unicodedata.normalize("NFC", part).encode(errors="surrogateescape")
    digest = hashlib.blake2s(original, digest_size=4).hexdigest()
    return f"{spelt}-{digest}" if spelt else digest


def read_source(
    path: str | os.PathLike[str],
    *,
    kind: SourceKind = "auto",
    classes_file: Path | None = None,
    strict: bool = False,
) -> Source:
    """Resolve `path` into a Source; raise DataError naming the file and the fix on bad input.

    With `strict`, a damaged tar raises DataError instead of giving the samples before the damage.
    """
    root = Path(path).absolute()
    if not root.exists():
        raise DataError(
            f"source {root} does not exist; pass an image folder, a .csv/.jsonl list or tar shards"
        )
    classes = read_classes(classes_file) if classes_file is not None else None
    kind = _detect(root) if kind == "auto" else kind
    if kind == "list":
        source = _read_list(root, classes, classes_file)
    elif kind == "webdataset":
        source = _read_tars(root, classes, classes_file, strict)
    elif kind == "imagefolder":
        source = _read_imagefolder(root, classes, classes_file)
    else:
        files, outside = _walk(root)
        items = [_file_item(root, rel, None) for rel in files]
        source = Source("folder", root, items, None, outside)
    if not source.items and not source.rejected and not source.damaged:
        raise DataError(f"source {root} holds no files; point it at a folder or list with images")
    _check_unique(source.items)
    return source


def read_classes(path: Path) -> list[str]:
    """Class names, one per line (blank lines skipped); raise DataError on duplicates."""
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as err:
        raise DataError(f"cannot read classes file {path}: {err.strerror}; check the path") from err
    if not names:
        raise DataError(f"classes file {path} is empty; write one class name per line")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"classes file {path} repeats {duplicates[0]!r}; list each class once")
    return names


def _detect(root: Path) -> SourceKind:
    if root.is_file():
        if root.suffix.lower() in (".csv", ".jsonl"):
            return "list"
        if is_tar(root.name):
            return "webdataset"
        raise DataError(
            f"source {root} is a file but not a .csv, .jsonl, .tar, .tar.gz or .tgz; pass a folder"
        )
    entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
    if any(is_tar(e.name) and e.is_file() for e in entries):
        return "webdataset"
    if entries and all(e.is_dir() for e in entries):
        return "imagefolder"
    return "folder"


def _walk(root: Path) -> tuple[list[str], list[Rejection]]:
    """Relative POSIX paths of the non-hidden files under `root`, sorted, and the links that lead
    out of `root` (not followed: they could pull in a private folder). Links inside are followed."""
    found: list[str] = []
    outside: list[Rejection] = []
    _walk_into(root, "", {_identity(root)}, os.path.realpath(root), found, outside)
    return sorted(found), sorted(outside, key=lambda r: r.origin)


def _walk_into(
    directory: Path,
    prefix: str,
    ancestors: set[tuple[int, int]],
    real_root: str,
    found: list[str],
    outside: list[Rejection],
) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list {directory}: {err.strerror}; fix its permissions") from err
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = prefix + entry.name
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if os.path.exists(target) and os.path.commonpath([real_root, target]) != real_root:
                why = f"a link to {target}, outside the source folder: not followed"
                outside.append(Rejection(rel, why))
                continue
        if entry.is_dir():
            identity = _identity(Path(entry.path))
            if identity in ancestors:
                raise DataError(
                    f"{entry.path} is a symlink loop (it leads to a parent folder); remove the link"
                )
            _walk_into(
                Path(entry.path), rel + "/", ancestors | {identity}, real_root, found, outside
            )
        elif entry.is_file():
            found.append(rel)
        else:
            raise DataError(f"{entry.path} is a broken link or not a regular file; remove it")


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _file_item(root: Path, rel: str, label: int | None, key: str | None = None) -> SourceItem:
    path = root / rel
    try:
        st = path.stat()
        readable = os.access(path, os.R_OK)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}; fix the path or remove it") from err
    if not readable:
        raise DataError(f"cannot read {path}: permission denied; fix its permissions or remove it")
    return SourceItem(
        key=key or sample_key(rel),
        origin=rel,
        path=str(path),
        offset=0,
        size=st.st_size,
        stamp=st.st_mtime_ns,
        label=label,
    )


def _read_imagefolder(root: Path, classes: list[str] | None, classes_file: Path | None) -> Source:
    if not root.is_dir():
        raise DataError(
            f"source {root} is not a folder; an ImageFolder tree has one folder per class"
        )
    files, outside = _walk(root)
    loose = [rel for rel in files if "/" not in rel]
    if loose:
        raise DataError(
            f"{root / loose[0]} is not in a class folder; move it into one, or pass --kind folder"
        )
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    names = classes if classes is not None else folders
    index = {name: i for i, name in enumerate(names)}
    for folder in folders:
        if folder not in index:
            raise DataError(
                f"class folder {root / folder} is not in {classes_file}; add it or remove it"
            )
    items = [_file_item(root, rel, index[rel.split("/", 1)[0]]) for rel in files]
    return Source("imagefolder", root, items, names, outside)


def _read_list(root: Path, classes: list[str] | None, classes_file: Path | None) -> Source:
    rows = list(_list_rows(root))
    if not rows:
        raise DataError(f"list {root} has no rows; write one `path[,label]` per line")
    labeled = rows[0][2] is not None
    labels: list[int | None] = []
    for line, _, value in rows:
        if (value is not None) != labeled:
            raise DataError(f"{root}:{line}: every row needs a label or none does; fix this row")
        labels.append(
            None if value is None else _label(value, classes, f"{root}:{line}", classes_file)
        )
    if labeled and classes is None:
        classes = [str(i) for i in range(max(label or 0 for label in labels) + 1)]
    base = root.parent
    items = []
    for (line, rel, _), label in zip(rows, labels, strict=True):
        if not (base / rel).is_file():
            raise DataError(
                f"{root}:{line}: {base / rel} is not a file; fix the path (relative to {base})"
            )
        items.append(_file_item(base, rel, label, key=sample_key(rel)))
    return Source("list", root, items, classes if labeled else None)


def _list_rows(path: Path) -> Iterator[tuple[int, str, str | int | None]]:
    """(line number, path, label or None) for each row of a CSV or JSONL list."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read list {path}: {err}; check the file") from err
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                yield number, str(row["path"]), row.get("label")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
                raise DataError(
                    f'{path}:{number}: not a JSON object with "path" ({err}); fix the row'
                ) from err
        return
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and row[0].strip().lower() == "path":
            continue
        if len(row) > 2:
            raise DataError(f"{path}:{number}: expected `path[,label]`, got {len(row)} columns")
        yield number, row[0].strip(), row[1].strip() if len(row) == 2 else None


def _label(
    value: str | int, classes: list[str] | None, where: str, classes_file: Path | None
) -> int:
    """A class index from a name (with a classes file) or an integer index."""
    if classes is not None and isinstance(value, str) and value in classes:
        return classes.index(value)
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = None
    if index is None or isinstance(value, bool) or str(index) != str(value).strip():
        if classes is None:
            raise DataError(
                f"{where}: label {value!r} is not an integer class index; "
                "pass --classes FILE to use class names"
            )
        raise DataError(
            f"{where}: unknown class {value!r}; add it to {classes_file} or fix the row"
        )
    if index < 0 or (classes is not None and index >= len(classes)):
        limit = f"[0, {len(classes)})" if classes is not None else "0 or more"
        raise DataError(f"{where}: class index {index} is out of range ({limit}); fix the row")
    return index


def _read_tars(
    root: Path, classes: list[str] | None, classes_file: Path | None, strict: bool
) -> Source:
    items: list[SourceItem] = []
    rejected: list[Rejection] = []
    damaged: list[Rejection] = []
    for tar in _tar_files(root):
        stamp = tar.stat().st_mtime_ns
        listing = list_tar(tar)
        if listing.damage and strict:
            raise DataError(
                f"{tar} is a damaged tar: {listing.damage}; rebuild or remove it "
                "(without --strict the samples before the damage are kept)"
            )
        if listing.damage:
            kept = sum(sample.image is not None for sample in listing.samples)
            damaged.append(
                Rejection(
                    tar.name, f"damaged tar: {listing.damage}; kept {_samples(kept)} before it"
                )
            )
        rejected += [Rejection(f"{tar.name}:{name}", why) for name, why in listing.refused]
        for sample in listing.samples:
            origin = f"{tar.name}:{sample.key}"
            if sample.image is None:
                rejected.append(Rejection(origin, f"no image member ({', '.join(READ_EXTS)})"))
                continue
            label = None if sample.label is None else _tar_label(sample.label, origin)
            items.append(
                SourceItem(sample_key(sample.key), origin, str(tar), *sample.image, stamp, label)
            )
    raw_labels = [item.label for item in items]
    labeled = any(label is not None for label in raw_labels)
    if labeled and None in raw_labels:
        missing = items[raw_labels.index(None)]
        raise DataError(f"{missing.origin} has no .cls while other samples do; label it or drop it")
    if labeled and classes is None:
        manifest = root / MANIFEST_NAME
        if root.is_dir() and manifest.is_file():
            classes = Manifest.load(root).classes
        else:
            classes = [str(i) for i in range(max(label or 0 for label in raw_labels) + 1)]
    if labeled:
        assert classes is not None
        for item in items:
            if item.label is None or not 0 <= item.label < len(classes):
                raise DataError(
                    f"{item.origin}: class index {item.label} is out of range [0, {len(classes)}); "
                    f"fix the shard or pass --classes FILE"
                )
    return Source("webdataset", root, items, classes if labeled else None, rejected, damaged)


def _tar_files(root: Path) -> list[Path]:
    """`root` itself, or the .tar, .tar.gz and .tgz files in it (not hidden), sorted by name."""
    if root.is_file():
        return [root]
    names = (e.name for e in os.scandir(root) if e.is_file() and not e.name.startswith("."))
    return sorted(root / name for name in names if is_tar(name))


def _samples(count: int) -> str:
    return f"{count} sample" + ("" if count == 1 else "s")


def _tar_label(text: str, origin: str) -> int:
    if not text.isdigit():
        raise DataError(f"{origin}.cls holds {text!r}, not a class index; fix the shard")
    return int(text)


def _check_unique(items: list[SourceItem]) -> None:
    seen: dict[str, str] = {}
    for item in items:
        other = seen.get(item.key)
        if other is None:
            seen[item.key] = item.origin
            continue
        if other == item.origin:
            raise DataError(f"{item.origin} is listed twice; keep one row per file")
        raise DataError(
            f"{item.origin} and {other} both give sample key {item.key!r}; rename one of them"
        )


def read_bytes(item: SourceItem) -> bytes:
    """The stored bytes of `item`; raise DataError when it cannot be read or changed size.

    A member of a .tar.gz is reached by decompressing the tar up to it: use `read_items` for many.
    """
    with _open_item(item) as handle:
        return _read_item(handle, item)


def read_items(items: Iterable[SourceItem]) -> Generator[bytes, None, None]:
    """The stored bytes of each item in turn (see `read_bytes`), one open file at a time.

    A .tar.gz can only be decompressed forward: its items in member order cost one pass over it,
    and memory holds one item.
    """
    path, handle = "", None
    try:
        for item in items:
            if handle is None or item.path != path:
                if handle is not None:
                    handle.close()
                handle = _open_item(item)
                path = item.path
            yield _read_item(handle, item)
    finally:
        if handle is not None:
            handle.close()


def _open_item(item: SourceItem) -> io.BufferedIOBase:
    try:
        return gzip.open(item.path, "rb") if is_compressed(item.path) else open(item.path, "rb")
    except OSError as err:
        raise DataError(
            f"cannot read {item.path}: {err.strerror}; fix its permissions or remove it"
        ) from err


def _read_item(handle: io.BufferedIOBase, item: SourceItem) -> bytes:
    try:
        handle.seek(item.offset)
        data = handle.read(item.size)
    except READ_ERRORS as err:
        raise DataError(
            f"cannot read {item.origin} from {item.path} ({err}); fix or remove it, then rerun"
        ) from err
    if len(data) != item.size:
        raise DataError(f"{item.path} changed while being sharded; rerun `ns shard` to resume")
    return data
