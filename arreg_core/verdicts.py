"""Verdicts with uncertainty: a claim's statistic, its 95% confidence interval, and one verdict
(RULE says how, in the words the scorecard page prints), gated by the regime of the networks it
rests on (`NetworkRegime`: fit, generalisation, robustness).

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
estimate says so; the scorecard then judges the paper under assumed per-example spreads,
ASSUMED_LOSS_SPREADS). Such networks are drawn independently of each other: the pairing through a
shared test set is unknown, so their intervals are, if anything, too wide.

A fraction of layers ("most layers", Fig. 5c/d, B.2) is judged against one half. For one network
(one seed, or the paper's) its layers are the units: the exact binomial (Clopper-Pearson) interval.
For several seeds a layer is still one unit and its seeds are repeated measurements of it, not
layers of their own (the same layer of two seeds is alike): the interval bounds the share of layers
whose expected change follows the claim, from one-sided t-tests over the seeds with Holm's
correction (`layer_majority_estimate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.stats import binomtest, ttest_1samp

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "reproduced", "contradicted", "inconclusive", "not run here"
NON_MONOTONE = "non-monotone"  # one step between strengths rises and another falls, each beyond the noise
OUTSIDE = "outside the regime"  # a network the claim rests on is outside the regime the claim needs
NOT_TESTABLE = "not testable"  # a claim about a change of trend, where the trend it changes is not there
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NON_MONOTONE, OUTSIDE, NOT_TESTABLE, NOT_RUN)
LEVEL = 0.95
N_BOOT = 2000
FIT_THRESHOLD = 80.0  # percent clean training accuracy (no augmentation) for a network to fit its training set
# A network generalises (is robust) as the paper's does when its test accuracy (PGD accuracy of the
# correctly classified test images) is at most this many points below the paper's network at the same eps.
GENERALISATION_TOLERANCE = 10.0
ROBUSTNESS_TOLERANCE = 10.0
REGIME_PARTS = ("fit", "generalisation", "robustness")
# Per-example spreads (std, nats) assumed for the paper's mean losses, which it publishes without one;
# the paper's verdict on a loss claim is the one under the largest (the most cautious).
ASSUMED_LOSS_SPREADS = (0.5, 1.0, 2.0)

RULE = (
    "Each claim says that a quantity rises or falls as the AR strength grows. For each claim we compute one "
    "number, the *change* of the quantity from the weakest to the strongest AR (its value at the strongest "
    "minus its value at the weakest, means over seeds; standard training, eps 0, is the chapters' reference and "
    "not part of the statistic; for a claim about layers, the fraction of layers that follow it), and a 95% "
    "confidence interval for it: a bootstrap that resamples the networks trained with different seeds and "
    "then the test and training examples they are evaluated on. The same bootstrap gives an interval for each "
    "step between neighbouring strengths. For a claim about layers the interval is no bootstrap: for one network "
    "(one seed, or the paper's) it is the exact binomial interval over its layers; for several seeds each layer "
    "counts once, its seeds being repeated measurements of it, and the interval runs from the share of layers "
    "that follow the claim beyond the noise of the seeds to the share left when those that go against it beyond "
    "that noise are taken out (one-sided t-tests over the seeds, Holm's correction over all layers). "
    "The verdict is **reproduced** when the whole interval of the change "
    "lies on the side of 'no effect' (a change of zero; for layers, one half) that the paper claims, "
    "**contradicted** when it lies wholly on the other side, **inconclusive** when it contains 'no effect', and "
    "**non-monotone** when one step rises and another falls, each beyond the noise (its interval excludes zero), "
    "whatever the endpoints say. "
    "A verdict rests on networks, and each claim needs some of three parts of the paper's regime: **fit** "
    f"(clean training accuracy at least {FIT_THRESHOLD:g}%), **generalisation** (test accuracy at most "
    f"{GENERALISATION_TOLERANCE:g} points below the paper's network at the same eps) and **robustness** (PGD "
    f"accuracy of the correctly classified test images at most {ROBUSTNESS_TOLERANCE:g} points below the "
    "paper's). Claims about gaps and test quantities need generalisation; claims about gaps need fit too. "
    "Where a network the claim rests on fails a part the claim needs, the verdict is **outside the regime**, "
    "not reproduced or contradicted: what the rule alone would say is shown beside it. A part that cannot be "
    "checked (the paper publishes no such number) does not gate. **not run here**: this build has not "
    "trained the networks the claim needs. One claim is about a change of trend (spectral normalisation "
    "turns a rising error gap into a falling one): it is **not testable** where the rising trend it would "
    "turn is not itself reproduced. With a single seed the interval covers only the sampling of examples, "
    "not the variation from one training run to the next; with three seeds, the resampling of seeds at a "
    "strength can draw only 10 distinct sets of them, so that part of the interval is coarse. "
    "The paper's own numbers are judged by the same rule: it publishes one network per strength, so their "
    "interval holds the sampling noise of its 10,000 test and 50,000 training images only (binomial for "
    "accuracies, the published per-example std for loss variation, Table 1). It publishes no spread for mean "
    "losses: a loss claim's paper interval assumes a per-example spread (std) of the loss of "
    + ", ".join(f"{s:g}" for s in ASSUMED_LOSS_SPREADS) + " nats in turn, and its verdict is the one under "
    f"the largest, {ASSUMED_LOSS_SPREADS[-1]:g} nats (the verdicts under the others are in the row's notes). "
    "The paper's networks are the reference for generalisation and robustness; their fit is checked on the "
    "published training accuracy."
)

CHAPTER_RULE = (
    "Each chapter's verdict section repeats the scorecard's verdict and interval for its claims: the brackets are "
    "95% intervals, bootstraps over the networks and the examples they are evaluated on (for a share of layers, "
    "the interval the scorecard's rule describes); where the "
    "paper publishes mean losses "
    f"without their spread, its interval assumes a per-example spread of {ASSUMED_LOSS_SPREADS[-1]:g} nats (the "
    f"scorecard gives {' and '.join(f'{v:g}' for v in ASSUMED_LOSS_SPREADS[:-1])} too). "
    "The step-by-step reading below it (the quantity at each strength, means over seeds, and in how many seeds "
    "taken one at a time each step goes the claimed way) is supporting detail, not a second verdict."
)


def reverses(steps) -> bool:
    """Whether a series reverses beyond the noise: among the intervals (low, high) of its steps
    between neighbouring strengths, one lies wholly above zero and another wholly below."""
    return any(lo > 0 for lo, _ in steps) and any(hi < 0 for _, hi in steps)


def verdict(low: float, high: float, direction: int, null: float = 0.0, steps=()) -> str:
    """The rule: the interval [low, high] of the change against `null` (no effect) and the
    claimed direction (+1: rises, -1: falls); non-monotone where the `steps`' intervals reverse
    beyond the noise (`reverses`). NaN bounds mean no data: not run here."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return NOT_RUN
    if reverses(steps):
        return NON_MONOTONE
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
    steps: tuple[tuple[float, float], ...] = ()  # the interval of each step between neighbouring strengths
    step_values: tuple[float, ...] = ()  # each step's value (means over seeds)
    strengths: tuple[float, ...] = ()  # the AR strengths the steps are between

    def carried_by(self, direction: int) -> str:
        """Where a change that goes `direction` (+1 rises, -1 falls) beyond the noise comes from some
        steps only: "only the step from eps 8 to 16 rises beyond the noise; the step from eps 4 to 8 is
        inside the noise (-1.5e-05 [-4e-05, +1e-05])" (inside the noise: not shown to go either way,
        whatever its size). "" where every step goes that way beyond the noise, or where the
        steps are unknown (fewer than two)."""
        if len(self.steps) < 2 or len(self.strengths) != len(self.steps) + 1:
            return ""
        name = [f"eps {a:g} to {b:g}" for a, b in zip(self.strengths, self.strengths[1:])]
        along = [(lo > 0) if direction > 0 else (hi < 0) for lo, hi in self.steps]
        if all(along):
            return ""
        other = [f"{n} is {'inside the noise' if lo <= 0 <= hi else 'against it'} ({v:+.3g} [{lo:+.3g}, {hi:+.3g}])"
                 for n, ok, v, (lo, hi) in zip(name, along, self.step_values, self.steps) if not ok]
        carried = [n for n, ok in zip(name, along) if ok]
        verb = ("rise" if direction > 0 else "fall") + ("" if len(carried) > 1 else "s")
        return ((f"only the step{'s' if len(carried) > 1 else ''} from {' and from '.join(carried)} {verb} beyond "
                 "the noise; " if carried else f"no single step {'rises' if direction > 0 else 'falls'} beyond the "
                 "noise; ")
                + "the step from " + " and from ".join(other))

    def verdict(self, direction: int) -> str:
        return verdict(self.low, self.high, direction, self.null, self.steps)

    @property
    def reversal(self) -> str:
        """The steps beyond the noise, in words ("+0.8 [+0.3, +1.2] then -1.1 [-1.6, -0.6]"); "" where
        the series does not reverse."""
        if not reverses(self.steps):
            return ""
        return " then ".join(f"{v:+.3g} [{lo:+.3g}, {hi:+.3g}]" for v, (lo, hi) in zip(self.step_values, self.steps))

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
                    loss_variation: tuple[float, float] | None = None, loss_spread: float | None = None) -> Network:
    """A network known only by its metrics (the paper's tables, or a run without per-example
    artifacts): accuracies get binomial noise over their set sizes, mean losses none, or with
    `loss_spread` (an assumed per-example std, nats) the noise it implies over the set's size."""
    s: dict[str, tuple[float, float | None]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        if f"{split}_acc" in metrics and n:
            s[f"{split}:correct"] = (metrics[f"{split}_acc"] / 100, binomial_se(metrics[f"{split}_acc"], n))
        if f"{split}_loss" in metrics:
            se = loss_spread / math.sqrt(n) if loss_spread is not None and n else None
            s[f"{split}:loss"] = (metrics[f"{split}_loss"], se)
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


def metric_point(net: Network, metric: str) -> float:
    """`metric` (METRICS) of one network, from its point values (no resampling)."""
    return float(METRICS[metric](lambda column: np.float64(net.point(column))))


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
    point = lambda net: metric_point(net, metric)  # noqa: E731

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
    q = [50 * (1 - level), 50 * (1 + level)]
    low, high = np.percentile(endpoint_change(strengths, reps), q)
    means = np.array([np.mean([point(n) for n in g]) for g in groups])
    step_reps = np.diff(reps, axis=1)
    steps = tuple((float(lo), float(hi)) for lo, hi in np.percentile(step_reps, q, axis=0).T)
    return Estimate(float(value), float(low), float(high), min(len(g) for g in groups), tuple(sorted(point_only)),
                    steps=steps, step_values=tuple(float(d) for d in np.diff(means)), strengths=tuple(strengths))


def majority_estimate(k: int, n: int, level: float = LEVEL) -> Estimate:
    """The fraction k / n of layers that follow a claim, with its exact binomial (Clopper-Pearson)
    interval; 'most layers' is reproduced when the interval lies above one half."""
    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan, null=0.5, fraction=True)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return Estimate(k / n, float(ci.low), float(ci.high), null=0.5, fraction=True)


