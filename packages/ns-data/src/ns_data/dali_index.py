"""The index DALI's `fn.readers.webdataset` reads beside each tar (the format `wds2idx` writes).

Format: a header line `v1.2 N`, then one line per sample listing each component as
`ext offset size member`, where `offset` is the byte offset of the member's data in the tar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ns_data.errors import DataError

INDEX_VERSION = "v1.2"


@dataclass(frozen=True, slots=True)
class Component:
    """One member of a sample inside a tar: its extension, data offset, size and member name."""

    ext: str
    offset: int
    size: int
    member: str


def format_index(samples: list[list[Component]]) -> str:
    """Render the index text for samples given in tar order."""
    lines = [f"{INDEX_VERSION} {len(samples)}"]
    for components in samples:
        lines.append(" ".join(f"{c.ext} {c.offset} {c.size} {c.member}" for c in components))
    return "\n".join(lines) + "\n"


def read_index(path: Path) -> list[list[Component]]:
    """Parse an index file; raise DataError naming the file when it is not a v1.2 index."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(
            f"cannot read index {path}: {err.strerror}; rerun `ns shard` on the set"
        ) from err
    header = lines[0].split() if lines else []
    if len(header) != 2 or header[0] != INDEX_VERSION:
        raise DataError(f"{path} is not a DALI {INDEX_VERSION} index; rebuild it with `ns shard`")
    samples = []
    for line in lines[1 : 1 + int(header[1])]:
        fields = line.split(" ")
        samples.append(
            [
                Component(fields[i], int(fields[i + 1]), int(fields[i + 2]), fields[i + 3])
                for i in range(0, len(fields), 4)
            ]
        )
    if len(samples) != int(header[1]):
        raise DataError(
            f"{path} lists fewer samples than its header says; rebuild it with `ns shard`"
        )
    return samples
