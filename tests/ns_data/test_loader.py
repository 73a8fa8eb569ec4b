"""ImageLoader on the CPU backends: outputs, labels, determinism, ranks, copies, resume."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ns_data.errors import DataError
from ns_data.loading.loader import ImageLoader
from ns_data.loading.views import IMAGENET_MEAN, IMAGENET_STD, View
from ns_data.shards.reader import ShardSet

from .conftest import COLORS, needs_dali, write_set

EVAL = View(image_size=32)
TRAIN = View(image_size=32, train=True)


def make(path: Path, view: View, backend: str, **kwargs: object) -> ImageLoader:
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("workers", 2)
    return ImageLoader(ShardSet(path), view, backend=backend, **kwargs)  # type: ignore[arg-type]


def epoch(loader: ImageLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch (or its rest) concatenated: images, labels, sample ids."""
    batches = list(loader)
    return (
        torch.cat([b.images for b in batches]),
        torch.cat([b.labels for b in batches]),
        torch.cat([b.sample_ids for b in batches]),
    )


@pytest.mark.parametrize("view", [EVAL, TRAIN], ids=["eval", "train"])
def test_shapes_dtype_and_range(photo_set: Path, backend: str, view: View) -> None:
    images, labels, ids = epoch(make(photo_set, view, backend))
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == ids.dtype == torch.int64
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None], torch.tensor(IMAGENET_STD)[:, None]
    per_channel = images.transpose(0, 1).reshape(3, -1)
    assert (per_channel >= (0 - mean) / std - 1e-4).all()
    assert (per_channel <= (1 - mean) / std + 1e-4).all()
    assert per_channel.std() > 0.3  # real content, not a constant


@needs_dali
def test_backends_agree_on_the_eval_view(photo_set: Path) -> None:
    """Both decode with libjpeg-turbo and resize with torchvision's uint8 kernel (on the CPU,
    DALI's pipeline calls it): the same pixels, up to the float rounding of the normalization."""
    dali, _, dali_ids = epoch(make(photo_set, EVAL, "dali-cpu"))
    ref, _, ref_ids = epoch(make(photo_set, EVAL, "torch"))
    assert torch.equal(dali_ids, ref_ids)
    difference = (dali - ref).abs() * torch.tensor(IMAGENET_STD)[:, None, None]  # in [0, 1] pixels
    assert difference.max() < 1e-4, difference.max()  # measured 1.6e-7; one level is 0.0039


CROP_FLIP = View(image_size=32, train=True, randaugment_n=0)  # keeps colors, moves pixels


@pytest.mark.parametrize("view", [EVAL, CROP_FLIP], ids=["eval", "train"])
def test_labels_stay_with_their_images(color_set: Path, backend: str, view: View) -> None:
    loader = make(color_set, view, backend, shuffle=True, seed=3)
    images, labels, ids = epoch(loader)
    assert sorted(ids.tolist()) == list(range(60))
    assert torch.equal(labels, torch.from_numpy(loader.shards.labels[ids.numpy()]))
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None], torch.tensor(IMAGENET_STD)[:, None]
    pixels = images.flatten(2).median(dim=2).values * std.T + mean.T  # [N, 3] in [0, 1]
    palette = torch.tensor(COLORS, dtype=torch.float32) / 255
    nearest = torch.cdist(pixels, palette).argmin(dim=1)
    assert torch.equal(nearest, labels)


def test_eval_is_deterministic_and_train_is_not(photo_set: Path, backend: str) -> None:
    evaluation = make(photo_set, EVAL, backend)
    first, second = epoch(evaluation)[0], epoch(evaluation)[0]
    assert torch.equal(first, second)
    assert torch.equal(first, epoch(make(photo_set, EVAL, backend))[0])
    training = make(photo_set, TRAIN, backend)
    a, b = epoch(training)[0], epoch(training)[0]
    assert (a - b).abs().mean() > 0.1
    assert (a - first).abs().mean() > 0.1


def test_same_seed_same_epochs(photo_set: Path, backend: str) -> None:
    runs = [make(photo_set, TRAIN, backend, shuffle=True, seed=7) for _ in range(2)]
    for _ in range(2):
        (a, _, a_ids), (b, _, b_ids) = epoch(runs[0]), epoch(runs[1])
        assert torch.equal(a_ids, b_ids) and torch.equal(a, b)
    other = make(photo_set, TRAIN, backend, shuffle=True, seed=8)
    assert not torch.equal(epoch(other)[2], epoch(make(photo_set, TRAIN, backend, seed=7))[2])


