"""What every sub-benchmark gets: the settings, a scratch folder, the corpus, the progress display
and the interleaved rounds wired to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ns_train.benchmarks.corpus import Corpus, build_corpus
from ns_train.benchmarks.rounds import Candidate, Metrics, interleaved
from ns_train.benchmarks.settings import BenchSettings, Scale


def bench_progress(enabled: bool) -> Progress:
    """One line per sub-benchmark: its runs done of all, the candidate running now, elapsed."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not enabled,
    )


@dataclass(slots=True)
class Context:
    settings: BenchSettings
    work: Path
    """A scratch folder, deleted after the run."""
    device: str
    """`cpu`, `cuda` or `cuda:N`."""
    workers: int
    progress: Progress
    _task: TaskID | None = None
    _running: bool = False
    _corpus: Corpus | None = field(default=None)

    @property
    def sizes(self) -> Scale:
        return self.settings.sizes

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def begin(self, name: str) -> None:
        """A progress line for sub-benchmark `name`; `rounds` adds its runs to it."""
        self.done()
        self._task = self.progress.add_task(name, total=0, info="")
        self._running = False

    def tick(self, info: str) -> None:
        """The next run starts (so the previous one is done); `info` names it."""
        assert self._task is not None
        self.progress.update(self._task, advance=1 if self._running else 0, info=info)
        self._running = True

    def done(self) -> None:
        """The current line is finished."""
        if self._task is not None:
            total = self.progress.tasks[self._task].total
            self.progress.update(self._task, completed=total, info="done")
            self._task = None

    def expect(self, runs: int) -> None:
        """`runs` more runs on the current line."""
        assert self._task is not None
        total = self.progress.tasks[self._task].total or 0
        self.progress.update(self._task, total=total + runs)

    def rounds(self, candidates: Sequence[Candidate]) -> dict[str, list[Metrics]]:
        """`settings.rounds` interleaved rounds of `candidates`, shown on the current line."""
        self.expect(self.settings.rounds * len(candidates))
        return interleaved(candidates, self.settings.rounds, self.tick)

    def corpus(self) -> Corpus:
        """The built corpus (built on first use, with its own progress line)."""
        if self._corpus is None:
            count = self.sizes.images
            task = self.progress.add_task("corpus", total=count, info=self.settings.corpus)
            self._corpus = build_corpus(
                self.settings.cache_dir,
                self.settings.corpus,
                count,
                tick=lambda: self.progress.advance(task),
            )
            self.progress.update(task, completed=count, info=str(self._corpus.directory))
        return self._corpus

    def shard_set(self) -> Path:
        """The shard set that loader, label and train read: --data, or the corpus's."""
        if self.settings.data is not None:
            return self.settings.data
        return self.corpus().shards(self.sizes.shard_size)

    def data_name(self) -> str:
        if self.settings.data is not None:
            return str(self.settings.data)
        return f"corpus {self.settings.corpus} ({self.sizes.images} photos)"
