"""Robustness and calibration metrics: ECE, ImageNet-C (m)CE, ImageNet-P flip rates, ImageNet-A.

Pure numpy, no framework: callers pass predictions, confidences or error rates. Every rate is a
fraction (1.0 == 100%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ns_data.robustness.names import CORRUPTIONS
from ns_data.robustness.names import EXTRA_CORRUPTIONS as EXTRA_CORRUPTIONS

# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ReliabilityBins:
    """Equal-width confidence bins for a reliability diagram.

    Bin i holds the confidences in (lower[i], lower[i] + 1/bins] (Guo et al. 2017); a confidence
    of exactly 0 goes to the first bin.
    """

    lower: np.ndarray
    """Lower edge of each bin, shape (bins,)."""
    count: np.ndarray
    """Number of predictions in each bin (int)."""
    confidence: np.ndarray
    """Mean confidence in each bin; NaN where the bin is empty."""
    accuracy: np.ndarray
    """Fraction correct in each bin; NaN where the bin is empty."""

    def expected_calibration_error(self) -> float:
        """ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)| over the non-empty bins."""
        full = self.count > 0
        weight = self.count[full] / self.count.sum()
        return float(np.sum(weight * np.abs(self.accuracy[full] - self.confidence[full])))


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> ReliabilityBins:
    """Bin predictions by confidence: count, mean confidence and accuracy per bin.

    `confidence` (in [0, 1]) and `correct` (bool or 0/1) have one entry per prediction.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct)
    if conf.shape != hit.shape or conf.size == 0:
        raise ValueError(
            f"confidence and correct must be non-empty and of one shape, got {conf.shape} "
            f"and {hit.shape}"
        )
    if not np.all((conf >= 0.0) & (conf <= 1.0)):
        raise ValueError("confidence must lie in [0, 1]")
    if not np.all((hit == 0) | (hit == 1)):
        raise ValueError("correct must be bool or 0/1")
    conf, hit = conf.ravel(), hit.ravel().astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left": a confidence equal to an inner edge belongs to the bin that edge closes.
    index = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=bins) / count
        accuracy = np.bincount(index, weights=hit, minlength=bins) / count
    return ReliabilityBins(lower=edges[:-1], count=count, confidence=mean_conf, accuracy=accuracy)


def calibration_error_from_bins(
    count: np.ndarray, confidence_sum: np.ndarray, correct: np.ndarray
) -> float:
    """ECE from per-bin sums (images, summed confidence, correct predictions per bin), as an
    evaluation that reduces sums over ranks keeps them; the same formula as `reliability_bins`."""
    count = np.asarray(count)
    with np.errstate(invalid="ignore"):
        bins = ReliabilityBins(
            lower=np.linspace(0.0, 1.0, len(count) + 1)[:-1],
            count=count,
            confidence=np.asarray(confidence_sum, dtype=np.float64) / count,
            accuracy=np.asarray(correct, dtype=np.float64) / count,
        )
    return bins.expected_calibration_error() if count.sum() else 0.0


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """ECE (Guo et al. 2017) = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|, `bins` equal-width bins
    (i/bins, (i+1)/bins] over the confidences, as `reliability_bins` makes them."""
    return reliability_bins(confidence, correct, bins).expected_calibration_error()


# ---------------------------------------------------------------------------------------------
# ImageNet-C (Hendrycks & Dietterich 2019)
# ---------------------------------------------------------------------------------------------

BENCHMARK_CORRUPTIONS = CORRUPTIONS
"""The 15 corruptions averaged into the mCE, in the benchmark's order; the 4 held-out validation
corruptions (`EXTRA_CORRUPTIONS`) are reported, never part of the mCE."""

# AlexNet (torchvision weights) top-1 error on ImageNet-C: the "Average" column and severities 1-5
# of the table "AlexNet ImageNet-C Error" in hendrycks/robustness README.md (added in 76d93933,
# PR #20; the same numbers are in issue #10; later READMEs link a spreadsheet instead). The
# averages also appear in the benchmark's consumers, e.g. google-research/augmix imagenet.py.
ALEXNET_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    "speckle_noise": 0.845388,
    "gaussian_blur": 0.787108,
    "spatter": 0.717512,
    "saturate": 0.658248,
}
"""AlexNet's top-1 error per corruption, averaged over the 5 severities."""