def test_workers_do_not_change_the_output(photo_set: Path, backend: str) -> None:
    one = epoch(make(photo_set, TRAIN, backend, shuffle=True, workers=1))
    two = epoch(make(photo_set, TRAIN, backend, shuffle=True, workers=2))
    assert torch.equal(one[2], two[2]) and torch.equal(one[0], two[0])


def test_more_workers_than_batches(photo_set: Path, backend: str) -> None:
    """Workers (DALI: pipelines) left without a batch end their epoch cleanly, epoch after epoch."""
    loader = make(photo_set, TRAIN, backend, batch_size=40, workers=2)
    for _ in range(2):
        assert [len(b.images) for b in loader] == [40]


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_the_samples(color_set: Path, drop_last: bool) -> None:
    loaders = [
        make(
            color_set,
            EVAL,
            "torch",
            batch_size=7,
            shuffle=True,
            rank=r,
            world_size=3,
            workers=0,
            drop_last=drop_last,
        )
        for r in range(3)
    ]
    per_rank = [epoch(loader)[2].tolist() for loader in loaders]
    if drop_last:
        assert len({len(loader) for loader in loaders}) == 1
        assert all(len(ids) == len(loaders[0]) * 7 for ids in per_rank)
    else:
        assert sorted(i for ids in per_rank for i in ids) == list(range(60))
    assert not set(per_rank[0]) & set(per_rank[1]) and not set(per_rank[1]) & set(per_rank[2])


def test_every_rank_yields_len_batches_with_drop_last(color_set: Path) -> None:
    copies = np.random.default_rng(0).integers(0, 3, 60).astype(np.int8)
    loaders = [
        make(
            color_set,
            EVAL,
            "torch",
            batch_size=4,
            rank=r,
            world_size=4,
            workers=0,
            drop_last=True,
            copies=copies,
            shuffle=True,
        )
        for r in range(4)
    ]
    counts = [sum(1 for _ in loader) for loader in loaders]
    assert counts == [len(loaders[0])] * 4 and counts[0] > 0


def test_a_rank_opens_only_its_shards(color_set: Path) -> None:
    """`ShardSet.for_rank` holds the shards of the rank's rows; its loader yields what the loader
    over the whole set yields for that rank."""
    copies = np.random.default_rng(1).integers(0, 3, 60).astype(np.int8)
    settings = {"batch_size": 4, "world_size": 3, "drop_last": True, "shuffle": True}
    for rank in range(3):
        part = ShardSet.for_rank(color_set, rank, 3)
        assert part.shard_numbers == [[0, 1, 2], [2, 3, 4], [5, 6, 7]][rank]
        assert part.total_samples == 60 and len(part) == [24, 24, 20][rank]
        whole = make(color_set, EVAL, "torch", rank=rank, copies=copies, workers=0, **settings)
        mine = ImageLoader(part, EVAL, rank=rank, copies=copies, backend="torch", **settings)
        assert len(mine) == len(whole)
        for ours, theirs in zip(epoch(mine), epoch(whole), strict=True):
            assert torch.equal(ours, theirs)
    with pytest.raises(DataError, match=r"opened without some of rank 1's samples"):
        ImageLoader(
            ShardSet(color_set, shards=[2, 3]),
            EVAL,
            batch_size=4,
            rank=1,
            world_size=3,
            drop_last=True,
        )


