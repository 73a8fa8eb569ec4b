"""The oracle baseline's targets: the true labels of the unlabeled images, stored as pseudo labels.

A student trained on them (same job, same noise) is the fully supervised upper bound that the
report compares the noisy students with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ns_data.labels.store import TeacherInfo, labels_file, write_shard_labels
from ns_data.shards.reader import ShardSet
from ns_train.errors import TrainError

ORACLE = "ground truth"
"""The `TeacherInfo.checkpoint` of true labels."""


def write_truth_labels(unlabeled: Path, truth: Path, out: Path) -> Path:
    """Write the labels of `truth` (a labeled set of the same images as `unlabeled`, in the
    same order) as one-hot pseudo labels of `unlabeled`'s samples into `out` (skips done files)."""
    images, labeled = ShardSet(unlabeled), ShardSet(truth)
    labeled.require_labels()
    if images.total_samples != labeled.total_samples:
        raise TrainError(
            f"{truth} has {labeled.total_samples} images, {unlabeled} {images.total_samples}: "
            "data.unlabeled_truth must hold the unlabeled images, in the same order"
        )
    classes = list(labeled.manifest.classes or [])
    info = TeacherInfo(
        checkpoint=ORACLE, model_name=ORACLE, class_names=classes, topk=1, teacher_id=ORACLE
    )
    truth_labels = labeled.labels
    out.mkdir(parents=True, exist_ok=True)
    for shard in images.manifest.shards:
        path = labels_file(out, shard.tar)
        if path.exists():
            continue
        ids = np.arange(shard.first_id, shard.first_id + shard.count, dtype=np.int64)
        top = truth_labels[ids - labeled.table.sample_id[0]][:, None]
        write_shard_labels(path, ids, top, np.ones_like(top, dtype=np.float16), info)
    return out
