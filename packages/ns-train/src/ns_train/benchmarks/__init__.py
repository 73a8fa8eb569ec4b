"""`ns bench`: ns against the plain loop a user would otherwise write, measured in the same run.

Each sub-benchmark (one module here) times its candidates and their baseline in interleaved
rounds, so a drift of the machine hits every candidate alike, and reports the median, the spread
(min-max) and each candidate's ratio against its baseline round by round. `run_benchmarks` runs a
set of them and writes a results file (machine description and every number) and a Markdown
table; `compare` puts two results files side by side.
"""

from __future__ import annotations

from ns_train.benchmarks.settings import CORPORA, NAMES, QUICK_NAMES, BenchSettings
from ns_train.benchmarks.suite import run_benchmarks

__all__ = ["CORPORA", "NAMES", "QUICK_NAMES", "BenchSettings", "run_benchmarks"]
