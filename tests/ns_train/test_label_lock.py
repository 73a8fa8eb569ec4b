"""`label()` holds its output folder's lock: a second job on it is refused, naming the first."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ns_data.errors import DataError
from ns_data.job_lock import LOCK_NAME
from ns_data.labels.store import SUFFIX
from ns_train.labeler import LabelSummary, label
from ns_train.runs.digits import DigitsSplits
from ns_train.trainer import TrainResult

_HOLD = """
import sys, time
from ns_data.job_lock import hold_output_lock
with hold_output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def run_label(teacher: TrainResult, digits: DigitsSplits, out: Path) -> LabelSummary:
    return label(
        teacher.checkpoint,
        digits.unlabeled,
        out,
        backend="torch",
        device="cpu",
        workers=0,
        show_progress=False,
    )


def test_a_folder_in_use_is_refused_then_labeled_once_free(
    tmp_path: Path, digits: DigitsSplits, teacher: TrainResult
) -> None:
    out = tmp_path / "labels"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(DataError, match=rf"labels is in use by ns pid {holder.pid} on host"):
            run_label(teacher, digits, out)
        assert not list(out.glob(f"*{SUFFIX}"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    summary = run_label(teacher, digits, out)
    assert summary.shards_labeled == len(list(out.glob(f"*{SUFFIX}"))) >= 1
    assert not (out / LOCK_NAME).exists()
