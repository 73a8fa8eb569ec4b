"""List the samples of one WebDataset tar (`.tar`, `.tar.gz` or `.tgz`) in one forward pass.

Members are grouped into samples by key (the member path up to its first dot), as webdataset
does; a member repeating an extension of its key, or a second image, is refused (the first is
kept). Nothing is ever extracted to disk: links, devices and names that are absolute or hold `..`
are refused and named. A damaged tar (cut short, or a header that does not parse) still gives the
complete samples that lie before the damage, and says where the damage is; `tarfile` alone would
silently end the listing at a bad header.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ns_data.images.formats import READ_EXTS

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
COMPRESSED_SUFFIXES = (".tar.gz", ".tgz")
READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
"""What reading a damaged tar or gzip stream raises."""
_BLOCK = tarfile.BLOCKSIZE


def is_tar(name: str) -> bool:
    """Whether a file name is a WebDataset shard this module reads."""
    return name.lower().endswith(TAR_SUFFIXES)


def is_compressed(name: str) -> bool:
    """Whether a tar is gzip-compressed (it can only be read forward, from its start)."""
    return name.lower().endswith(COMPRESSED_SUFFIXES)


@dataclass(frozen=True, slots=True)
class TarSample:
    """One sample: its key, where its image's bytes lie in the (uncompressed) tar, its `.cls`."""

    key: str
    image: tuple[int, int] | None
    """(data offset, size) of the first jpg/jpeg/png/webp member; None: the sample has none."""
    label: str | None
    """The text of `KEY.cls`, None without one."""


@dataclass(frozen=True, slots=True)
class TarListing:
    """A tar's samples in member order, the members refused, and the damage found."""

    samples: list[TarSample]
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(member name, why) of every member that is not a plain file with a safe name, or repeats
    a member of its sample."""
    damage: str = ""
    """What is wrong and where; empty when the tar is sound. `samples` are those before it."""


@dataclass(slots=True)
class _Groups:
    members: dict[str, dict[str, tarfile.TarInfo]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    last: str = ""
    """Name of the last member read."""
    last_key: str = ""
    """Key of the last member grouped."""

    def add(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.last = member.name
        if member.isdir():
            return
        why = _refusal(member)
        if why:
            self.refused.append((member.name, why))
            return
        key, ext = _key(member.name)
        if not key:
            return
        self.last_key = key
        group = self.members.setdefault(key, {})
        if ext in group or (ext in READ_EXTS and any(e in group for e in READ_EXTS)):
            self.refused.append((member.name, "key repeated inside the tar: the first is kept"))
            return
        group[ext] = member
        if ext == "cls":  # read now: a compressed tar cannot come back for it
            raw = archive.extractfile(member)
            self.labels[key] = raw.read().decode(errors="replace").strip() if raw else ""

    def samples(self, drop: str = "") -> list[TarSample]:
        found = []
        for key, members in self.members.items():
            if key == drop:
                continue
            image = next((members[e] for e in READ_EXTS if e in members), None)
            location = None if image is None else (image.offset_data, image.size)
            found.append(TarSample(key, location, self.labels.get(key)))
        return found

    def complete(self, key: str) -> bool:
        """Whether sample `key` has an image and, when this tar is labeled, its `.cls`."""
        members = self.members.get(key, {})
        labeled = bool(self.labels)
        return any(e in members for e in READ_EXTS) and (key in self.labels or not labeled)


def list_tar(path: Path) -> TarListing:
    """The samples of the tar at `path`; damage is reported in the listing, never raised."""
    compressed = is_compressed(path.name)
    try:
        end = None if compressed else path.stat().st_size
        with tarfile.open(path, mode="r:gz" if compressed else "r:") as archive:
            return _list(archive, end)
    except READ_ERRORS as err:
        return TarListing([], damage=f"not readable as a tar: {_say(err)}")


def _list(archive: tarfile.TarFile, end: int | None) -> TarListing:
    """List an open tar; `end` is the file size, None for a compressed one."""
    groups = _Groups()
    damage, lost = "", ""
    try:
        for member in archive:
            if end is not None and member.offset_data + member.size > end:
                damage = f"member {member.name} is cut short (the file ends at byte {end})"
                lost = _key(member.name)[0]
                break
            groups.add(archive, member)
        else:
            damage = _tail_damage(archive, groups.last)
    except READ_ERRORS as err:
        place = f"byte {archive.offset}" + (" of the uncompressed tar" if end is None else "")
        damage = f"{_say(err)} after member {groups.last or '(none)'} ({place})"
        # a gzip stream does not say how much of the last member it held: count it as lost
        lost = groups.last_key if end is None else ""
    if damage and not lost and groups.last_key and not groups.complete(groups.last_key):
        lost = groups.last_key  # its other members may lie past the damage
    return TarListing(groups.samples(drop=lost), groups.refused, damage)


def _key(name: str) -> tuple[str, str]:
    """(sample key, lower-case extension) of a member name; ('', '') for hidden or bare names."""
    head, base = posixpath.split(posixpath.normpath(name))
    if base.startswith(".") or "." not in base:
        return "", ""
    stem, ext = base.split(".", 1)
    return posixpath.join(head, stem), ext.lower()


def _say(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _refusal(member: tarfile.TarInfo) -> str:
    """Why a member is never read ('' when it is a plain file with a safe name)."""
    if member.issym():
        return f"a symbolic link (to {member.linkname}), not a file: refused"
    if member.islnk():
        return f"a hard link (to {member.linkname}), not a file: refused"
    if member.isdev():
        return "a device or FIFO, not a file: refused"
    if not member.isfile():
        return f"tar member type {member.type!r} is not a file: refused"
    if member.name.startswith("/") or ".." in member.name.split("/"):
        return "an absolute name or one with '..': refused"
    return ""


def _tail_damage(archive: tarfile.TarFile, last: str) -> str:
    """Why what follows the last member is not the end-of-archive blocks ('' when it is).

    `tarfile` ends its listing at the first header it cannot parse; it has just read that block
    (at `archive.offset`), so a short block means the tar is cut there, and data after it means
    the header was damaged and the members after it are lost.
    """
    stream = archive.fileobj
    assert stream is not None
    where = f"after member {last or '(none)'} (byte {archive.offset})"
    try:
        consumed = stream.tell() - archive.offset
        if consumed == 0:
            return f"ends {where} without the end-of-archive blocks: cut short?"
        if consumed < _BLOCK:
            return f"cut short inside a header {where}"
        while chunk := stream.read(1 << 20):
            if chunk.count(0) != len(chunk):
                return f"unreadable header {where}; the members after it are lost"
    except READ_ERRORS as err:
        return f"end-of-archive blocks damaged ({_say(err)}) {where}"
    return ""