def holm(p_values, alpha: float) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise error `alpha`: the k-th
    smallest p-value (from 0) is tested against alpha / (m - k), until the first that fails."""
    p = np.nan_to_num(np.asarray(p_values, float), nan=1.0)
    rejected = np.zeros(len(p), bool)
    for k, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (len(p) - k):
            break
        rejected[i] = True
    return rejected


def layer_majority_estimate(follows, level: float = LEVEL) -> Estimate:
    """The share of layers that follow a claim (Fig. 5c/d, B.2: "most layers"), from `follows`: one
    row per seed, one column per layer, how far each layer of each seed's network goes the claimed
    way (positive: it does). One seed: `majority_estimate` over the layers of that network. Several:
    each layer is one unit; the value is the share of layers whose mean over seeds goes the claimed
    way, and the interval holds, at `level` for all layers at once, the share whose expected change
    does: its low end counts the layers that go the claimed way beyond the noise of the seeds, its
    high end leaves out those that go the other way beyond it (one-sided t-tests over the seeds,
    both directions of every layer in one Holm family)."""
    follows = np.asarray(follows, float)
    seeds, n = follows.shape if follows.ndim == 2 else (0, 0)
    if seeds < 2 or n == 0:
        return majority_estimate(int((follows > 0).sum()), follows.size, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        along = ttest_1samp(follows, 0.0, alternative="greater").pvalue
        against = ttest_1samp(follows, 0.0, alternative="less").pvalue
    rejected = holm(np.concatenate([along, against]), 1 - level)
    return Estimate(float((follows.mean(axis=0) > 0).mean()), rejected[:n].sum() / n, 1 - rejected[n:].sum() / n,
                    n_seeds=seeds, null=0.5, fraction=True)


# ----------------------------------------------------------------------------- regime

def fits(train_acc: float, threshold: float = FIT_THRESHOLD) -> bool:
    """Whether a network fits its training set: clean training accuracy >= threshold percent."""
    return train_acc >= threshold


@dataclass(frozen=True)
class NetworkRegime:
    """One network's place in the paper's regime, in three parts: fit (its clean training
    accuracy), generalisation (its test accuracy against the paper's network at the same eps) and
    robustness (its PGD accuracy of the correctly classified test images against the paper's).
    NaN: not measured or not published (that part cannot be checked)."""

    label: str
    train_acc: float = math.nan
    test_acc: float = math.nan
    pgd_acc: float = math.nan
    paper_test_acc: float = math.nan
    paper_pgd_acc: float = math.nan

    def part(self, name: str) -> bool | None:
        """Whether the network is inside the regime in part `name` (REGIME_PARTS); None: unknown."""
        if name == "fit":
            return None if math.isnan(self.train_acc) else bool(fits(self.train_acc))
        ours, paper, tolerance = {"generalisation": (self.test_acc, self.paper_test_acc, GENERALISATION_TOLERANCE),
                                  "robustness": (self.pgd_acc, self.paper_pgd_acc, ROBUSTNESS_TOLERANCE)}[name]
        if math.isnan(ours) or math.isnan(paper):
            return None
        return bool(ours >= paper - tolerance)


def _span(values, unit: str = "%") -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "-"
    low, high = min(v), max(v)
    return f"{low:.0f}{unit}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}{unit}"


PART_VALUES = {"fit": ("train_acc", None), "generalisation": ("test_acc", "paper_test_acc"),
               "robustness": ("pgd_acc", "paper_pgd_acc")}
PART_QUANTITIES = {"fit": "train acc", "generalisation": "test acc", "robustness": "PGD acc"}  # what each part reads


def failing(networks, needs) -> dict[str, list[NetworkRegime]]:
    """{part: the networks outside the regime in that part}, for the parts in `needs` that some network fails."""
    out = {}
    for part in needs:
        bad = [n for n in networks if n.part(part) is False]
        if bad:
            out[part] = bad
    return out


def part_state(networks, part: str) -> str:
    """"no" where a network is outside the regime in `part`, "unknown" where none can be checked,
    else "yes"."""
    states = [n.part(part) for n in networks]
    return "no" if any(x is False for x in states) else "unknown" if all(x is None for x in states) else "yes"


def regime_line(networks, needs) -> str:
    """A claim's regime in one short line: each part it `needs`, inside (yes), outside (no, with
    this build's and the paper's numbers, lowest-highest over the networks) or unknown, over the
    `networks` it rests on: "fit yes (train acc 98-100%); generalisation no (test acc 32-39% vs paper 85-89%)"."""
    networks = list(networks)
    parts = []
    for part in needs if networks else ():
        ours, paper = PART_VALUES[part]
        state = part_state(networks, part)
        if state == "no":
            bad = [n for n in networks if n.part(part) is False]
            where = "" if len(bad) == len(networks) else f" at {', '.join(n.label for n in bad)}"
            beside = f" vs paper {_span([getattr(n, paper) for n in bad])}" if paper else f" < {FIT_THRESHOLD:g}%"
            parts.append(f"{part} no ({PART_QUANTITIES[part]} {_span([getattr(n, ours) for n in bad])}{beside}{where})")
        elif state == "unknown":
            parts.append(f"{part} unknown (not published)" if part == "fit" else f"{part} unknown")
        else:
            beside = f" vs paper {_span([getattr(n, paper) for n in networks])}" if paper else ""
            parts.append(f"{part} yes ({PART_QUANTITIES[part]} {_span([getattr(n, ours) for n in networks])}{beside})")
    return "; ".join(parts)


MARKS = {"yes": "✓", "no": "✗", "unknown": "?"}


def regime_marks(networks, needs) -> str:
    """`regime_line` in a few characters: each needed part with a tick (inside), a cross (a network
    outside) or a question mark (unknown): "fit ✓, generalisation ✗"."""
    networks = list(networks)
    return ", ".join(f"{part} {MARKS[part_state(networks, part)]}" for part in needs) if networks else ""


def gate(rule_verdict: str, networks, needs) -> str:
    """The verdict after the regime gate: `rule_verdict` (the rule's) unless a network fails a part
    the claim needs, then OUTSIDE; not run and not testable stand."""
    if rule_verdict in (NOT_RUN, NOT_TESTABLE):
        return rule_verdict
    return OUTSIDE if failing(networks, needs) else rule_verdict


def value_range(values, digits: int = 1, unit: str = "%") -> str:
    """"low-high" of the values that are not NaN, as printed with `digits` decimals and `unit`
    ("97.8-100.0%"); one value where both ends print alike, "-" where there is none."""
    v = [x for x in (float(y) for y in values if y is not None) if not math.isnan(x)]
    if not v:
        return "-"
    low, high = f"{min(v):.{digits}f}", f"{max(v):.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"
