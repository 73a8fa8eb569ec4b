"""The scaling ladder B0 → … → B7 → L2 as data, model-name checks and size comparisons."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import MappingProxyType

import timm

from ns_models.errors import ModelError
from ns_models.measure import count_parameters

LADDER: tuple[str, ...] = (
    *(f"efficientnet_b{i}" for i in range(8)),
    "efficientnet_l2",
)
"""The iteration loop's student sizes, smallest first (Noisy Student, section 3)."""


@dataclass(frozen=True, slots=True)
class RungSpec:
    """The papers' settings for one ladder size."""

    drop_rate: float
    """Dropout before the classifier (EfficientNet paper)."""
    train_size: int
    """Training resolution in pixels."""
    test_size: int
    """Test (and labelling) resolution in pixels."""


SPECS: MappingProxyType[str, RungSpec] = MappingProxyType(
    {
        "efficientnet_b0": RungSpec(0.2, 224, 224),
        "efficientnet_b1": RungSpec(0.2, 240, 240),
        "efficientnet_b2": RungSpec(0.3, 260, 260),
        "efficientnet_b3": RungSpec(0.3, 300, 300),
        "efficientnet_b4": RungSpec(0.4, 380, 380),
        "efficientnet_b5": RungSpec(0.4, 456, 456),
        "efficientnet_b6": RungSpec(0.5, 528, 528),
        "efficientnet_b7": RungSpec(0.5, 600, 600),
        "efficientnet_l2": RungSpec(0.5, 475, 800),
    }
)
"""Per ladder name: dropout and resolutions (L2 trains at 475 px and tests at 800 px)."""

_TF_PREFIX = "tf_"


def check_name(name: str) -> str:
    """Return `name` if timm can build it, else raise ModelError suggesting near names."""
    if isinstance(name, str) and timm.is_model(name):
        return name
    close = difflib.get_close_matches(str(name), sorted({*LADDER, *timm.list_models()}), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ModelError(
        f"unknown model {name!r}: choose one of efficientnet_b0..b7, efficientnet_l2 "
        f"or any timm model name (see `timm.list_models()`){hint}"
    )


def rung(name: str) -> int | None:
    """Ladder index of `name` (`tf_` variants and pretrained tags included), None if off it."""
    base = check_name(name).split(".", 1)[0].removeprefix(_TF_PREFIX)
    return LADDER.index(base) if base in LADDER else None


def spec(name: str) -> RungSpec | None:
    """The papers' settings for `name`, None for a model off the ladder."""
    index = rung(name)
    return None if index is None else SPECS[LADDER[index]]


def next_larger(name: str) -> str:
    """The next ladder size after `name`, keeping a `tf_` prefix (B7 → L2)."""
    index = rung(name)
    if index is None:
        raise ModelError(
            f"model {name!r} is not on the ladder {LADDER[0]}..{LADDER[-1]}: "
            "pick the student by name instead"
        )
    if index == len(LADDER) - 1:
        raise ModelError(
            f"model {name!r} is the largest on the ladder: reuse it as the student "
            "(a student equal to its teacher is allowed)"
        )
    prefix = _TF_PREFIX if name.startswith(_TF_PREFIX) else ""
    return prefix + LADDER[index + 1]


def is_at_least(student: str, teacher: str) -> bool:
    """True when `student` is as large as `teacher`: ladder order, else parameter count."""
    student_rung, teacher_rung = rung(student), rung(teacher)
    if student_rung is not None and teacher_rung is not None:
        return student_rung >= teacher_rung
    return count_parameters(student) >= count_parameters(teacher)
