"""The dali-gpu backend (nvJPEG `mixed` decode, augmentation on the GPU) against the CPU backends.

Skipped, with the reason, where CUDA or DALI is missing; on a GPU machine `pytest -m gpu` runs
only these and the engine's GPU tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ns_data.loading.loader import ImageLoader, resolve_backend
from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD, View
from ns_data.shards.reader import ShardSet

from .conftest import COLORS, bogus_sampling, jpeg, needs_dali, write_set

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible")
pytestmark = [pytest.mark.gpu, pytest.mark.dali, needs_dali, needs_cuda]

EVAL = View(image_size=32)
CROP_FLIP = View(image_size=32, train=True, randaugment_n=0)
TRAIN = View(image_size=32, train=True)


def gpu_loader(path: Path, view: View, **kwargs: object) -> ImageLoader:
    kwargs.setdefault("batch_size", 8)
    return ImageLoader(ShardSet(path), view, backend="dali-gpu", device="cuda", **kwargs)  # type: ignore[arg-type]


def epoch(loader: ImageLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch on the host: images, labels, sample ids (checking where each was produced)."""
    batches = list(loader)
    assert all(b.images.is_cuda and b.labels.is_cuda for b in batches)
    assert not any(b.sample_ids.is_cuda for b in batches)
    return (
        torch.cat([b.images for b in batches]).cpu(),
        torch.cat([b.labels for b in batches]).cpu(),
        torch.cat([b.sample_ids for b in batches]),
    )


def test_auto_picks_dali_on_the_gpu() -> None:
    assert resolve_backend("auto", torch.device("cuda")) == "dali-gpu"


def test_eval_view_matches_the_cpu_backends(photo_set: Path) -> None:
    """Same shapes, dtype and range; the pixels differ only by decoder and resampling rounding."""
    gpu, _, gpu_ids = epoch(gpu_loader(photo_set, EVAL))
    ref = ImageLoader(ShardSet(photo_set), EVAL, batch_size=8, backend="torch", workers=0)
    cpu = torch.cat([b.images for b in ref])
    assert gpu.shape == cpu.shape == (40, 3, 32, 32) and gpu.dtype == torch.float32
    assert torch.equal(gpu_ids, torch.arange(40))
    difference = (gpu - cpu).abs() * torch.tensor(IMAGENET_STD)[:, None, None]
    assert difference.mean() < 0.01, difference.mean()


@pytest.mark.parametrize("view", [CROP_FLIP, TRAIN], ids=["crop-flip", "randaugment"])
def test_train_view_matches_dali_on_the_cpu(photo_set: Path, view: View) -> None:
    """The host draws the crops, flips and RandAugment ops for both DALI backends, so the GPU's
    train batches are the CPU's up to decoder and resampling rounding."""
    gpu = epoch(gpu_loader(photo_set, view, shuffle=True, seed=9))
    cpu_loader = ImageLoader(
        ShardSet(photo_set), view, batch_size=8, shuffle=True, seed=9, backend="dali-cpu"
    )
    batches = list(cpu_loader)
    cpu = torch.cat([b.images for b in batches])
    assert torch.equal(gpu[2], torch.cat([b.sample_ids for b in batches]))
    difference = (gpu[0] - cpu).abs() * torch.tensor(IMAGENET_STD)[:, None, None]
    assert difference.mean() < 0.02, difference.mean()


def test_labels_stay_with_their_images(color_set: Path) -> None:
    loader = gpu_loader(color_set, CROP_FLIP, shuffle=True, seed=3)
    images, labels, ids = epoch(loader)
    assert sorted(ids.tolist()) == list(range(60))
    assert torch.equal(labels, torch.from_numpy(loader.shards.labels[ids.numpy()]))
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None], torch.tensor(IMAGENET_STD)[:, None]
    pixels = images.flatten(2).median(dim=2).values * std.T + mean.T
    palette = torch.tensor(COLORS, dtype=torch.float32) / 255
    assert torch.equal(torch.cdist(pixels, palette).argmin(dim=1), labels)


def test_eval_is_deterministic_train_is_random_and_resumes(photo_set: Path) -> None:
    evaluation = gpu_loader(photo_set, EVAL)
    assert torch.equal(epoch(evaluation)[0], epoch(evaluation)[0])
    training = gpu_loader(photo_set, TRAIN, shuffle=True, seed=5)
    first = epoch(training)[0]
    expected = list(training)
    assert (first - torch.cat([b.images.cpu() for b in expected])).abs().mean() > 0.1
    interrupted = gpu_loader(photo_set, TRAIN, shuffle=True, seed=5)
    epoch(interrupted)
    batches = iter(interrupted)
    next(batches), next(batches)
    resumed = gpu_loader(photo_set, TRAIN, shuffle=True, seed=5)
    resumed.load_state_dict(interrupted.state_dict())
    for got, want in zip(list(resumed), expected[2:], strict=True):
        assert torch.equal(got.sample_ids, want.sample_ids)
        assert torch.equal(got.images, want.images)


def test_a_sample_nvjpeg_rejects_is_skipped(tmp_path: Path) -> None:
    good = jpeg(torch.randint(0, 255, (40, 48, 3), dtype=torch.uint8).numpy())
    images = [bogus_sampling(good) if n == 5 else good for n in range(16)]
    directory = write_set(tmp_path / "broken", images, [n % 2 for n in range(16)], 2, (48, 40))
    loader = gpu_loader(directory, EVAL)
    ids = epoch(loader)[2].tolist()
    assert loader.skipped == 1 and ids == [n for n in range(16) if n != 5]