ALEXNET_ERRORS_BY_SEVERITY: dict[str, dict[int, float]] = {
    name: dict(enumerate(errors, start=1))
    for name, errors in {
        "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
        "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
        "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
        "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
        "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
        "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
        "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
        "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
        "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
        "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
        "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
        "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
        "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
        "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
        "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
        "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
        "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
        "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
        "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
    }.items()
}
"""AlexNet's top-1 error per corruption and severity (1-5), same source as `ALEXNET_ERRORS`."""

# Not in hendrycks/robustness's code: torchvision documents 56.522% top-1 accuracy for the AlexNet
# weights the benchmark's test.py loads (AlexNet_Weights.IMAGENET1K_V1), i.e. 43.478% error; the
# paper's tables print it as 43.5%.
ALEXNET_CLEAN_ERROR = 0.43478
"""AlexNet's clean ImageNet top-1 error, for the relative CE."""

SeverityErrors = Mapping[int, float]


def _matched_severities(errors: SeverityErrors, baseline: SeverityErrors) -> list[int]:
    """The severities of `errors`; the baseline must have each of them (it may have more: a
    subset of severities is normalized by the baseline's errors at the same severities)."""
    lacking = sorted(set(errors) - set(baseline))
    if lacking:
        raise ValueError(f"the baseline has no errors at severities {lacking}")
    return sorted(errors)


def _normalized(
    errors: SeverityErrors,
    baseline: SeverityErrors | float,
    shift: float,
    baseline_shift: float,
) -> float:
    """sum_s (E_s - shift) / sum_s (E^base_s - baseline_shift); a float baseline is the mean over
    severities: (mean_s E_s - shift) / (baseline - baseline_shift)."""
    if not errors:
        raise ValueError("no severities given")
    if isinstance(baseline, Mapping):
        severities = _matched_severities(errors, baseline)
        numerator = sum(errors[s] - shift for s in severities)
        denominator = sum(baseline[s] - baseline_shift for s in severities)
    else:
        numerator = sum(errors.values()) / len(errors) - shift
        denominator = float(baseline) - baseline_shift
    if denominator == 0:
        raise ValueError("the baseline's denominator is 0")
    return numerator / denominator


def corruption_error(
    errors_by_severity: SeverityErrors, baseline_by_severity: SeverityErrors | float
) -> float:
    """CE_c = sum_s E_s,c / sum_s E^base_s,c, over the severities s given.

    A mapping baseline must have each of them (ValueError naming the missing ones). A float
    baseline is the baseline's error averaged over severities (as `ALEXNET_ERRORS`):
    CE_c = mean_s E_s,c / baseline, the same number when all 5 severities are given.
    """
    return _normalized(errors_by_severity, baseline_by_severity, 0.0, 0.0)


def relative_corruption_error(
    errors_by_severity: SeverityErrors,
    clean_error: float,
    baseline_by_severity: SeverityErrors | float,
    baseline_clean_error: float,
) -> float:
    """Relative CE_c = sum_s (E_s,c - E_clean) / sum_s (E^base_s,c - E^base_clean).

    Severities as in `corruption_error`; a float baseline gives
    (mean_s E_s,c - E_clean) / (baseline - E^base_clean).
    """
    return _normalized(errors_by_severity, baseline_by_severity, clean_error, baseline_clean_error)


def mean_corruption_error(
    ce_by_corruption: Mapping[str, float], corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS
) -> float:
    """mCE = mean_c CE_c over the `corruptions` present in `ce_by_corruption` (others ignored);
    the caller reports which were present."""
    present = [c for c in corruptions if c in ce_by_corruption]
    if not present:
        raise ValueError(f"none of the corruptions {list(corruptions)} is present")
    return sum(ce_by_corruption[c] for c in present) / len(present)


