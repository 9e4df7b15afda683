"""Verdicts with uncertainty: a claim's statistic, its 95% confidence interval, and one of four
verdicts (RULE says how, in the words the scorecard page prints).

A claim says that a quantity rises or falls with the AR strength eps. Its statistic is the
*change* of the quantity from the weakest to the strongest AR: its value at the strongest minus
its value at the weakest (means over seeds), so that a bump at a strength between is not read as
a trend (a least-squares line through 4.34, 6.89, 4.10 "falls"); the chapters show the strengths
between step by step. The quantities are means over examples (accuracy, loss, loss variation) or
functions of such means (the gaps, the std of the margins), so a network's sampling noise comes
from its examples.

The interval is a two-level percentile bootstrap: at each strength the networks of the different
seeds are resampled (the outer level), then the examples every network is evaluated on (the
inner level; the same resampled test and training examples for every network, because all
networks of a build see the same subsets). A network with no per-example data (only its
summary metrics, or the paper's published table) enters with the sampling noise its set sizes
imply: binomial for an accuracy, the published per-example std for a mean whose spread the paper
gives (Table 1), none for a mean whose spread is unknown (its value is taken as exact, and the
estimate says so). Such networks are drawn independently of each other: the pairing through a
shared test set is unknown, so their intervals are, if anything, too wide. A fraction of layers ("most layers") gets the exact binomial (Clopper-Pearson)
interval around one half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.stats import binomtest

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "reproduced", "contradicted", "inconclusive", "not run here"
NOT_TESTABLE = "not testable"  # a claim about a change of trend, where the trend it changes is not there
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_TESTABLE)
LEVEL = 0.95
N_BOOT = 2000
FIT_THRESHOLD = 80.0  # percent clean training accuracy (no augmentation) for a network to fit its training set

RULE = (
    "Each claim says that a quantity rises or falls as the AR strength grows. For each claim we compute one "
    "number, the *change* of the quantity from the weakest to the strongest AR (its value at the strongest "
    "minus its value at the weakest, means over seeds; the strengths between are read step by step in the "
    "chapters; standard training, eps 0, is the chapters' reference and not part of the statistic; for a claim "
    "about layers, the fraction of layers that follow it), and a 95% "
    "confidence interval for it: a bootstrap that resamples the networks trained with different seeds and "
    "then the test and training examples they are evaluated on. The verdict is **reproduced** when the whole "
    "interval lies on the side of 'no effect' (a change of zero; for layers, one half) that the paper claims, "
    "**contradicted** when it lies wholly on the other side, **inconclusive** when it contains 'no effect', and "
    "**not run here** when this build has not trained the networks the claim needs. One claim is about a change "
    "of trend (spectral normalisation turns a rising error gap into a falling one): it is **not testable** where "
    "the rising trend it would turn is not itself reproduced. With a single seed the "
    "interval covers only the sampling of examples, not the variation from one training run to the next; with "
    "three seeds, the resampling of seeds at a strength can draw only 10 distinct sets of them, so that part of "
    "the interval is coarse. "
    "The paper's own numbers are judged by the same rule: it publishes one network per strength, so their "
    "interval holds the sampling noise of its 10,000 test and 50,000 training images only (binomial for "
    "accuracies, the published per-example std for loss variation, Table 1); it publishes no spread for mean "
    "losses, so a loss claim's paper verdict rests on the published values alone. Next to each verdict, the "
    f"regime check says whether every network the claim rests on fits its training set (at least "
    f"{FIT_THRESHOLD:g}% clean training accuracy): a network that does not fit has small margins, small loss "
    "variation and a small gap for a reason other than the paper's mechanism."
)

CHAPTER_RULE = (
    "The chapters' verdict lines ask a different question, without an interval: does the claimed direction "
    "hold at every step from one AR strength to the next (means over seeds), and in how many of the seeds taken one "
    "at a time. "
    "They can disagree with the scorecard in both ways: a chapter's 'does not hold' beside a reproduced verdict "
    "(a bump at a strength between, with the weakest and strongest AR still apart beyond the noise), and "
    "'holds' beside an inconclusive one (every step goes the claimed way, each by less than the noise). Only the "
    "scorecard's interval decides whether a trend is more than noise."
)


def verdict(low: float, high: float, direction: int, null: float = 0.0) -> str:
    """The rule: the interval [low, high] against `null` (no effect) and the claimed direction
    (+1: rises, -1: falls). NaN bounds mean no data: not run here."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return NOT_RUN
    if low > null:
        return REPRODUCED if direction > 0 else CONTRADICTED
    if high < null:
        return REPRODUCED if direction < 0 else CONTRADICTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Estimate:
    """A statistic, its confidence interval and how it was obtained."""

    value: float
    low: float
    high: float
    n_seeds: int = 0  # the fewest seeds at any strength (0: no data)
    point_only: tuple[str, ...] = ()  # quantities taken as exact (no published spread)
    null: float = 0.0
    fraction: bool = False  # a fraction of layers (shown as a percentage), not a change

    def verdict(self, direction: int) -> str:
        return verdict(self.low, self.high, direction, self.null)

    @property
    def exact(self) -> bool:
        """Whether the estimate has no interval: every quantity it rests on is taken as exact."""
        return bool(self.point_only) and self.low == self.high == self.value

    @property
    def interval(self) -> str:
        if math.isnan(self.value):
            return ""
        if self.fraction:
            return f"{self.value:.0%} [{self.low:.0%}, {self.high:.0%}]"
        if self.exact:
            return f"{self.value:+.3g} (no spread published)"
        return f"{self.value:+.3g} [{self.low:+.3g}, {self.high:+.3g}]"