def test_selection_plan_copies(color_set: Path, backend: str) -> None:
    copies = np.tile(np.array([0, 1, 2], dtype=np.int8), 20)
    loader = make(color_set, TRAIN, backend, copies=copies, shuffle=True)
    ids = epoch(loader)[2].numpy()
    assert np.array_equal(np.bincount(ids, minlength=60), copies)
    assert len(loader) == -(-60 // 8)


@pytest.mark.parametrize("view", [EVAL, TRAIN], ids=["eval", "train"])
def test_resume_mid_epoch(photo_set: Path, backend: str, view: View) -> None:
    """Epoch 1, batches 2.. after a restart match an uninterrupted run, ids and tensors."""
    reference = make(photo_set, view, backend, shuffle=True, seed=5)
    epoch(reference)
    expected = list(reference)
    interrupted = make(photo_set, view, backend, shuffle=True, seed=5)
    epoch(interrupted)
    batches = iter(interrupted)
    next(batches), next(batches)
    state = interrupted.state_dict()
    resumed = make(photo_set, view, backend, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - 2 and resumed.epoch == 2
    for got, want in zip(rest, expected[2:], strict=True):
        assert torch.equal(got.sample_ids, want.sample_ids)
        assert torch.equal(got.images, want.images)


def test_break_then_iterate_continues(photo_set: Path, backend: str) -> None:
    expected = list(make(photo_set, TRAIN, backend, shuffle=True))
    loader = make(photo_set, TRAIN, backend, shuffle=True)
    for number, _ in enumerate(loader):
        if number == 1:
            break
    rest = list(loader)
    assert [b.sample_ids.tolist() for b in rest] == [b.sample_ids.tolist() for b in expected[2:]]
    assert all(torch.equal(a.images, b.images) for a, b in zip(rest, expected[2:], strict=True))


@pytest.mark.parametrize("bfloat16", [False, True])
def test_channels_last_and_bfloat16(photo_set: Path, backend: str, bfloat16: bool) -> None:
    view = View(image_size=32, channels_last=True, bfloat16=bfloat16)
    batch = next(iter(make(photo_set, view, backend)))
    assert batch.images.shape == (8, 3, 32, 32)
    assert batch.images.is_contiguous(memory_format=torch.channels_last)
    assert batch.images.dtype == (torch.bfloat16 if bfloat16 else torch.float32)
    plain = next(iter(make(photo_set, EVAL, backend))).images
    assert (batch.images.float() - plain).abs().max() < (0.05 if bfloat16 else 1e-6)


@needs_dali
def test_dali_builds_without_warnings(photo_set: Path) -> None:
    """DALI's notices about its own deprecated aliases stay quiet, and so does its complaint
    about unused source outputs (the train view without RandAugment feeds fewer)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        next(iter(make(photo_set, TRAIN, "dali-cpu")))
        next(iter(make(photo_set, CROP_FLIP, "dali-cpu")))
    assert [str(w.message) for w in caught] == []


def test_exif_orientation_is_applied(tmp_path: Path, backend: str) -> None:
    """A photo stored sideways with EXIF orientation 6 comes out upright in every backend."""
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:20] = COLORS[0]  # red above
    upright[20:] = COLORS[2]  # blue below
    exif = Image.Exif()
    exif[0x0112] = 6  # display after turning 90° clockwise
    buffer = io.BytesIO()
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        buffer, format="JPEG", quality=95, exif=exif.tobytes()
    )
    directory = write_set(tmp_path / "exif", [buffer.getvalue()] * 2, [0, 2], 6, (40, 60))
    images = epoch(make(directory, EVAL, backend))[0]
    red = torch.tensor(COLORS[0]) / 255
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    pixels = images.permute(0, 2, 3, 1) * std + mean  # N, H, W, 3 in [0, 1]
    assert (pixels[:, :8] - red).abs().max() < 0.1  # the top rows are red
    assert (pixels[:, -8:] - red).abs().amax(dim=-1).min() > 0.3  # the bottom rows are not


@pytest.mark.dali
@needs_dali
@pytest.mark.parametrize(
    "dali_backend",
    [
        "dali-cpu",
        pytest.param(
            "dali-gpu",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible"),
            ],
        ),
    ],
)
def test_exif_rotated_train_crops_match_the_upright_photo(
    tmp_path: Path, dali_backend: str
) -> None:
    """The train view's crop is drawn on the upright size: a 640×480 photo stored sideways
    with EXIF orientation 6 gives the same crops as the same photo stored upright."""
    from skimage import data

    upright = np.ascontiguousarray(data.astronaut()[:480, :320])  # portrait, 320 wide
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways, plain = io.BytesIO(), io.BytesIO()
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        sideways, format="JPEG", quality=100, exif=exif.tobytes()
    )
    Image.fromarray(upright).save(plain, format="JPEG", quality=100)
    view = View(image_size=64, train=True, randaugment_n=0, flip=False, scale=(0.1, 0.3))
    outputs = []
    for name, encoded, size in (("exif", sideways, (480, 320)), ("plain", plain, (320, 480))):
        directory = write_set(tmp_path / name, [encoded.getvalue()] * 16, [0] * 16, 1, size)
        device = "cuda" if dali_backend == "dali-gpu" else "cpu"
        loader = make(directory, view, dali_backend, seed=5, device=device)
        outputs.append(epoch(loader)[0].cpu())
    exif_crops, plain_crops = outputs
    same = (exif_crops - plain_crops).abs().mean()
    shuffled = (exif_crops - plain_crops.roll(1, dims=0)).abs().mean()
    assert same < 0.1 * shuffled  # the same windows, up to JPEG's rounding
