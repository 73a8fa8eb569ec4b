"""Robustness metrics against hand-computed numbers and the benchmarks' own definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ns_train.evaluation.robustness_metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    ALEXNET_ERRORS_BY_SEVERITY,
    BENCHMARK_CORRUPTIONS,
    BENCHMARK_PERTURBATIONS,
    EXTRA_CORRUPTIONS,
    EXTRA_PERTURBATIONS,
    IMAGENET_1K_WNIDS,
    IMAGENET_A_INDICES,
    IMAGENET_A_WNIDS,
    NOISE_PERTURBATIONS,
    calibration_error_from_bins,
    corruption_error,
    corruption_summary,
    expected_calibration_error,
    flip_probability,
    flip_rate,
    masked_argmax,
    mean_corruption_error,
    mean_flip_rate,
    relative_corruption_error,
    reliability_bins,
    subset_mask,
    top5_distance,
)


def scaled(errors: dict[str, dict[int, float]], k: float) -> dict[str, dict[int, float]]:
    return {c: {s: k * e for s, e in by_severity.items()} for c, by_severity in errors.items()}


# --- calibration -------------------------------------------------------------------------------


def test_ece_of_a_perfectly_calibrated_toy_is_zero() -> None:
    # 0.5-confident predictions half right, 1.0-confident ones all right.
    assert expected_calibration_error(np.array([0.5, 0.5, 1.0]), np.array([1, 0, 1])) == 0.0


def test_ece_hand_example() -> None:
    # Bin of 0.9: acc 1/2, conf 0.9 -> 2/4 * 0.4; bin of 0.6: acc 1, conf 0.6 -> 2/4 * 0.4.
    # ECE = 0.2 + 0.2 = 0.4.
    ece = expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 0, 1, 1]))
    assert ece == pytest.approx(0.4)


def test_reliability_bins_use_upper_closed_edges() -> None:
    # Bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; 0 joins the first, an edge the bin it closes.
    bins = reliability_bins(np.array([0.0, 0.25, 0.5, 0.6, 1.0]), np.array([0, 1, 1, 0, 1]), 4)
    assert bins.lower.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert bins.count.tolist() == [2, 1, 1, 1]
    assert bins.accuracy.tolist() == [0.5, 1.0, 0.0, 1.0]
    assert bins.confidence.tolist() == pytest.approx([0.125, 0.5, 0.6, 1.0])
    empty = reliability_bins(np.array([0.9]), np.array([True]), 2)
    assert np.isnan(empty.confidence[0]) and empty.count.tolist() == [0, 1]
    # ECE from the bins: (2 * 0.375 + 1 * 0.5 + 1 * 0.6 + 0) / 5.
    assert bins.expected_calibration_error() == pytest.approx(0.37)


def test_reliability_bins_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="one shape"):
        reliability_bins(np.array([0.5, 0.5]), np.array([1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins(np.array([1.5]), np.array([1]))


# --- ImageNet-C --------------------------------------------------------------------------------


def test_alexnet_averages_are_the_mean_of_the_severities() -> None:
    assert set(ALEXNET_ERRORS) == set(BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS)
    assert set(ALEXNET_ERRORS_BY_SEVERITY) == set(ALEXNET_ERRORS)
    for c, average in ALEXNET_ERRORS.items():
        assert list(ALEXNET_ERRORS_BY_SEVERITY[c]) == [1, 2, 3, 4, 5]
        assert np.mean(list(ALEXNET_ERRORS_BY_SEVERITY[c].values())) == pytest.approx(average)
    assert ALEXNET_ERRORS["gaussian_noise"] == 0.886428


def test_errors_equal_to_alexnet_give_mce_one() -> None:
    summary = corruption_summary(ALEXNET_ERRORS_BY_SEVERITY, clean_error=ALEXNET_CLEAN_ERROR)
    assert summary.mce == pytest.approx(1.0)
    assert summary.relative_mce == pytest.approx(1.0)
    assert summary.benchmark == BENCHMARK_CORRUPTIONS and summary.missing == ()
    assert summary.extra == EXTRA_CORRUPTIONS
    assert summary.error["fog"] == pytest.approx(ALEXNET_ERRORS["fog"])


def test_errors_k_times_alexnet_give_k() -> None:
    summary = corruption_summary(scaled(ALEXNET_ERRORS_BY_SEVERITY, 0.5))
    assert summary.mce == pytest.approx(0.5)
    assert summary.relative_ce == {} and summary.relative_mce is None
    # The float baseline (AlexNet's average) gives the same CE when all 5 severities are there.
    fog = scaled(ALEXNET_ERRORS_BY_SEVERITY, 0.5)["fog"]
    assert corruption_error(fog, ALEXNET_ERRORS["fog"]) == pytest.approx(0.5)


def test_a_subset_of_severities_is_normalized_at_those_severities() -> None:
    assert corruption_error({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6, 3: 0.7}) == pytest.approx(1.0)
    alexnet = ALEXNET_ERRORS_BY_SEVERITY["fog"]
    partial = {"fog": {1: alexnet[1] * 2, 2: alexnet[2] * 2}}
    assert corruption_summary(partial).ce["fog"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"no errors at severities \[6\]"):
        corruption_error({1: 0.5, 6: 0.6}, {1: 0.5, 2: 0.6})


def test_ece_from_bin_sums_equals_ece_from_predictions() -> None:
    confidence = np.array([0.9, 0.9, 0.6, 0.6, 0.2])
    correct = np.array([1, 0, 1, 1, 0])
    bins = reliability_bins(confidence, correct)
    sums = np.nan_to_num(bins.confidence) * bins.count
    hits = np.nan_to_num(bins.accuracy) * bins.count
    from_sums = calibration_error_from_bins(bins.count, sums, hits)
    assert from_sums == pytest.approx(expected_calibration_error(confidence, correct))


def test_relative_ce_hand_example() -> None:
    errors, baseline = {1: 0.3, 2: 0.5}, {1: 0.6, 2: 0.8}
    # ((0.3 - 0.2) + (0.5 - 0.2)) / ((0.6 - 0.4) + (0.8 - 0.4)) = 0.4 / 0.6.
    assert relative_corruption_error(errors, 0.2, baseline, 0.4) == pytest.approx(2 / 3)
    # (0.3 + 0.5) / (0.6 + 0.8).
    assert corruption_error(errors, baseline) == pytest.approx(4 / 7)
    # Float baseline: (mean 0.4 - 0.2) / (0.7 - 0.4).
    assert relative_corruption_error(errors, 0.2, 0.7, 0.4) == pytest.approx(2 / 3)


def test_extra_corruptions_stay_out_of_the_mce() -> None:
    errors = dict(ALEXNET_ERRORS_BY_SEVERITY)
    del errors["saturate"], errors["spatter"], errors["gaussian_blur"]
    errors["speckle_noise"] = scaled(ALEXNET_ERRORS_BY_SEVERITY, 2.0)["speckle_noise"]
    summary = corruption_summary(errors)
    assert summary.ce["speckle_noise"] == pytest.approx(2.0)
    assert summary.mce == pytest.approx(1.0)
    assert summary.extra == ("speckle_noise",)


def test_mce_averages_the_corruptions_present_and_lists_the_missing() -> None:
    errors = {
        "fog": ALEXNET_ERRORS_BY_SEVERITY["fog"],
        "gaussian_noise": scaled(ALEXNET_ERRORS_BY_SEVERITY, 0.5)["gaussian_noise"],
    }
    summary = corruption_summary(errors, clean_error=0.2)
    assert summary.mce == pytest.approx(0.75)
    assert summary.benchmark == ("gaussian_noise", "fog")
    assert len(summary.missing) == 13 and "fog" not in summary.missing
    record = json.loads(json.dumps(summary.to_dict()))
    assert record["normalized_by"] == "alexnet" and record["mce"] == pytest.approx(0.75)
    assert record["benchmark"] == ["gaussian_noise", "fog"]
    assert mean_corruption_error({"speckle_noise": 2.0, "fog": 1.5}) == 1.5
    with pytest.raises(ValueError, match="none of the corruptions"):
        mean_corruption_error({"speckle_noise": 2.0})


def test_custom_baseline_is_per_severity() -> None:
    errors = {"fog": {1: 0.2, 2: 0.4}, "snow": {1: 0.3, 2: 0.3}}
    baseline = {"fog": {1: 0.4, 2: 0.8}, "snow": {1: 0.2, 2: 0.4}}
    summary = corruption_summary(
        errors, clean_error=0.1, baseline=baseline, baseline_clean_error=0.1
    )
    assert summary.ce == pytest.approx({"fog": 0.5, "snow": 1.0})
    # snow: (0.2 + 0.2) / (0.1 + 0.3) = 1; fog: (0.1 + 0.3) / (0.3 + 0.7) = 0.4.
    assert summary.relative_mce == pytest.approx(0.7)
    assert summary.normalized_by == "custom"
    with pytest.raises(ValueError, match="baseline_clean_error"):
        corruption_summary(errors, clean_error=0.1, baseline=baseline)
    with pytest.raises(ValueError, match=r"no errors for \['fog'\]"):
        corruption_summary(errors, baseline={"snow": baseline["snow"]})


# --- ImageNet-P --------------------------------------------------------------------------------


def test_noise_perturbations_follow_the_benchmark_rule() -> None:
    assert {"gaussian_noise", "shot_noise", "speckle_noise"} == NOISE_PERTURBATIONS
    assert "spatter" in EXTRA_PERTURBATIONS and "snow" in BENCHMARK_PERTURBATIONS


def test_flip_probability_noise_rule_vs_frame_to_frame() -> None:
    predictions = np.array([[1, 2, 2, 2], [3, 3, 3, 3]])
    # Noise: frames 2-4 against frame 1: 3 flips, then 0 -> 3 / 6.
    assert flip_probability(predictions, noise_sequence=True) == pytest.approx(0.5)
    # Frame to frame: 1->2 flips, 2->2, 2->2 -> 1 flip, then 0 -> 1 / 6.
    assert flip_probability(predictions, noise_sequence=False) == pytest.approx(1 / 6)


def test_top5_distance_hand_rankings() -> None:
    a = [0, 1, 2, 3, 4, 5]
    swapped = [1, 0, 2, 3, 9, 5]  # classes 0 and 1 swap (1 + 1), class 4 leaves the top 5 (|4-5|)
    assert top5_distance(np.array([[a, swapped]]), noise_sequence=False) == 3.0
    dropped = [5, 1, 2, 3, 4, 0]  # class 0 falls to rank 5: |0 - 5|; class 5 entering is free
    assert top5_distance(np.array([[a, dropped]]), noise_sequence=False) == 5.0
    b = [1, 0, 2, 3, 4, 5]
    # Frame to frame: d(a, b) = 2, d(b, b) = 0; noise: d(a, b) = d(a, b) = 2.
    assert top5_distance(np.array([[a, b, b]]), noise_sequence=False) == 1.0
    assert top5_distance(np.array([[a, b, b]]), noise_sequence=True) == 2.0


def benchmark_top5_distance(scores: np.ndarray, noise: bool) -> float:
    """`ranking_dist(mode='top5')` of hendrycks/robustness ImageNet-P/test.py, difficulty 1."""
    classes = scores.shape[-1]
    cum_sum_top5 = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (classes - 1 - 5)))
    result = 0.0
    for video in scores:
        ranks = [np.argsort(np.argsort(-frame, kind="stable")) + 1 for frame in video]
        distances = []
        perm1_inv = np.argsort(ranks[0])
        for rank in ranks[1:]:
            sigma = rank[perm1_inv]
            distances.append(np.sum(np.abs(cum_sum_top5[:5] - cum_sum_top5[sigma - 1][:5])))
            if not noise:
                perm1_inv = np.argsort(rank)
        result += np.mean(distances) / len(scores)
    return result


@pytest.mark.parametrize("noise", [True, False])
def test_top5_distance_matches_the_benchmark_code(noise: bool) -> None:
    scores = np.random.default_rng(0).normal(size=(3, 5, 10))
    rankings = np.argsort(-scores, axis=-1, kind="stable")
    assert top5_distance(rankings, noise) == pytest.approx(benchmark_top5_distance(scores, noise))


def test_flip_rates_normalize_by_the_baseline() -> None:
    fp = {"gaussian_noise": 0.02, "translate": 0.1, "shear": 0.5}
    baseline = {"gaussian_noise": 0.04, "translate": 0.05, "shear": 0.1}
    assert flip_rate(0.02, "gaussian_noise", baseline) == pytest.approx(0.5)
    # (0.5 + 2.0) / 2; shear is a validation perturbation, not in the mean.
    assert mean_flip_rate(fp, baseline) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="'rotate'"):
        flip_rate(0.1, "rotate", baseline)


# --- ImageNet-A --------------------------------------------------------------------------------


def test_imagenet_a_classes() -> None:
    assert len(IMAGENET_1K_WNIDS) == len(set(IMAGENET_1K_WNIDS)) == 1000
    assert list(IMAGENET_1K_WNIDS) == sorted(IMAGENET_1K_WNIDS)
    assert len(IMAGENET_A_INDICES) == 200 and list(IMAGENET_A_INDICES) == sorted(IMAGENET_A_INDICES)
    # First, 101st and last of natural-adv-examples' `imagenet_a_wnids` and `indices_in_1k`.
    assert (IMAGENET_A_INDICES[0], IMAGENET_A_INDICES[100], IMAGENET_A_INDICES[-1]) == (6, 496, 988)
    assert (IMAGENET_A_WNIDS[0], IMAGENET_A_WNIDS[100], IMAGENET_A_WNIDS[-1]) == (
        "n01498041",
        "n03026506",
        "n12267677",
    )
    mask = subset_mask(IMAGENET_1K_WNIDS, IMAGENET_A_WNIDS)
    assert np.flatnonzero(mask).tolist() == list(IMAGENET_A_INDICES)


def test_masked_argmax_stays_inside_the_subset() -> None:
    logits = np.array([[5.0, 1.0, 3.0, 0.0], [0.0, 2.0, 1.0, 9.0]])
    mask = np.array([False, True, True, False])
    assert logits.argmax(axis=-1).tolist() == [0, 3]
    assert masked_argmax(logits, mask).tolist() == [2, 1]
    with pytest.raises(ValueError, match="non-empty"):
        masked_argmax(logits, np.zeros(4, dtype=bool))


def test_subset_mask_names_up_to_five_missing_classes() -> None:
    with pytest.raises(ValueError, match=r"^6 present classes .* 2: x, y, z, w, v, \.\.\.$"):
        subset_mask(["a", "b"], ["a", "x", "y", "z", "w", "v", "u"])
    assert subset_mask(["a", "b", "c"], ["c", "a"]).tolist() == [True, False, True]
