"""Module paths of ns-data 0.2, kept importable for one version (0.3) with a DeprecationWarning.

0.3 grouped the flat modules into subpackages (`ns_data.shard_set` is now `ns_data.shards.reader`);
`import ns_data.shard_set` still works and warns with the new path. Remove in 0.4.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED_MODULES = {
    "shard_writer": "shards.writer",
    "shard_set": "shards.reader",
    "manifest": "shards.manifest",
    "dali_index": "shards.index",
    "describe": "shards.describe",
    "output_dir": "shards.output_dir",
    "sources": "ingest.sources",
    "tar_listing": "ingest.tar_listing",
    "sharding": "ingest.pipeline",
    "shard_jobs": "ingest.jobs",
    "labeled_source": "ingest.labeled_source",
    "image_structure": "images.structure",
    "image_check": "images.check",
    "shard_image": "images.verify",
    "loader": "loading.loader",
    "views": "loading.views",
    "sampling": "loading.sampling",
    "train_draws": "loading.draws",
    "decoded": "loading.decoded",
    "paired": "loading.paired",
    "torch_pipeline": "loading.torch_backend",
    "dali_pipelines": "loading.dali.pipelines",
    "dali_runner": "loading.dali.runner",
    "dali_augment": "loading.dali.augment",
    "pseudo_labels": "labels.store",
    "selection": "labels.selection",
    "selection_kernels": "labels.kernels",
    "corrupt": "robustness.corrupt",
    "perturb": "robustness.perturb",
    "benchmark_names": "robustness.names",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (the same module object, not a copy)."""

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new_name} in ns-data 0.3; the old path goes in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new_name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is imported already."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds `ns_data.<old name>` for every entry of `MOVED_MODULES`."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        package, _, leaf = fullname.partition(".")
        if package != "ns_data" or leaf not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(
            fullname, _MovedModuleLoader(f"ns_data.{MOVED_MODULES[leaf]}")
        )


def install() -> None:
    """Put the finder on `sys.meta_path` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