@dataclass(frozen=True, slots=True)
class CorruptionSummary:
    """ImageNet-C results as fractions. The means average the benchmark corruptions present only;
    every other corruption given (the extra ones) has its numbers here but stays out of them."""

    normalized_by: str
    """The baseline the CEs are relative to: "alexnet" or "custom"."""
    error: dict[str, float]
    """Top-1 error per corruption, averaged over its severities."""
    ce: dict[str, float]
    """Corruption error per corruption."""
    relative_ce: dict[str, float]
    """Relative corruption error per corruption; empty without a clean error."""
    mce: float | None
    """Mean CE over `benchmark`; None when no benchmark corruption was given."""
    relative_mce: float | None
    """Mean relative CE over `benchmark`; None without a clean error or benchmark corruption."""
    benchmark: tuple[str, ...]
    """The benchmark corruptions given, in the benchmark's order."""
    extra: tuple[str, ...]
    """The other corruptions given (reported apart, never in the means)."""
    missing: tuple[str, ...]
    """The benchmark corruptions not given."""
    clean_error: float | None
    """The model's clean top-1 error, when known."""

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
        }


def corruption_summary(
    errors: Mapping[str, SeverityErrors],
    *,
    clean_error: float | None = None,
    baseline: Mapping[str, SeverityErrors] | None = None,
    baseline_clean_error: float | None = None,
) -> CorruptionSummary:
    """CE, relative CE, mCE and relative mCE of `errors` (corruption -> severity -> top-1 error).

    Normalized per severity by `baseline` (another model's errors, same shape), by default
    AlexNet's (`ALEXNET_ERRORS_BY_SEVERITY`, `ALEXNET_CLEAN_ERROR`). A corruption given at some
    severities only is normalized by the baseline at those severities. The relative CEs need `clean_error`, and with
    a custom baseline also `baseline_clean_error`.
    """
    if baseline is None:
        if baseline_clean_error is not None:
            raise ValueError("baseline_clean_error needs a baseline; AlexNet's is built in")
        name, baseline, baseline_clean_error = (
            "alexnet",
            ALEXNET_ERRORS_BY_SEVERITY,
            ALEXNET_CLEAN_ERROR,
        )
    else:
        name = "custom"
    unknown = [c for c in errors if c not in baseline]
    if unknown:
        raise ValueError(f"the baseline has no errors for {unknown}")
    if clean_error is not None and baseline_clean_error is None:
        raise ValueError("the relative CE needs baseline_clean_error with a custom baseline")
    benchmark = tuple(c for c in BENCHMARK_CORRUPTIONS if c in errors)
    extra = tuple(c for c in errors if c not in BENCHMARK_CORRUPTIONS)
    ce: dict[str, float] = {}
    relative_ce: dict[str, float] = {}
    for c in benchmark + extra:
        try:
            ce[c] = corruption_error(errors[c], baseline[c])
            if clean_error is not None and baseline_clean_error is not None:
                relative_ce[c] = relative_corruption_error(
                    errors[c], clean_error, baseline[c], baseline_clean_error
                )
        except ValueError as error:
            raise ValueError(f"{c}: {error}") from None
    return CorruptionSummary(
        normalized_by=name,
        error={c: sum(errors[c].values()) / len(errors[c]) for c in benchmark + extra},
        ce=ce,
        relative_ce=relative_ce,
        mce=mean_corruption_error(ce) if benchmark else None,
        relative_mce=mean_corruption_error(relative_ce) if benchmark and relative_ce else None,
        benchmark=benchmark,
        extra=extra,
        missing=tuple(c for c in BENCHMARK_CORRUPTIONS if c not in errors),
        clean_error=clean_error,
    )


# ---------------------------------------------------------------------------------------------
# ImageNet-P (Hendrycks & Dietterich 2019)
# ---------------------------------------------------------------------------------------------

BENCHMARK_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
"""The 10 perturbations averaged into the mFR and mT5D."""

EXTRA_PERTURBATIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")
"""The validation perturbations (hendrycks/robustness README.md: spatter is one of them)."""

NOISE_PERTURBATIONS: frozenset[str] = frozenset(
    p for p in BENCHMARK_PERTURBATIONS + EXTRA_PERTURBATIONS if "noise" in p
)
"""Perturbations whose frames are compared with the first frame (the benchmark's test:
`'noise' in args.perturbation`): gaussian_noise, shot_noise, speckle_noise."""


