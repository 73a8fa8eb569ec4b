"""ImageNet-P-style sequences: frame schedules, the video round trip, `perturb_set`'s layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ns_data.errors import DataError
from ns_data.robustness.perturb import (
    PERTURBATIONS,
    perturb_set,
    perturbation_frames,
    read_video,
    write_video,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 150:214])  # 64×64 RGB


@pytest.mark.parametrize(
    ("name", "frames", "identity"),
    [
        ("gaussian_noise", 31, 0),
        ("shot_noise", 31, 0),
        ("speckle_noise", 31, 0),
        ("translate", 41, 20),
        ("rotate", 31, 15),
        ("scale", 31, 24),
        ("tilt", 31, 15),
    ],
)
def test_sequences_pass_through_the_clean_image(
    photo: np.ndarray, name: str, frames: int, identity: int
) -> None:
    sequence = perturbation_frames(photo, name, seed=1)
    assert sequence.shape == (frames, *photo.shape) and sequence.dtype == np.uint8
    change = np.abs(sequence[identity].astype(int) - photo)
    if name == "tilt":  # the benchmark's camera at distance f shrinks by f / (1 + f) at 0°
        assert change.mean() < 6
    else:
        assert change.max() <= 1
    others = [i for i in range(frames) if i != identity]
    assert all(np.abs(sequence[i].astype(int) - photo).mean() > 0.5 for i in others)


def test_brightness_rises_through_the_sequence(photo: np.ndarray) -> None:
    means = perturbation_frames(photo, "brightness", seed=0).reshape(31, -1).mean(axis=1)
    assert np.all(np.diff(means) >= 0) and means[-1] > means[0] + 20
    assert np.abs(perturbation_frames(photo, "brightness", 0)[15].astype(int) - photo).max() <= 1


def test_noise_depends_on_the_seed_only(photo: np.ndarray) -> None:
    first = perturbation_frames(photo, "gaussian_noise", seed=3)
    assert np.array_equal(first, perturbation_frames(photo, "gaussian_noise", seed=3))
    assert not np.array_equal(first, perturbation_frames(photo, "gaussian_noise", seed=4))


def test_video_round_trip_keeps_every_frame(photo: np.ndarray, tmp_path: Path) -> None:
    sequence = perturbation_frames(photo, "rotate", seed=0)
    write_video(sequence, tmp_path / "a.mp4")
    back = read_video(tmp_path / "a.mp4")
    assert back.shape == sequence.shape
    assert np.abs(back.astype(int) - sequence).mean() < 6  # a lossy codec, at its best quality


def test_a_file_that_is_no_video_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match=r"broken\.mp4 is not a readable video"):
        read_video(tmp_path / "broken.mp4")


def test_perturb_set_writes_the_released_layout_and_resumes(
    photo_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p"
    report = perturb_set(
        photo_set, out, perturbations=["translate", "gaussian_noise"], limit_per_class=1, workers=1
    )
    assert (report.written, report.skipped, report.sequences) == (2, 0, 8)
    videos = sorted(out.glob("*/*/*.mp4"))
    assert len(videos) == 8 and {v.parent.parent.name for v in videos} == {
        "translate",
        "gaussian_noise",
    }
    assert read_video(next((out / "translate").glob("*/*.mp4"))).shape[0] == 41
    again = perturb_set(photo_set, out, perturbations=["translate", "rotate"], limit_per_class=1)
    assert (again.written, again.skipped) == (1, 1)


def test_unknown_perturbation_is_refused_listing_the_names(photo_set: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown perturbation 'wobble'; choose from gaussian"):
        perturb_set(photo_set, tmp_path / "p", perturbations=["wobble"])
    assert "tilt" in PERTURBATIONS
