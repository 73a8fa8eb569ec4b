"""ns_data: shards, loaders, pseudo labels, filtering and balancing for Noisy Student.

    shards/      the shard-set format: writer, reader, manifest, DALI index
    ingest/      `ns shard`: image collections in, a deterministic resumable shard set out
    images/      image bytes before decoding: header sizes, structure checks, full decodes
    loading/     the loader: views, rank sampling, host-side draws, DALI and PyTorch backends
    labels/      the pseudo-label store, filtering and class balancing
    robustness/  ImageNet-C/-P-style corrupted and perturbed copies of an eval set

The names below load on first use (PEP 562), so `import ns_data` stays cheap. ns-data 0.2's flat
module paths (`ns_data.shard_set`, ...) still import, with a DeprecationWarning (`ns_data.moved`).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from ns_data import moved

if TYPE_CHECKING:
    from ns_data.errors import DataError
    from ns_data.ingest.pipeline import ShardConfig, ShardReport, shard_images
    from ns_data.labels.selection import select
    from ns_data.labels.store import PseudoLabels
    from ns_data.loading.loader import Batch, ImageLoader
    from ns_data.loading.paired import PairedLoader
    from ns_data.loading.views import View
    from ns_data.shards.reader import ShardSet
    from ns_data.shards.writer import ShardSetWriter

__version__ = version("ns-data")

_HOMES = {
    "errors": ["DataError"],
    "ingest.pipeline": ["ShardConfig", "ShardReport", "shard_images"],
    "labels.selection": ["select"],
    "labels.store": ["PseudoLabels"],
    "loading.loader": ["Batch", "ImageLoader"],
    "loading.paired": ["PairedLoader"],
    "loading.views": ["View"],
    "shards.reader": ["ShardSet"],
    "shards.writer": ["ShardSetWriter"],
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [
    "Batch",
    "DataError",
    "ImageLoader",
    "PairedLoader",
    "PseudoLabels",
    "ShardConfig",
    "ShardReport",
    "ShardSet",
    "ShardSetWriter",
    "View",
    "select",
    "shard_images",
]

moved.install()


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'ns_data' has no attribute {name!r}")
    return getattr(import_module(f"ns_data.{_MODULE_OF[name]}"), name)