def _frame_pairs(array: np.ndarray, noise_sequence: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, frame) pairs along axis 1: frame 1 with frames 2..m for noise, else each frame
    with the one before it."""
    if array.ndim < 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"need (sequences, frames >= 2, ...), got shape {array.shape}")
    reference = array[:, :1] if noise_sequence else array[:, :-1]
    return np.broadcast_to(reference, array[:, 1:].shape), array[:, 1:]


def flip_probability(predictions: np.ndarray, noise_sequence: bool) -> float:
    """FP = mean over sequences and j = 2..m of 1[f(x_j) != f(x_1)] for noise sequences, else of
    1[f(x_j) != f(x_{j-1})].

    `predictions` is (sequences, frames) of top-1 class ids. This is `flip_prob` of
    hendrycks/robustness ImageNet-P/test.py at difficulty 1 (the released setting): the mean per
    sequence, averaged over sequences, which equals the overall mean as every sequence has m frames.
    """
    reference, frame = _frame_pairs(np.asarray(predictions), noise_sequence)
    return float(np.mean(reference != frame))


def top5_distance(rankings: np.ndarray, noise_sequence: bool) -> float:
    """T5D = mean over the frame pairs of sum_{k=0..4} |k - min(r_k, 5)|, pairs as in
    `flip_probability`, where r_k is the 0-based rank in the later frame of the class ranked k in
    the reference frame.

    `rankings` is (sequences, frames, K >= 5) of class ids by decreasing score (ties broken by
    class id, as the benchmark's `rankdata(..., method='ordinal')`). This is `dist(mode='top5')`
    with `ranking_dist` of hendrycks/robustness ImageNet-P/test.py: its `cum_sum_top5[r]` is
    min(r, 5), so a class leaving the top 5 counts as rank 5 and only the reference's top 5 count.
    """
    ranks = np.asarray(rankings)
    if ranks.ndim != 3 or ranks.shape[2] < 5:
        raise ValueError(f"rankings must be (sequences, frames, K >= 5), got shape {ranks.shape}")
    reference, frame = _frame_pairs(ranks[..., :5], noise_sequence)
    same = reference[..., :, None] == frame[..., None, :]
    rank = np.where(same.any(axis=-1), same.argmax(axis=-1), 5)
    return float(np.mean(np.abs(np.arange(5) - rank).sum(axis=-1)))


def flip_rate(fp: float, perturbation: str, baseline: Mapping[str, float]) -> float:
    """FR_p = FP_p / FP^base_p, the baseline's flip probability on the same perturbation."""
    if perturbation not in baseline:
        raise ValueError(f"the baseline has no flip probability for {perturbation!r}")
    return fp / baseline[perturbation]


def mean_flip_rate(
    fp_by_perturbation: Mapping[str, float],
    baseline: Mapping[str, float],
    perturbations: Sequence[str] = BENCHMARK_PERTURBATIONS,
) -> float:
    """mFR = mean_p FR_p over the `perturbations` present in `fp_by_perturbation` (others
    ignored); the caller reports which were present."""
    present = [p for p in perturbations if p in fp_by_perturbation]
    if not present:
        raise ValueError(f"none of the perturbations {list(perturbations)} is present")
    return sum(flip_rate(fp_by_perturbation[p], p, baseline) for p in present) / len(present)


# ---------------------------------------------------------------------------------------------
# ImageNet-A (Hendrycks et al. 2021)
# ---------------------------------------------------------------------------------------------

# hendrycks/natural-adv-examples eval_many_models.py `all_wnids` (the sorted ImageNet-1k wnids).
# fmt: off
IMAGENET_1K_WNIDS: tuple[str, ...] = (
    "n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041",
    "n01514668", "n01514859", "n01518878", "n01530575", "n01531178", "n01532829", "n01534433",
    "n01537544", "n01558993", "n01560419", "n01580077", "n01582220", "n01592084", "n01601694",
    "n01608432", "n01614925", "n01616318", "n01622779", "n01629819", "n01630670", "n01631663",
    "n01632458", "n01632777", "n01641577", "n01644373", "n01644900", "n01664065", "n01665541",
    "n01667114", "n01667778", "n01669191", "n01675722", "n01677366", "n01682714", "n01685808",
    "n01687978", "n01688243", "n01689811", "n01692333", "n01693334", "n01694178", "n01695060",
    "n01697457", "n01698640", "n01704323", "n01728572", "n01728920", "n01729322", "n01729977",
    "n01734418", "n01735189", "n01737021", "n01739381", "n01740131", "n01742172", "n01744401",
    "n01748264", "n01749939", "n01751748", "n01753488", "n01755581", "n01756291", "n01768244",
    "n01770081", "n01770393", "n01773157", "n01773549", "n01773797", "n01774384", "n01774750",
    "n01775062", "n01776313", "n01784675", "n01795545", "n01796340", "n01797886", "n01798484",
    "n01806143", "n01806567", "n01807496", "n01817953", "n01818515", "n01819313", "n01820546",
    "n01824575", "n01828970", "n01829413", "n01833805", "n01843065", "n01843383", "n01847000",
    "n01855032", "n01855672", "n01860187", "n01871265", "n01872401", "n01873310", "n01877812",
    "n01882714", "n01883070", "n01910747", "n01914609", "n01917289", "n01924916", "n01930112",
    "n01943899", "n01944390", "n01945685", "n01950731", "n01955084", "n01968897", "n01978287",
    "n01978455", "n01980166", "n01981276", "n01983481", "n01984695", "n01985128", "n01986214",
    "n01990800", "n02002556", "n02002724", "n02006656", "n02007558", "n02009229", "n02009912",
    "n02011460", "n02012849", "n02013706", "n02017213", "n02018207", "n02018795", "n02025239",
    "n02027492", "n02028035", "n02033041", "n02037110", "n02051845", "n02056570", "n02058221",
    "n02066245", "n02071294", "n02074367", "n02077923", "n02085620", "n02085782", "n02085936",
    "n02086079", "n02086240", "n02086646", "n02086910", "n02087046", "n02087394", "n02088094",
    "n02088238", "n02088364", "n02088466", "n02088632", "n02089078", "n02089867", "n02089973",
    "n02090379", "n02090622", "n02090721", "n02091032", "n02091134", "n02091244", "n02091467",
    "n02091635", "n02091831", "n02092002", "n02092339", "n02093256", "n02093428", "n02093647",
    "n02093754", "n02093859", "n02093991", "n02094114", "n02094258", "n02094433", "n02095314",
    "n02095570", "n02095889", "n02096051", "n02096177", "n02096294", "n02096437", "n02096585",
    "n02097047", "n02097130", "n02097209", "n02097298", "n02097474", "n02097658", "n02098105",
    "n02098286", "n02098413", "n02099267", "n02099429", "n02099601", "n02099712", "n02099849",
    "n02100236", "n02100583", "n02100735", "n02100877", "n02101006", "n02101388", "n02101556",
    "n02102040", "n02102177", "n02102318", "n02102480", "n02102973", "n02104029", "n02104365",
    "n02105056", "n02105162", "n02105251", "n02105412", "n02105505", "n02105641", "n02105855",
    "n02106030", "n02106166", "n02106382", "n02106550", "n02106662", "n02107142", "n02107312",
    "n02107574", "n02107683", "n02107908", "n02108000", "n02108089", "n02108422", "n02108551",
    "n02108915", "n02109047", "n02109525", "n02109961", "n02110063", "n02110185", "n02110341",
    "n02110627", "n02110806", "n02110958", "n02111129", "n02111277", "n02111500", "n02111889",
    "n02112018", "n02112137", "n02112350", "n02112706", "n02113023", "n02113186", "n02113624",
    "n02113712", "n02113799", "n02113978", "n02114367", "n02114548", "n02114712", "n02114855",
    "n02115641", "n02115913", "n02116738", "n02117135", "n02119022", "n02119789", "n02120079",
    "n02120505", "n02123045", "n02123159", "n02123394", "n02123597", "n02124075", "n02125311",
    "n02127052", "n02128385", "n02128757", "n02128925", "n02129165", "n02129604", "n02130308",
    "n02132136", "n02133161", "n02134084", "n02134418", "n02137549", "n02138441", "n02165105",
    "n02165456", "n02167151", "n02168699", "n02169497", "n02172182", "n02174001", "n02177972",
    "n02190166", "n02206856", "n02219486", "n02226429", "n02229544", "n02231487", "n02233338",
    "n02236044", "n02256656", "n02259212", "n02264363", "n02268443", "n02268853", "n02276258",
    "n02277742", "n02279972", "n02280649", "n02281406", "n02281787", "n02317335", "n02319095",
    "n02321529", "n02325366", "n02326432", "n02328150", "n02342885", "n02346627", "n02356798",
    "n02361337", "n02363005", "n02364673", "n02389026", "n02391049", "n02395406", "n02396427",
    "n02397096", "n02398521", "n02403003", "n02408429", "n02410509", "n02412080", "n02415577",
    "n02417914", "n02422106", "n02422699", "n02423022", "n02437312", "n02437616", "n02441942",
    "n02442845", "n02443114", "n02443484", "n02444819", "n02445715", "n02447366", "n02454379",
    "n02457408", "n02480495", "n02480855", "n02481823", "n02483362", "n02483708", "n02484975",
    "n02486261", "n02486410", "n02487347", "n02488291", "n02488702", "n02489166", "n02490219",
    "n02492035", "n02492660", "n02493509", "n02493793", "n02494079", "n02497673", "n02500267",
    "n02504013", "n02504458", "n02509815", "n02510455", "n02514041", "n02526121", "n02536864",
    "n02606052", "n02607072", "n02640242", "n02641379", "n02643566", "n02655020", "n02666196",
    "n02667093", "n02669723", "n02672831", "n02676566", "n02687172", "n02690373", "n02692877",
    "n02699494", "n02701002", "n02704792", "n02708093", "n02727426", "n02730930", "n02747177",
    "n02749479", "n02769748", "n02776631", "n02777292", "n02782093", "n02783161", "n02786058",
    "n02787622", "n02788148", "n02790996", "n02791124", "n02791270", "n02793495", "n02794156",
    "n02795169", "n02797295", "n02799071", "n02802426", "n02804414", "n02804610", "n02807133",
    "n02808304", "n02808440", "n02814533", "n02814860", "n02815834", "n02817516", "n02823428",
    "n02823750", "n02825657", "n02834397", "n02835271", "n02837789", "n02840245", "n02841315",
    "n02843684", "n02859443", "n02860847", "n02865351", "n02869837", "n02870880", "n02871525",
    "n02877765", "n02879718", "n02883205", "n02892201", "n02892767", "n02894605", "n02895154",
    "n02906734", "n02909870", "n02910353", "n02916936", "n02917067", "n02927161", "n02930766",
    "n02939185", "n02948072", "n02950826", "n02951358", "n02951585", "n02963159", "n02965783",
    "n02966193", "n02966687", "n02971356", "n02974003", "n02977058", "n02978881", "n02979186",
    "n02980441", "n02981792", "n02988304", "n02992211", "n02992529", "n02999410", "n03000134",
    "n03000247", "n03000684", "n03014705", "n03016953", "n03017168", "n03018349", "n03026506",
    "n03028079", "n03032252", "n03041632", "n03042490", "n03045698", "n03047690", "n03062245",
    "n03063599", "n03063689", "n03065424", "n03075370", "n03085013", "n03089624", "n03095699",
    "n03100240", "n03109150", "n03110669", "n03124043", "n03124170", "n03125729", "n03126707",
    "n03127747", "n03127925", "n03131574", "n03133878", "n03134739", "n03141823", "n03146219",
    "n03160309", "n03179701", "n03180011", "n03187595", "n03188531", "n03196217", "n03197337",
    "n03201208", "n03207743", "n03207941", "n03208938", "n03216828", "n03218198", "n03220513",
    "n03223299", "n03240683", "n03249569", "n03250847", "n03255030", "n03259280", "n03271574",
    "n03272010", "n03272562", "n03290653", "n03291819", "n03297495", "n03314780", "n03325584",
    "n03337140", "n03344393", "n03345487", "n03347037", "n03355925", "n03372029", "n03376595",
    "n03379051", "n03384352", "n03388043", "n03388183", "n03388549", "n03393912", "n03394916",
    "n03400231", "n03404251", "n03417042", "n03424325", "n03425413", "n03443371", "n03444034",
    "n03445777", "n03445924", "n03447447", "n03447721", "n03450230", "n03452741", "n03457902",
    "n03459775", "n03461385", "n03467068", "n03476684", "n03476991", "n03478589", "n03481172",
    "n03482405", "n03483316", "n03485407", "n03485794", "n03492542", "n03494278", "n03495258",
    "n03496892", "n03498962", "n03527444", "n03529860", "n03530642", "n03532672", "n03534580",
    "n03535780", "n03538406", "n03544143", "n03584254", "n03584829", "n03590841", "n03594734",
    "n03594945", "n03595614", "n03598930", "n03599486", "n03602883", "n03617480", "n03623198",
    "n03627232", "n03630383", "n03633091", "n03637318", "n03642806", "n03649909", "n03657121",
    "n03658185", "n03661043", "n03662601", "n03666591", "n03670208", "n03673027", "n03676483",
    "n03680355", "n03690938", "n03691459", "n03692522", "n03697007", "n03706229", "n03709823",
    "n03710193", "n03710637", "n03710721", "n03717622", "n03720891", "n03721384", "n03724870",
    "n03729826", "n03733131", "n03733281", "n03733805", "n03742115", "n03743016", "n03759954",
    "n03761084", "n03763968", "n03764736", "n03769881", "n03770439", "n03770679", "n03773504",
    "n03775071", "n03775546", "n03776460", "n03777568", "n03777754", "n03781244", "n03782006",
    "n03785016", "n03786901", "n03787032", "n03788195", "n03788365", "n03791053", "n03792782",
    "n03792972", "n03793489", "n03794056", "n03796401", "n03803284", "n03804744", "n03814639",
    "n03814906", "n03825788", "n03832673", "n03837869", "n03838899", "n03840681", "n03841143",
    "n03843555", "n03854065", "n03857828", "n03866082", "n03868242", "n03868863", "n03871628",
    "n03873416", "n03874293", "n03874599", "n03876231", "n03877472", "n03877845", "n03884397",
    "n03887697", "n03888257", "n03888605", "n03891251", "n03891332", "n03895866", "n03899768",
    "n03902125", "n03903868", "n03908618", "n03908714", "n03916031", "n03920288", "n03924679",
    "n03929660", "n03929855", "n03930313", "n03930630", "n03933933", "n03935335", "n03937543",
    "n03938244", "n03942813", "n03944341", "n03947888", "n03950228", "n03954731", "n03956157",
    "n03958227", "n03961711", "n03967562", "n03970156", "n03976467", "n03976657", "n03977966",
    "n03980874", "n03982430", "n03983396", "n03991062", "n03992509", "n03995372", "n03998194",
    "n04004767", "n04005630", "n04008634", "n04009552", "n04019541", "n04023962", "n04026417",
    "n04033901", "n04033995", "n04037443", "n04039381", "n04040759", "n04041544", "n04044716",
    "n04049303", "n04065272", "n04067472", "n04069434", "n04070727", "n04074963", "n04081281",
    "n04086273", "n04090263", "n04099969", "n04111531", "n04116512", "n04118538", "n04118776",
    "n04120489", "n04125021", "n04127249", "n04131690", "n04133789", "n04136333", "n04141076",
    "n04141327", "n04141975", "n04146614", "n04147183", "n04149813", "n04152593", "n04153751",
    "n04154565", "n04162706", "n04179913", "n04192698", "n04200800", "n04201297", "n04204238",
    "n04204347", "n04208210", "n04209133", "n04209239", "n04228054", "n04229816", "n04235860",
    "n04238763", "n04239074", "n04243546", "n04251144", "n04252077", "n04252225", "n04254120",
    "n04254680", "n04254777", "n04258138", "n04259630", "n04263257", "n04264628", "n04265275",
    "n04266014", "n04270147", "n04273569", "n04275548", "n04277352", "n04285008", "n04286575",
    "n04296562", "n04310018", "n04311004", "n04311174", "n04317175", "n04325704", "n04326547",
    "n04328186", "n04330267", "n04332243", "n04335435", "n04336792", "n04344873", "n04346328",
    "n04347754", "n04350905", "n04355338", "n04355933", "n04356056", "n04357314", "n04366367",
    "n04367480", "n04370456", "n04371430", "n04371774", "n04372370", "n04376876", "n04380533",
    "n04389033", "n04392985", "n04398044", "n04399382", "n04404412", "n04409515", "n04417672",
    "n04418357", "n04423845", "n04428191", "n04429376", "n04435653", "n04442312", "n04443257",
    "n04447861", "n04456115", "n04458633", "n04461696", "n04462240", "n04465501", "n04467665",
    "n04476259", "n04479046", "n04482393", "n04483307", "n04485082", "n04486054", "n04487081",
    "n04487394", "n04493381", "n04501370", "n04505470", "n04507155", "n04509417", "n04515003",
    "n04517823", "n04522168", "n04523525", "n04525038", "n04525305", "n04532106", "n04532670",
    "n04536866", "n04540053", "n04542943", "n04548280", "n04548362", "n04550184", "n04552348",
    "n04553703", "n04554684", "n04557648", "n04560804", "n04562935", "n04579145", "n04579432",
    "n04584207", "n04589890", "n04590129", "n04591157", "n04591713", "n04592741", "n04596742",
    "n04597913", "n04599235", "n04604644", "n04606251", "n04612504", "n04613696", "n06359193",
    "n06596364", "n06785654", "n06794110", "n06874185", "n07248320", "n07565083", "n07579787",
    "n07583066", "n07584110", "n07590611", "n07613480", "n07614500", "n07615774", "n07684084",
    "n07693725", "n07695742", "n07697313", "n07697537", "n07711569", "n07714571", "n07714990",
    "n07715103", "n07716358", "n07716906", "n07717410", "n07717556", "n07718472", "n07718747",
    "n07720875", "n07730033", "n07734744", "n07742313", "n07745940", "n07747607", "n07749582",
    "n07753113", "n07753275", "n07753592", "n07754684", "n07760859", "n07768694", "n07802026",
    "n07831146", "n07836838", "n07860988", "n07871810", "n07873807", "n07875152", "n07880968",
    "n07892512", "n07920052", "n07930864", "n07932039", "n09193705", "n09229709", "n09246464",
    "n09256479", "n09288635", "n09332890", "n09399592", "n09421951", "n09428293", "n09468604",
    "n09472597", "n09835506", "n10148035", "n10565667", "n11879895", "n11939491", "n12057211",
    "n12144580", "n12267677", "n12620546", "n12768682", "n12985857", "n12998815", "n13037406",
    "n13040303", "n13044778", "n13052670", "n13054560", "n13133613", "n15075141",
)
# fmt: on
"""The 1,000 ImageNet-1k wnids, sorted: the class order of ImageNet-trained models."""

# hendrycks/natural-adv-examples eval.py `indices_in_1k` (the keys of `thousand_k_to_200` that map
# to a class); indexing `all_wnids` with them gives that repository's `imagenet_a_wnids`.
# fmt: off
IMAGENET_A_INDICES: tuple[int, ...] = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76,
    79, 89, 90, 94, 96, 97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144,
    150, 151, 207, 234, 235, 254, 277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310,
    311, 313, 314, 315, 317, 319, 323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372,
    378, 386, 397, 400, 401, 402, 404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445,
    456, 457, 461, 462, 470, 472, 483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543,
    549, 552, 557, 561, 562, 569, 572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627, 640,
    641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758, 763,
    765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831,
    833, 835, 839, 845, 847, 850, 859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924,
    932, 933, 934, 937, 943, 945, 947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986,
    987, 988,
)
# fmt: on
"""The indices into the 1k classes of ImageNet-A's 200 classes, ascending."""