MISSING = Estimate(math.nan, math.nan, math.nan)


# ----------------------------------------------------------------------------- networks

@dataclass
class Network:
    """One trained network as the bootstrap sees it: per-example columns named "split:quantity"
    (e.g. "test:correct" 0/1, "test:loss"), resampled together with every other network's
    columns of the same split, and summary columns {name: (mean, standard error or None)}, drawn
    from a normal distribution (None: taken as exact)."""

    eps: float
    seed: int = 0
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    summaries: dict[str, tuple[float, float | None]] = field(default_factory=dict)

    def point(self, column: str) -> float:
        if column in self.examples:
            return float(np.mean(self.examples[column], dtype=np.float64))
        if column in self.summaries:
            return float(self.summaries[column][0])
        raise KeyError(f"network at eps {self.eps:g} (seed {self.seed}) has no {column!r}")


def binomial_se(percent: float, n: int) -> float:
    """Standard error of a proportion (as a fraction) measured on n examples."""
    p = min(max(percent / 100.0, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / max(n, 1))


def summary_network(eps: float, metrics: dict, n_train: int | None, n_test: int | None, seed: int = 0,
                    loss_variation: tuple[float, float] | None = None) -> Network:
    """A network known only by its metrics (the paper's tables, or a run without per-example
    artifacts): accuracies get binomial noise over their set sizes, mean losses none."""
    s: dict[str, tuple[float, float | None]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        if f"{split}_acc" in metrics and n:
            s[f"{split}:correct"] = (metrics[f"{split}_acc"] / 100, binomial_se(metrics[f"{split}_acc"], n))
        if f"{split}_loss" in metrics:
            s[f"{split}:loss"] = (metrics[f"{split}_loss"], None)
    if "pgd_acc" in metrics and "test_acc" in metrics and n_test:
        n_correct = round(metrics["test_acc"] / 100 * n_test)
        s["test:pgd_correct"] = (metrics["pgd_acc"] / 100, binomial_se(metrics["pgd_acc"], n_correct))
    if loss_variation is not None and n_test:
        mean, std = loss_variation
        s["test:loss_variation"] = (mean, std / math.sqrt(n_test))
    return Network(eps, seed, summaries=s)


# Each metric is a function of column means; `m(column)` returns them (an array over replicates).
METRICS: dict[str, Callable[[Callable[[str], np.ndarray]], np.ndarray]] = {
    "train_acc": lambda m: 100 * m("train:correct"),
    "test_acc": lambda m: 100 * m("test:correct"),
    "test_error": lambda m: 100 * (1 - m("test:correct")),
    "gap_acc": lambda m: 100 * (m("train:correct") - m("test:correct")),
    "train_loss": lambda m: m("train:loss"),
    "test_loss": lambda m: m("test:loss"),
    "gap_loss": lambda m: m("test:loss") - m("train:loss"),
    "margin_std": lambda m: np.sqrt(np.maximum(m("test:margin_sq") - m("test:margin") ** 2, 0.0)),
    "loss_variation": lambda m: m("test:loss_variation"),
    "pgd_acc": lambda m: 100 * m("test:pgd_correct"),
}


class _Replicates:
    """Column means over `b` bootstrap replicates: one resampling of each split's examples,
    shared by every network (paired), and independent normal draws for summary columns."""

    def __init__(self, rng: np.random.Generator, b: int):
        self.rng, self.b = rng, b
        self.indices: dict[tuple[str, int], np.ndarray] = {}
        self.point_only: set[str] = set()

    def _index(self, split: str, n: int) -> np.ndarray:
        if (split, n) not in self.indices:
            self.indices[split, n] = self.rng.integers(0, n, size=(self.b, n))
        return self.indices[split, n]

    def means(self, net: Network) -> Callable[[str], np.ndarray]:
        def m(column: str) -> np.ndarray:
            if column in net.examples:
                values = np.asarray(net.examples[column], dtype=np.float64)
                return values[self._index(column.split(":")[0], len(values))].mean(axis=1)
            mean, se = net.summaries[column]
            if not se:
                if se is None:
                    self.point_only.add(column)
                return np.full(self.b, float(mean))
            return self.rng.normal(mean, se, self.b)
        return m


def endpoint_change(eps, values) -> np.ndarray:
    """The change of values (..., n_eps) from the weakest to the strongest AR: the value at the
    largest eps minus the value at the smallest."""
    x = np.asarray(eps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return y[..., int(np.argmax(x))] - y[..., int(np.argmin(x))]


def trend_estimate(networks: list[Network], metric: str, n_boot: int = N_BOOT, seed: int = 0,
                   level: float = LEVEL, chunk: int = 250) -> Estimate:
    """The change of `metric` from the weakest to the strongest AR (means over seeds at each strength) and its
    bootstrap interval: seeds resampled within each strength, then examples (see the module
    docstring). MISSING when fewer than two strengths have networks. Deterministic given `seed`."""
    strengths = sorted({float(n.eps) for n in networks})
    if len(strengths) < 2:
        return MISSING
    groups = [[n for n in networks if float(n.eps) == e] for e in strengths]
    compute = METRICS[metric]
    def point(net: Network) -> float:
        return float(compute(lambda column: np.float64(net.point(column))))

    value = endpoint_change(strengths, [np.mean([point(n) for n in g]) for g in groups])
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, len(strengths)))
    point_only: set[str] = set()
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = _Replicates(rng, b)
        for j, group in enumerate(groups):
            values = np.stack([compute(draws.means(n)) for n in group], axis=1)  # (b, seeds)
            pick = rng.integers(0, len(group), size=(b, len(group)))
            reps[start:start + b, j] = np.take_along_axis(values, pick, axis=1).mean(axis=1)
        point_only |= draws.point_only
    low, high = np.percentile(endpoint_change(strengths, reps), [50 * (1 - level), 50 * (1 + level)])
    return Estimate(float(value), float(low), float(high), min(len(g) for g in groups), tuple(sorted(point_only)))


def majority_estimate(k: int, n: int, level: float = LEVEL) -> Estimate:
    """The fraction k / n of layers that follow a claim, with its exact binomial (Clopper-Pearson)
    interval; 'most layers' is reproduced when the interval lies above one half."""
    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan, null=0.5, fraction=True)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return Estimate(k / n, float(ci.low), float(ci.high), null=0.5, fraction=True)


# ----------------------------------------------------------------------------- regime

def fits(train_acc: float, threshold: float = FIT_THRESHOLD) -> bool:
    """Whether a network fits its training set: clean training accuracy >= threshold percent."""
    return train_acc >= threshold


def regime_check(train_accs, labels=None, threshold: float = FIT_THRESHOLD) -> str:
    """One line for a claim: do all its networks fit their training sets? `train_accs` in percent,
    `labels` name the networks (e.g. "eps 16"); empty input means no networks to check."""
    accs = [float(a) for a in train_accs]
    if not accs:
        return ""
    if any(math.isnan(a) for a in accs):
        return "training accuracy not published"
    labels = list(labels) if labels is not None else [f"network {i + 1}" for i in range(len(accs))]
    outside = [f"{lab} ({a:.1f}%)" for lab, a in zip(labels, accs) if not fits(a, threshold)]
    if not outside:
        return f"fits (training accuracy >= {min(accs):.1f}%)"
    return f"OUTSIDE the regime: {', '.join(outside)} below {threshold:g}% training accuracy"
