"""Step a labeled and an unlabeled loader together, as Noisy Student's student training does.

    pairs = PairedLoader(labeled_loader, unlabeled_loader, ratio=3)
    for step in pairs:              # one epoch of the unlabeled loader
        step.labeled, step.unlabeled  # Batch of B labeled and of 3·B unlabeled images

The unlabeled loader defines the epoch; the labeled one cycles through as many of its own epochs
as that takes. `state_dict()` holds both loaders' states, so a resumed run continues both exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ns_data.errors import DataError
from ns_data.loading.loader import Batch, ImageLoader, LoaderState


@dataclass(frozen=True, slots=True)
class PairedBatch:
    """One training step's data: a labeled batch and an unlabeled batch `ratio`× larger."""

    labeled: Batch
    unlabeled: Batch


class PairedLoader:
    """Yields `PairedBatch`es for one epoch of `unlabeled`; `labeled` re-iterates as needed."""

    def __init__(self, labeled: ImageLoader, unlabeled: ImageLoader, *, ratio: int) -> None:
        if unlabeled.batch_size != ratio * labeled.batch_size:
            raise DataError(
                f"unlabeled batch size {unlabeled.batch_size} is not ratio {ratio} × labeled batch "
                f"size {labeled.batch_size}: make it {ratio * labeled.batch_size}"
            )
        if len(labeled) == 0:
            raise DataError(
                f"the labeled loader yields no batch ({len(labeled.shards)} samples, batch size "
                f"{labeled.batch_size}, drop_last={labeled.drop_last}): lower its batch size"
            )
        self.labeled = labeled
        self.unlabeled = unlabeled
        self.ratio = ratio
        self._labeled_batches: Iterator[Batch] | None = None

    def __len__(self) -> int:
        """Steps per epoch: the unlabeled loader's batches."""
        return len(self.unlabeled)

    @property
    def epoch(self) -> int:
        """The unlabeled loader's epoch."""
        return self.unlabeled.epoch

    def _next_labeled(self) -> Batch:
        for _ in range(2):  # a fresh labeled epoch when the current one is spent
            if self._labeled_batches is None:
                self._labeled_batches = iter(self.labeled)
            batch = next(self._labeled_batches, None)
            if batch is not None:
                return batch
            self._labeled_batches = None
        raise DataError(
            "the labeled loader yielded no readable batch in a whole epoch: check its set"
        )

    def __iter__(self) -> Iterator[PairedBatch]:
        for unlabeled in self.unlabeled:
            yield PairedBatch(labeled=self._next_labeled(), unlabeled=unlabeled)

    def state_dict(self) -> dict[str, LoaderState]:
        """Both loaders' positions (their augmentation draws follow from them)."""
        return {"labeled": self.labeled.state_dict(), "unlabeled": self.unlabeled.state_dict()}

    def load_state_dict(self, state: dict[str, LoaderState]) -> None:
        """Continue both loaders from `state_dict()`."""
        self._labeled_batches = None
        self.labeled.load_state_dict(state["labeled"])
        self.unlabeled.load_state_dict(state["unlabeled"])