IMAGENET_A_WNIDS: tuple[str, ...] = tuple(IMAGENET_1K_WNIDS[i] for i in IMAGENET_A_INDICES)
"""ImageNet-A's 200 wnids, in the order of `IMAGENET_A_INDICES` (also sorted)."""


def subset_mask(model_classes: Sequence[str], present_classes: Sequence[str]) -> np.ndarray:
    """Bool mask over `model_classes`, True for the classes in `present_classes`."""
    index = {name: i for i, name in enumerate(model_classes)}
    missing = list(dict.fromkeys(c for c in present_classes if c not in index))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} present classes are not among the model's "
            f"{len(model_classes)}: {shown}"
        )
    mask = np.zeros(len(model_classes), dtype=bool)
    mask[[index[c] for c in present_classes]] = True
    return mask


def masked_argmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """argmax_{c : mask[c]} logits[..., c]: indices into the model's classes (the last axis).

    Ranking the masked logits equals the benchmark's argmax over `output[:, indices_in_1k]`,
    mapped back to the model's classes.
    """
    scores, keep = np.asarray(logits), np.asarray(mask, dtype=bool)
    if keep.shape != scores.shape[-1:] or not keep.any():
        raise ValueError(
            f"mask must be a non-empty selection of shape {scores.shape[-1:]}, got {keep.shape}"
        )
    return np.where(keep, scores, -np.inf).argmax(axis=-1)
