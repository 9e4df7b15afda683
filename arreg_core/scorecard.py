"""The reproduction scorecard: each empirical claim of the paper, the statistic that tests it with
a 95% confidence interval and a verdict (arreg_core.verdicts; the rule in `verdicts.RULE`), once
on the paper's own published numbers and once on this build's networks, with the regime check of
the networks each rests on.

`scorecard(inputs)` reads the tables `inputs(ex)` returns:
    ar_sweep, fgsm, spectral_norm,  runs tables (config fields + metrics, one row per network)
    deeper
    examples                        {run name: {"split:quantity": per-example array}} (`example_columns`)
    spectra                         one row per (run, layer): run, eps, seed, layer, kind, std

Each claim names the parts of the paper's regime it needs (`verdicts.REGIME_PARTS`: fit,
generalisation, robustness); a verdict resting on a network outside one of them is "outside the
regime" (`verdicts.gate`), with what the rule alone says beside it. The chapter pages repeat the
scorecard's verdicts for their claims (`chapter.verdicts_section`) and read the trends step by step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import html
import numpy as np
import pandas as pd

from .paper import dataset as paper_dataset, metrics as paper_metrics, spread_summary, table as paper_table
from .profiles import load_profile
from .verdicts import (ASSUMED_LOSS_SPREADS, CHAPTER_RULE, CONTRADICTED, INCONCLUSIVE, MISSING, NOT_RUN, NOT_TESTABLE,
                       OUTSIDE, PART_VALUES, REGIME_PARTS, REPRODUCED, RULE, Estimate, Network, NetworkRegime, failing,
                       gate, layer_majority_estimate, majority_estimate, metric_point, regime_line, regime_marks,
                       summary_network, trend_estimate, value_range)

__all__ = ["RULE", "CHAPTER_RULE", "CLAIMS", "scorecard", "adversarial_only", "display_table", "regime_table", "display_regime_table",
           "overlapping_claims_line", "example_columns", "SN_DIRECTION", "html_table", "regime_paragraph"]

# Full split sizes (training, test) where a config takes the whole split (n_train / n_test None);
# the paper's tables are on the full CIFAR splits.
FULL_SPLITS = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "cifar10-jpeg": (50_000, 10_000),
               "tinyimagenet": (100_000, 10_000)}
PAPER_ARCH = "resnet56"
RUN_TABLES = ("ar_sweep", "fgsm", "spectral_norm", "deeper")  # the experiments whose runs tables the scorecard reads
LOSS_VARIATION_ATTACK = 4.0  # Table 1's largest attack strength (0-255 scale), the loss_variation default's too

# Table 6: the error gap falls with AR under the tightest clip (SN 1: 6.44, 5.51, 4.76) and still
# rises under SN 3 (9.63, 10.44, 10.51) and SN 5 (10.04, 10.24, 10.64) - "gradually changes". SN 1 is
# the claim that spectral normalisation turns the trend (`_sn_turn`); SN 3 and 5 are Table 6 read per clip.
SN_DIRECTION = {1.0: -1, 3.0: +1, 5.0: +1}
TABLE_6_READ_PER_CLIP = (5.0, 3.0)


# ----------------------------------------------------------------------------- this build's data

def example_columns(piece: str, artifact: dict) -> dict[str, np.ndarray]:
    """The per-example columns the verdicts resample, from one analysis artifact: margins (both
    splits: correct, loss; test margins and their squares) or loss_variation (its largest attack)."""
    if piece == "margins":
        cols = {}
        for split in ("train", "test"):
            cols[f"{split}:correct"] = (artifact[f"{split}_pred"] == artifact[f"{split}_label"]).astype(np.float64)
            cols[f"{split}:loss"] = artifact[f"{split}_loss"].astype(np.float64)
        m = artifact["test_margin"].astype(np.float64)
        return {**cols, "test:margin": m, "test:margin_sq": m ** 2}
    if piece == "loss_variation":
        return {"test:loss_variation": artifact["values"][int(np.argmax(artifact["eps"]))].astype(np.float64)}
    raise ValueError(f"no per-example columns for piece {piece!r}")


def inputs(ex) -> dict:
    """What `scorecard` reads, from the runs of `ex` (an `experiments.Experiments`), for the first
    data set of its sweep (CIFAR-10, whose published numbers the scorecard compares with): the
    runs tables of the AR sweep, FGSM, spectral-norm and deeper-network experiments (every seed);
    `examples`, per run, the per-example columns the bootstrap resamples (margins of both splits
    for every experiment, loss variation for the sweep); and `spectra`, per sweep run and layer,
    the singular-value std (Fig. 5c/d, B.2)."""
    dataset = ex.configs("ar_sweep")[0].dataset
    runs = {exp: ex.runs(exp) for exp in RUN_TABLES}
    runs = {exp: t[t.dataset == dataset].sort_values(["eps", "seed"]) if not t.empty else t
            for exp, t in runs.items()}
    examples: dict[str, dict] = {}
    for experiment in RUN_TABLES:
        if runs[experiment].empty:
            continue
        for piece in ("margins", "loss_variation") if experiment == "ar_sweep" else ("margins",):
            for name, artifact in ex.artifacts(runs[experiment], piece).items():
                examples.setdefault(name, {}).update(example_columns(piece, artifact))
    sweep = runs["ar_sweep"]
    spectra = ex.artifacts(sweep, "spectrum") if not sweep.empty else {}
    layers = pd.DataFrame([{"run": r.run, "eps": r.eps, "seed": r.seed, "layer": name, "kind": kind, "std": std}
                           for r in sweep.itertuples()
                           for name, kind, std in zip(spectra[r.run]["name"], spectra[r.run]["kind"],
                                                      spectra[r.run]["std"])])
    return {**runs, "examples": examples, "spectra": layers}


def _splits(row) -> tuple[int | None, int | None]:
    """A run's (training, test) set sizes: its config's subset sizes, else the full splits."""
    full = FULL_SPLITS.get(getattr(row, "dataset", None), (None, None))
    sizes = [getattr(row, f"n_{split}", None) for split in ("train", "test")]
    return tuple(int(n) if n is not None and not pd.isna(n) else f for n, f in zip(sizes, full))


def networks_of(table: pd.DataFrame | None, examples: dict | None = None) -> list[Network]:
    """This build's networks of a runs table: per-example columns where artifacts exist, and the
    run's metrics (binomial noise over its set sizes) for everything else."""
    if table is None or table.empty:
        return []
    out = []
    for row in table.itertuples():
        n_train, n_test = _splits(row)
        metrics = {k: getattr(row, k) for k in ("train_acc", "test_acc", "train_loss", "test_loss", "pgd_acc")
                   if hasattr(row, k) and not pd.isna(getattr(row, k))}
        net = summary_network(row.eps, metrics, n_train, n_test, seed=int(getattr(row, "seed", 0)))
        net.examples = dict((examples or {}).get(row.run, {}))
        out.append(net)
    return out


def _clip(table: pd.DataFrame | None, clip: float | None) -> pd.DataFrame | None:
    if table is None or table.empty:
        return table
    if clip is None:
        return table[table.spectral_norm.isna()] if "spectral_norm" in table else table
    return table[np.isclose(table.spectral_norm.astype(float), clip)]


def _value(row, name) -> float:
    v = getattr(row, name, math.nan)
    return math.nan if v is None or pd.isna(v) else float(v)


def _reference(experiment: str, clip: float | None) -> tuple[str, str, str]:
    """(method, spectral norm, arch) of the paper's network that an experiment's networks stand in for."""
    method = "fgsm" if experiment == "fgsm" else "pgd"
    arch = PAPER_DEEPER_ARCH if experiment == "deeper" else PAPER_ARCH
    return method, "none" if clip is None else f"{clip:g}", arch


def _regimes_of(table: pd.DataFrame | None, experiment: str = "ar_sweep", prefix: str = "",
                clip: float | None = None) -> tuple[NetworkRegime, ...]:
    """The regime (fit, generalisation, robustness) of every network in a runs table, each against
    the paper's network at the same eps (`_reference`; NaN where the paper has none)."""
    if table is None or table.empty:
        return ()
    t = table.sort_values(["eps", "seed"] if "seed" in table else ["eps"])
    multi = "seed" in t and t.seed.nunique() > 1
    dataset = paper_dataset(t.dataset.iloc[0]) if "dataset" in t else "cifar10"
    ref = _paper_wide(dataset, *_reference(experiment, clip))
    ref.index = ref.index.astype(float)
    out = []
    for r in t.itertuples():
        paper = ref.loc[float(r.eps)] if float(r.eps) in ref.index else pd.Series(dtype=float)
        out.append(NetworkRegime(f"{prefix}eps {r.eps:g}" + (f" seed {r.seed}" if multi else ""),
                                 _value(r, "train_acc"), _value(r, "test_acc"), _value(r, "pgd_acc"),
                                 float(paper.get("test_acc", math.nan)), float(paper.get("pgd_acc", math.nan))))
    return tuple(out)


# ----------------------------------------------------------------------------- the paper's data

def _paper_wide(dataset="cifar10", method="pgd", spectral_norm="none", arch=PAPER_ARCH) -> pd.DataFrame:
    """The paper's table of the network (`paper.results_table`), one row per strength; empty where it publishes none."""
    try:
        return paper_metrics(dataset, arch, method, spectral_norm)
    except ValueError:
        return pd.DataFrame()


def paper_networks(dataset="cifar10", method="pgd", spectral_norm="none", arch=PAPER_ARCH,
                   loss_spread: float | None = None) -> list[Network]:
    """The paper's networks (one per strength) with the noise its set sizes imply; mean losses
    exact, or with an assumed per-example spread `loss_spread` (nats)."""
    wide = _paper_wide(dataset, method, spectral_norm, arch)
    n_train, n_test = FULL_SPLITS.get(dataset, (None, None))
    lv = paper_table("loss_variation")
    lv = lv[(lv.dataset == dataset) & (lv.arch == arch) & (lv.method == method)
            & (lv.eps_attack == LOSS_VARIATION_ATTACK)].set_index("eps_train")
    nets = []
    for eps, row in wide.iterrows():
        variation = (lv.loc[eps, "mean"], lv.loc[eps, "std"]) if method == "pgd" and spectral_norm == "none" \
            and eps in lv.index else None
        nets.append(summary_network(eps, row.dropna().to_dict(), n_train, n_test, loss_variation=variation,
                                    loss_spread=loss_spread))
    return nets


def _paper_regimes(dataset="cifar10", method="pgd", spectral_norm="none", prefix="",
                   arch=PAPER_ARCH) -> tuple[NetworkRegime, ...]:
    """The paper's networks' regime: fit from the published training accuracy (NaN where not
    published); they are the reference for generalisation and robustness."""
    wide = _paper_wide(dataset, method, spectral_norm, arch)
    get = lambda row, k: float(row[k]) if k in row and pd.notna(row[k]) else math.nan  # noqa: E731
    return tuple(NetworkRegime(f"{prefix}eps {e:g}", get(r, "train_acc"), get(r, "test_acc"), get(r, "pgd_acc"),
                               get(r, "test_acc"), get(r, "pgd_acc")) for e, r in wide.iterrows())


def paper_layer_counts(dataset="cifar10") -> tuple[int, int]:
    """Appendix B.2: (layers whose singular-value std fell from eps 4 to 16, all layers), each
    group's count being its printed sum / mean (`paper.spread_summary`; CIFAR-10: 4.7465 / 0.1158 = 41
    and 0.4372 / 0.0312 = 14, the 55 convolutions of ResNet-56)."""
    t = spread_summary()
    layers = t[t.dataset == dataset].set_index("group").layers
    return int(layers["decreased"]), int(layers["decreased"] + layers["increased"])


# ----------------------------------------------------------------------------- claims

@dataclass(frozen=True)
class Side:
    """One side of a claim row (the paper's numbers or this build's)."""

    estimate: Estimate
    networks: tuple[NetworkRegime, ...] = ()  # the networks it rests on, with their regime
    note: str = ""
    verdict: str | None = None  # set when the rule is overridden (a claim that cannot be tested)
    assumed: str = ""  # the assumption its interval rests on, shown beside it ("assumed 2-nat spread")
    reference: str = ""  # standard training (eps 0) where it goes against the claim, in words (`standard_reference`)


@dataclass(frozen=True)
class Claim:
    """One empirical claim: where the paper makes it, its direction over eps (+1 rises, -1 falls),
    the statistic in words, and how to compute each side."""

    claim: str
    figure: str
    direction: int
    statistic: str
    ours: Callable[[dict, "Claim"], Side]
    paper: Callable[["Claim"], Side | None]  # None: no published numbers (figure only)
    expected: str = ""  # the expected outcome in words (default: rises / falls)
    needs: tuple[str, ...] = ("fit",)  # the parts of the regime (verdicts.REGIME_PARTS) the claim needs
    chapter: str = ""  # the chapter (notebooks/NAME.ipynb) whose verdict section repeats it


READABLE = {"train:loss": "mean training loss", "test:loss": "mean test loss"}
METRIC_NAMES = {"train_loss": "training loss", "test_loss": "test loss", "gap_loss": "loss gap", "gap_acc": "error gap",
                "test_error": "test error", "margin_std": "spread of the test margins",
                "loss_variation": "loss variation", "pgd_acc": "PGD accuracy"}  # verdicts.METRICS in words


def _trend_side(networks: list[Network], metric: str, fit: tuple[NetworkRegime, ...], n_boot: int, seed: int,
                paper: bool = False) -> Side:
    est = trend_estimate(networks, metric, n_boot=n_boot, seed=seed) if networks else MISSING
    notes = []
    if paper:
        notes.append("one published network per strength: the interval covers the sampling of its test and "
                     "training images only")
    elif est.n_seeds == 1:
        notes.append("1 seed: the interval covers the sampling of test and training examples only, not the "
                     "variation between training runs")
    if est.point_only:
        what = " and ".join(READABLE.get(c, c) for c in est.point_only)
        notes.append(f"no spread published for the {what}: the verdict rests on the published values alone" if paper
                     else f"no per-example data for the {what}: taken as exact")
    return Side(est, fit, "; ".join(notes))


PREFIX = {"fgsm": "FGSM ", "deeper": "deeper "}  # how a claim's networks are named in its regime check
PAPER_DEEPER_ARCH = "resnet110"  # the paper's deeper network (App. B.4.1, Table 3)


def sweep_claim(metric: str, experiment: str = "ar_sweep", clip: float | None = None, needs_examples=False):
    """(ours, paper) computing the change (weakest to strongest AR) of `metric` over this build's `experiment` runs
    (under spectral-norm `clip`) and over the paper's matching table (ResNet-110's for `deeper`)."""
    prefix = f"SN {clip:g} " if clip is not None else PREFIX.get(experiment, "")  # names the networks

    def ours(inputs, claim, n_boot=2000, seed=0):
        table = _clip(inputs.get(experiment), clip)
        examples = inputs.get("examples") or {}
        if needs_examples and table is not None:
            table = table[table.run.isin([r for r, cols in examples.items() if _has(cols, metric)])]
        networks = networks_of(table, examples)
        side = _trend_side(networks, metric, _regimes_of(table, experiment, prefix, clip), n_boot, seed)
        standard = _clip((inputs.get("standard") or {}).get(experiment), clip)
        reference = standard_reference(networks_of(standard, inputs.get("standard_examples")), networks, metric,
                                       claim.direction if claim is not None else 0)
        side = dataclasses.replace(side, reference=reference)
        if clip is not None and table is not None and not table.empty:
            regime = regime_table(inputs)
            unbound = regime[(regime.experiment == experiment) & (regime["spectral norm"] == f"{clip:g}")
                             & (regime.note != "")]
            if len(unbound):
                side = Side(side.estimate, side.networks, _join(side.note, ", ".join(
                    f"eps {r.eps:g}" for r in unbound.itertuples()) + ": " + unbound.note.iloc[0]))
        return side

    def paper(claim, n_boot=2000, seed=0):
        method, sn, arch = _reference(experiment, clip)
        regimes = _paper_regimes("cifar10", method, sn, prefix, arch)
        side = _trend_side(paper_networks("cifar10", method, sn, arch), metric, regimes, n_boot, seed, paper=True)
        if not side.estimate.point_only:
            return side
        return _assumed_spread(lambda spread: paper_networks("cifar10", method, sn, arch, loss_spread=spread),
                               metric, regimes, claim.direction if claim is not None else -1, n_boot, seed)
    return ours, paper


def standard_reference(standard: list[Network], networks: list[Network], metric: str, direction: int) -> str:
    """Standard training (eps 0), which the statistic leaves out (`adversarial_only`), where the step
    from it to the weakest AR goes against the claimed `direction`: "standard training (eps 0) has
    0.0015, 19x the 7.9e-05 at eps 4 (means over 3 seeds, no interval): from eps 0 to eps 4 the
    quantity falls". "" where it goes the claimed way, or where there is no eps-0 network."""
    try:
        zero = [metric_point(n, metric) for n in standard]
        weakest = min(float(n.eps) for n in networks)
        at_weakest = [metric_point(n, metric) for n in networks if float(n.eps) == weakest]
    except (KeyError, ValueError):  # no eps-0 network, or one without the metric's columns
        return ""
    if not zero or not at_weakest:
        return ""
    a, b = float(np.mean(zero)), float(np.mean(at_weakest))
    if direction == 0 or (b - a) * direction >= 0:
        return ""
    ratio = max(a, b) / min(a, b) if min(a, b) > 0 else math.nan
    times = (f", {ratio:.0f}x the" if ratio >= 3 else " against the") if not math.isnan(ratio) else " against the"
    seeds = min(len(zero), len(at_weakest))
    return (f"standard training (eps 0, not part of the statistic) has {a:.3g}{times} {b:.3g} at eps {weakest:g} "
            f"(means over {seeds} seed{'s' if seeds > 1 else ''}, no interval): from eps 0 to eps {weakest:g} the "
            f"{METRIC_NAMES.get(metric, 'quantity')} {'falls' if b < a else 'rises'}, against the claim")


def _assumed_spread(networks_with: Callable[[float], list[Network]], metric: str, regimes, direction: int,
                    n_boot: int, seed: int) -> Side:
    """The paper's side of a loss claim, whose mean losses have no published spread: judged under
    each assumed per-example spread (`verdicts.ASSUMED_LOSS_SPREADS`, nats, over its 10,000 test and
    50,000 training images); the interval and verdict are those under the largest."""
    by_spread = {s: trend_estimate(networks_with(s), metric, n_boot=n_boot, seed=seed) for s in ASSUMED_LOSS_SPREADS}
    largest = ASSUMED_LOSS_SPREADS[-1]
    each = "; ".join(f"{s:g} nat{'' if s == 1 else 's'}: {e.interval} {e.verdict(direction)}" for s, e in by_spread.items())
    note = ("one published network per strength; no spread published for its mean losses: the interval assumes a "
            f"per-example spread (std) of the loss, and the verdict is the one under the largest ({each})")
    return Side(by_spread[largest], regimes, note, assumed=f"assumed {largest:g}-nat spread")


def paper_change_per_clip(metric: str = "gap_acc", clips=(None, 5.0, 3.0, 1.0), n_boot: int = 2000) -> str:
    """The paper's CIFAR-10 change of `metric` from the weakest to the strongest AR per spectral-norm
    clip (Table 3, Table 6), with the scorecard's interval (the sampling noise of one network per
    strength): "no clip +0.43 [-0.486, +1.41], SN 5 ...; outside the sampling noise: SN 1" (an interval
    that excludes no change), for the pages that read Table 6 step by step."""
    parts, outside = [], []
    for clip in clips:
        side = sweep_claim(metric, "spectral_norm", clip=clip)[1](None, n_boot=n_boot)
        name = "no clip" if clip is None else f"SN {clip:g}"
        parts.append(f"{name} {side.estimate.interval}" + (f" ({side.assumed})" if side.assumed else ""))
        if not side.estimate.exact and side.estimate.verdict(+1) != INCONCLUSIVE:
            outside.append(name)
    return ", ".join(parts) + "; outside the sampling noise: " + (", ".join(outside) if outside else "none")


def _has(columns: dict, metric: str) -> bool:
    needed = {"margin_std": "test:margin", "loss_variation": "test:loss_variation"}[metric]
    return needed in columns


def _layers_ours(inputs, claim, **_) -> Side:
    """Per seed, each convolution's singular-value std at the weakest vs the strongest AR."""
    spectra = inputs.get("spectra")
    if spectra is None or spectra.empty or spectra.eps.nunique() < 2:
        return Side(majority_estimate(0, 0))
    convs = spectra[spectra.kind == "conv"]
    low, high = convs.eps.min(), convs.eps.max()
    wide = convs[convs.eps.isin([low, high])].pivot_table(index=["seed", "layer"], columns="eps", values="std")
    wide = wide.dropna()
    follows = (wide[low] - wide[high]).unstack("layer").dropna(axis=1)  # seeds x layers, > 0: the std fell
    sweep = inputs.get("ar_sweep")
    fit = _regimes_of(sweep[sweep.eps.isin([low, high])]) if sweep is not None and not sweep.empty else ()
    seeds, n = follows.shape
    estimate = layer_majority_estimate(follows.to_numpy())
    if seeds > 1:
        note = (f"{int((follows.mean() > 0).sum())} of {n} convolutions on the mean over {seeds} seeds (eps {low:g} vs "
                f"{high:g}; {int((follows > 0).to_numpy().sum())} of {follows.size} seed-layer pairs); "
                f"{round(estimate.low * n)} fall and {n - round(estimate.high * n)} rise beyond the noise of the seeds "
                "(one-sided t-tests over seeds, Holm-corrected): the interval's ends")
    else:
        note = f"{int((follows > 0).to_numpy().sum())} of {n} convolutions (eps {low:g} vs {high:g}, 1 seed)"
    return Side(dataclasses.replace(estimate, n_seeds=seeds), fit, note + "; the classifier layer is not counted, as in B.2")


def _layers_paper(claim, **_) -> Side:
    fell, n = paper_layer_counts("cifar10")
    return Side(majority_estimate(fell, n), _paper_regimes(), f"{fell} of {n} convolutions of ResNet-56 (B.2: "
                                                          "count = printed sum / mean)")


def _sn_turn(side_of_gap: Callable, side_of_clip: Callable):
    """Fig. 6: the tightest clip turns a rising error gap into a falling one. Testable only where
    the unclipped error gap rises (its own verdict is 'reproduced'); the statistic is the
    change of the error gap under the tightest clip (claimed: it falls)."""
    def compute(*args, **kwargs):
        free, clipped = side_of_gap(*args, **kwargs), side_of_clip(*args, **kwargs)
        if math.isnan(clipped.estimate.value) or math.isnan(free.estimate.value):
            return Side(MISSING)
        free_verdict = free.estimate.verdict(+1)
        note = clipped.note
        if free_verdict != REPRODUCED:
            shown = free.estimate.interval
            why = "falls" if free_verdict == CONTRADICTED else "does not clearly rise"
            return Side(clipped.estimate, free.networks + clipped.networks, _join(
                f"not testable: without clipping the error gap {why} (change {shown}), so there is no "
                "rising trend for the clip to turn", note), verdict=NOT_TESTABLE)
        return Side(clipped.estimate, free.networks + clipped.networks, note)
    return compute


def _join(*parts: str) -> str:
    return "; ".join(p for p in dict.fromkeys(parts) if p)


GAP = ("fit", "generalisation")  # a gap: train and test quantities both
TEST = ("generalisation",)  # a quantity on test images
ROBUST_TEST = ("generalisation", "robustness")  # robustness measured on test images


def _claims() -> list[Claim]:
    gap_ours, gap_paper = sweep_claim("gap_acc")
    sn1_ours, sn1_paper = sweep_claim("gap_acc", "spectral_norm", clip=1.0)
    change = "change from the weakest to the strongest AR of the"
    claims = [
        Claim("The loss gap (test - train) shrinks as AR grows", "Fig. 3a, Table 3", -1,
              f"{change} loss gap", *sweep_claim("gap_loss"), needs=GAP, chapter="sec4_1"),
        Claim("The error gap (train - test accuracy) grows with AR on CIFAR-10", "B.3, Table 3", +1,
              f"{change} error gap (points)", gap_ours, gap_paper, needs=GAP, chapter="secB3"),
        Claim("The training loss grows with AR", "Fig. 3b (the text cites 3a), Table 3", +1, f"{change} training loss",
              *sweep_claim("train_loss"), needs=("fit",), chapter="sec4_1"),
        Claim("The test error grows with AR", "Fig. 3b, Table 3", +1, f"{change} test error (points)",
              *sweep_claim("test_error"), needs=TEST, chapter="sec4_1"),
        Claim("On CIFAR-10 the test loss falls while the test error rises", "Fig. 3b, Table 3", -1,
              f"{change} test loss", *sweep_claim("test_loss"), needs=TEST, chapter="sec4_1"),
        Claim("Test margins concentrate around zero as AR grows", "Fig. 4", -1,
              f"{change} std of the test margins", sweep_claim("margin_std", needs_examples=True)[0],
              lambda claim, **_: None, needs=TEST, chapter="sec4_2_1"),
        Claim("Per-layer singular-value std falls from the weakest to the strongest AR in most layers",
              "Fig. 5c/d, B.2", +1, "fraction of convolutions whose singular-value std falls (no effect: 1/2)",
              _layers_ours, _layers_paper, expected="a majority falls", needs=("fit",), chapter="sec4_2_2"),
        Claim("Loss variation around test examples falls as AR grows", "Fig. 8, Table 1", -1,
              f"{change} mean loss variation under an attack of {LOSS_VARIATION_ATTACK:g}/255",
              *sweep_claim("loss_variation", needs_examples=True), needs=ROBUST_TEST, chapter="secB5"),
        Claim("Robustness (PGD accuracy of the correctly classified) grows with AR", "Fig. 12, D.2, Table 3", +1,
              f"{change} PGD accuracy (points)", *sweep_claim("pgd_acc"), needs=ROBUST_TEST, chapter="secD2"),
        Claim("With FGSM training the loss gap still shrinks as AR grows", "Fig. 9, Table 2", -1,
              f"{change} loss gap, FGSM", *sweep_claim("gap_loss", "fgsm"), needs=GAP, chapter="secB6"),
        Claim("In a deeper network the loss gap still shrinks as AR grows", "Fig. 7, B.4.1, Table 3", -1,
              f"{change} loss gap, deeper network (the paper's ResNet-110)", *sweep_claim("gap_loss", "deeper"),
              needs=GAP, chapter="secB4"),
    ]
    for clip in sorted(SN_DIRECTION, reverse=True):  # B.4.2: "the loss gap keeps a consistent decreasing trend"
        claims.append(Claim(f"With the spectral norm clipped to {clip:g} the loss gap still shrinks as AR grows",
                            "Fig. 6a, Table 6, B.4.2", -1, f"{change} loss gap, SN {clip:g}",
                            *sweep_claim("gap_loss", "spectral_norm", clip=clip), needs=GAP, chapter="secB4"))
    for clip in TABLE_6_READ_PER_CLIP:
        direction = SN_DIRECTION[clip]
        claims.append(Claim(f"With the spectral norm clipped to {clip:g} the error gap still {'rises' if direction > 0 else 'falls'}"
                            " with AR (Table 6 per clip)",
                            "Fig. 6, Table 6", direction, f"{change} error gap (points), SN {clip:g} (Table 6 read per "
                            "clip: the paper says the trend 'gradually changes')",
                            *sweep_claim("gap_acc", "spectral_norm", clip=clip), needs=GAP, chapter="secB4"))
    claims.append(Claim("Spectral normalisation (clip 1) turns the error-gap trend from rising to falling",
                        "Fig. 6, Table 6", SN_DIRECTION[1.0],
                        f"{change} error gap (points) under SN 1, given that it rises without clipping",
                        _sn_turn(gap_ours, sn1_ours), _sn_turn(gap_paper, sn1_paper), needs=GAP, chapter="secB4"))
    return claims


CLAIMS = _claims()


def adversarial_only(inputs: dict) -> dict:
    """The scorecard's inputs without standard training (eps 0): the paper's claims are trends over
    the AR strengths of its CIFAR tables (4, 8, 16), so this build's statistic is taken over its
    AR strengths too, like with like; the chapters show eps 0 as the reference. The eps-0 runs are kept
    aside ("standard", "standard_examples") for `standard_reference`."""
    out = dict(inputs)
    for name in (*RUN_TABLES, "spectra"):
        table = inputs.get(name)
        if table is not None and not table.empty:
            out[name] = table[table.eps > 0]
    kept = {run for name in RUN_TABLES if out.get(name) is not None and not out[name].empty for run in out[name].run}
    out["standard"] = {name: inputs[name][inputs[name].eps == 0] for name in RUN_TABLES
                       if inputs.get(name) is not None and not inputs[name].empty}
    out["examples"] = {run: cols for run, cols in (inputs.get("examples") or {}).items() if run in kept}
    out["standard_examples"] = {run: cols for run, cols in (inputs.get("examples") or {}).items() if run not in kept}
    return out


def scorecard(inputs: dict, n_boot: int = 2000, seed: int = 0, chapter: str | None = None) -> pd.DataFrame:
    """One row per claim (of `chapter`, if given): the claim, its statistic, the regime parts it
    needs, and for the paper's numbers and this build each: value, interval bounds, the interval as
    text, the rule's verdict, the verdict after the regime gate (`verdicts.gate`), the regime line
    and note; over the AR strengths (`adversarial_only`). Deterministic given `seed` (the bootstrap's)."""
    inputs = adversarial_only(inputs)
    rows = []
    for c in CLAIMS:
        if chapter is not None and c.chapter != chapter:
            continue
        row = {"claim": c.claim, "paper figure": c.figure, "statistic": c.statistic,
               "expected": c.expected or ("rises" if c.direction > 0 else "falls"), "needs": ", ".join(c.needs),
               "chapter": c.chapter}
        paper = c.paper(c, n_boot=n_boot, seed=seed)
        ours = c.ours(inputs, c, n_boot=n_boot, seed=seed)
        for side, s in (("paper", paper), ("this build", ours)):
            if s is None:
                row.update({f"{side}": math.nan, f"{side} low": math.nan, f"{side} high": math.nan,
                            f"{side} [95% CI]": "figure only: no published numbers", f"{side} verdict": "",
                            f"{side} rule verdict": "", f"{side} regime": "", f"{side} note": "",
                            f"{side} regime marks": "", f"{side} steps": "", f"{side} reference": "",
                            f"{side} exact": False})
                continue
            e = s.estimate
            rule = s.verdict or e.verdict(c.direction)
            note = s.note
            if e.reversal:
                note = _join(f"reverses between strengths beyond the noise: steps {e.reversal}", note)
            steps = e.carried_by(c.direction if rule == REPRODUCED else -c.direction) \
                if rule in (REPRODUCED, CONTRADICTED) else ""
            note = _join(steps, s.reference, note)
            row.update({f"{side}": e.value, f"{side} low": e.low, f"{side} high": e.high,
                        f"{side} [95% CI]": _interval(e, side) + (f" ({s.assumed})" if s.assumed else ""),
                        f"{side} rule verdict": rule, f"{side} verdict": gate(rule, s.networks, c.needs),
                        f"{side} regime": regime_line(s.networks, c.needs), f"{side} note": note,
                        f"{side} regime marks": regime_marks(s.networks, c.needs),
                        f"{side} steps": steps, f"{side} reference": s.reference, f"{side} exact": e.exact})
        row["seeds"] = ours.estimate.n_seeds
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(e: Estimate, side: str) -> str:
    """An estimate's interval as the scorecard prints it; without an interval, why there is none."""
    if math.isnan(e.value):
        return ""
    if e.exact and side != "paper":
        return f"{e.value:+.3g} (no interval: {e.n_seeds} seed{'s' if e.n_seeds != 1 else ''}, metrics only)"
    return e.interval


def display_table(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard's columns for reading as a table: claim, paper statistic + interval + verdict,
    this build's statistic + interval + verdict (and the rule's alone), regime lines and notes."""
    cols = ["claim", "paper figure", "expected", "needs", "paper [95% CI]", "paper verdict", "paper regime",
            "this build [95% CI]", "this build verdict", "this build rule verdict", "this build regime",
            "this build note", "paper note"]
    return card[cols].set_index("claim")


def _verdict_cell(card_row, side: str) -> str:
    shown, rule = card_row[f"{side} verdict"], card_row[f"{side} rule verdict"]
    if not shown:
        return "figure only"
    cell = f'<span class="arreg-verdict arreg-{shown.replace(" ", "-")}">{html.escape(shown)}</span>'
    if rule != shown:
        cell += f'<br><small>rule alone: {html.escape(rule)}</small>'
    return cell


def html_table(card: pd.DataFrame) -> str:
    """The scorecard as a compact HTML table that fits the page's text column: claim (with its
    notes folded in a dropdown) | paper figure | paper verdict | this build: change [95% CI] |
    verdict | regime. Long texts are folded, so that every row stays a few lines tall."""
    head = ("<thead><tr><th>claim</th><th>paper figure</th><th>paper verdict</th>"
            "<th>this build: change [95% CI]</th><th>verdict</th><th>regime (needs)</th></tr></thead>")
    rows = []
    for _, r in card.iterrows():
        notes = [("statistic", r["statistic"] + f" (expected: {r['expected']})"),
                 ("paper", _join(r["paper [95% CI]"], r["paper note"], r["paper regime"])),
                 ("this build", _join(r["this build note"], r["this build regime"]))]
        folded = "".join(f"<p><b>{html.escape(k)}:</b> {html.escape(v)}</p>" for k, v in notes if v)
        claim = f'{html.escape(r["claim"])}<details><summary>notes</summary>{folded}</details>'
        regime = html.escape(r["this build regime marks"]).replace(", ", "<br>")
        rows.append(f"<tr><td>{claim}</td><td>{html.escape(r['paper figure'])}</td><td>{_verdict_cell(r, 'paper')}</td>"
                    f"<td>{html.escape(r['this build [95% CI]'])}</td><td>{_verdict_cell(r, 'this build')}</td>"
                    f"<td>{regime}</td></tr>")
    colgroup = "".join(f'<col style="width:{w}%">' for w in (27, 11, 14, 17, 14, 17))
    return (f'<table class="arreg-scorecard"><colgroup>{colgroup}</colgroup>{head}<tbody>{"".join(rows)}'
            "</tbody></table>")


def regime_table(inputs: dict) -> pd.DataFrame:
    """Every network of this build the scorecard rests on, in the regime's three parts: its
    experiment, strength, seed and clip; clean training accuracy and whether it fits; test accuracy
    beside the paper's network at the same eps and whether it generalises as that one does; PGD
    accuracy beside the paper's and whether it is as robust (None: no paper number to compare). A
    clipped network whose metrics equal the unclipped one's at the same strength and seed is
    flagged: its clip never bound."""
    rows = []
    sweep = inputs.get("ar_sweep")
    for experiment in RUN_TABLES:
        t = inputs.get(experiment)
        if t is None or t.empty:
            continue
        for r in t.sort_values(["eps", "seed"]).itertuples():
            clip = getattr(r, "spectral_norm", None)
            clip = None if clip is None or pd.isna(clip) else float(clip)
            note = ""
            if clip is not None and sweep is not None and not sweep.empty:
                same = sweep[(sweep.eps == r.eps) & (sweep.seed == r.seed) & (sweep.arch == r.arch)]
                keys = ["train_acc", "test_acc", "train_loss", "test_loss"]
                if len(same) and all(np.isclose(getattr(r, k), same.iloc[0][k], rtol=0, atol=1e-9) for k in keys):
                    note = "metrics identical to the unclipped network: the clip never bound"
            (net,) = _regimes_of(t[t.run == r.run], experiment, clip=clip)
            rows.append({"experiment": experiment, "arch": r.arch, "eps": r.eps, "seed": r.seed,
                         "spectral norm": "none" if clip is None else f"{clip:g}",
                         "train acc": net.train_acc, "fit": net.part("fit"),
                         "test acc": net.test_acc, "paper test acc": net.paper_test_acc,
                         "generalisation": net.part("generalisation"),
                         "PGD acc": net.pgd_acc, "paper PGD acc": net.paper_pgd_acc,
                         "robustness": net.part("robustness"), "note": note})
    return pd.DataFrame(rows)


EXPERIMENT_NAMES = {"ar_sweep": "AR sweep", "fgsm": "FGSM", "spectral_norm": "spectral norm", "deeper": "deeper network"}


def _range(values: pd.Series) -> str:
    v = values.dropna()
    if v.empty:
        return "-"
    return f"{v.min():.1f}" if np.isclose(v.min(), v.max()) else f"{v.min():.1f}-{v.max():.1f}"


def _parts(states: pd.Series) -> str:
    known = states.dropna()
    if known.empty:
        return "?"
    bad = int((~known.astype(bool)).sum())
    return "✓" if bad == 0 else "✗" if bad == len(states) else f"✗ ({bad} of {len(states)})"


def display_regime_table(regime: pd.DataFrame) -> pd.DataFrame:
    """`regime_table` for reading: one row per network setting (experiment by name with its network,
    clip, eps; the seeds line says how many seeds), the seeds' values as a range, each part of the regime (fits, generalises, robust) as ✓ (every seed
    inside), ✗ (outside; "2 of 3": in some seeds) or ? (no paper number to compare); the paper's
    numbers beside this build's; the note column only where a network has a note."""
    if regime.empty:
        return regime
    shown = regime.assign(experiment=regime.experiment.map(EXPERIMENT_NAMES).fillna(regime.experiment))
    rows = []
    for (experiment, arch, clip, eps), g in shown.groupby(["experiment", "arch", "spectral norm", "eps"], sort=False):
        rows.append({"experiment": f"{experiment} ({arch})", "spectral norm": clip, "eps": eps,
                     "train acc %": _range(g["train acc"]), "fits": _parts(g["fit"]),
                     "test acc % (paper)": f"{_range(g['test acc'])} ({_range(g['paper test acc'])})",
                     "generalises": _parts(g["generalisation"]),
                     "PGD acc % (paper)": f"{_range(g['PGD acc'])} ({_range(g['paper PGD acc'])})",
                     "robust": _parts(g["robustness"]),
                     "note": "; ".join(dict.fromkeys(n for n in g.note if n))})
    out = pd.DataFrame(rows).set_index(["experiment", "spectral norm", "eps"])
    return out if (out.note != "").any() else out.drop(columns="note")


def overlapping_claims_line(inputs: dict, share: float = 0.05) -> str:
    """Pairs of claims that are nearly one measurement on this build's AR sweep: where the training
    loss (error) is under `share` of the test loss (error) at every AR strength, the loss gap (error
    gap) moves with the test loss (test error)."""
    sweep = adversarial_only(inputs).get("ar_sweep")
    if sweep is None or sweep.empty:
        return ""
    mean = sweep.groupby("eps")[["train_loss", "test_loss", "train_acc", "test_acc"]].mean()
    train_err, test_err = 100 - mean.train_acc, 100 - mean.test_acc
    pairs = []
    if (mean.train_loss < share * mean.test_loss).all():
        pairs.append(f"with a mean training loss of at most {mean.train_loss.max():.2g} against test losses of "
                     f"{mean.test_loss.min():.2f}-{mean.test_loss.max():.2f}, the loss gap moves with the test loss")
    if (train_err < share * test_err).all():
        pairs.append(f"with training errors of at most {train_err.max():.1f} points against test errors of "
                     f"{test_err.min():.1f}-{test_err.max():.1f}%, the error gap moves with the test error")
    if not pairs:
        return ""
    return (f"{'Two pairs' if len(pairs) == 2 else 'One pair'} of claims {'are' if len(pairs) == 2 else 'is'} "
            f"nearly one measurement each in this build: " + "; ".join(pairs) + ". Read them as "
            f"{len(pairs)} finding{'s' if len(pairs) > 1 else ''}, not {2 * len(pairs)}.")


def verdict_counts(card: pd.DataFrame, side: str = "this build") -> dict[str, int]:
    """How many claims got each verdict on one side ("this build" or "paper")."""
    from .verdicts import VERDICTS

    counts = card[f"{side} verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


# ----------------------------------------------------------------------------- the page's sentences

def seeds_line(inputs: dict, tier: str = "") -> str:
    """One sentence: how many training seeds each experiment of this build (or of the tier `tier`)
    has, and what a single seed means for the intervals."""
    parts, fewest = [], None
    for experiment, name in EXPERIMENT_NAMES.items():
        t = inputs.get(experiment)
        if t is None or t.empty:
            continue
        n = int(t.groupby([c for c in ("eps", "spectral_norm") if c in t and t[c].notna().any()] or ["eps"])
                .seed.nunique().min())
        fewest = n if fewest is None else min(fewest, n)
        parts.append(f"{name} {n}")
    if not parts:
        return "This build has no runs yet: every claim is *not run here*."
    line = (f"{tier}'s training seeds" if tier else "Training seeds") + " per network setting: " + ", ".join(parts) + "."
    if fewest == 1:
        line += (" Where there is one seed, a claim's interval covers only the sampling of the test and training "
                 "examples, not the variation from one training run to the next.")
    return line


def summary_line(card: pd.DataFrame) -> str:
    """The verdict counts of this build and of the paper's own numbers, as sentences: how many of
    this build's claims are outside the regime (and what the rule alone says of them), and on each
    side how many decided verdicts have no interval (mean losses taken as exact)."""
    def counts(side):
        return ", ".join(f"{n} {v}" for v, n in verdict_counts(card, side).items() if n)

    def exact(side, why):
        n = int((card[f"{side} verdict"].isin([REPRODUCED, CONTRADICTED]) & card[f"{side} exact"]).sum())
        one = n == 1
        return (f" {n} of its reproduced or contradicted verdicts {'has' if one else 'have'} no interval: "
                f"{'it rests' if one else 'they rest'} on mean losses taken as exact ({why}).") if n else ""
    outside = card["this build verdict"] == OUTSIDE
    rule = card.loc[outside, "this build rule verdict"].value_counts()
    assumed = int(card["paper [95% CI]"].str.contains("assumed").sum())
    figure_only = int((card["paper verdict"] == "").sum())
    return (f"Of {len(card)} claims, **this build**: {counts('this build')}."
            + (f" The rule alone, without the regime gate, would call the {int(outside.sum())} outside the regime "
               + ", ".join(f"{n} {v}" for v, n in rule.items()) + "." if outside.any() else "")
            + exact("this build", "networks without per-example data")
            + f" **The paper's own numbers**, by the same rule: {counts('paper')}."
            + exact("paper", "the paper publishes no spread for them")
            + (f" {assumed} of the paper's verdicts rest on an assumed per-example spread of its mean losses "
               f"({ASSUMED_LOSS_SPREADS[-1]:g} nats; the notes give the verdicts under "
               + " and ".join(f"{x:g}" for x in ASSUMED_LOSS_SPREADS[:-1]) + ")." if assumed else "")
            + (f" {figure_only} claim{'s' if figure_only > 1 else ''} with no published numbers (figure only)."
               if figure_only else ""))


def regime_numbers(inputs: dict) -> dict[str, tuple[str, str]] | None:
    """This build's AR sweep (AR strengths only) and the paper's network at the same strengths, in
    the regime's three parts: {part: (this build's range, the paper's range)}; None without runs."""
    sweep = adversarial_only(inputs).get("ar_sweep")
    if sweep is None or sweep.empty:
        return None
    nets = _regimes_of(sweep)
    shared = [n for n in nets if not math.isnan(n.paper_test_acc)]
    ref = _paper_wide(paper_dataset(sweep.dataset.iloc[0]))
    ref = ref[ref.index.astype(float).isin(sorted(set(sweep.eps.astype(float))))]
    return {"fit": (value_range([n.train_acc for n in nets]), value_range(ref.get("train_acc", []))),
            "generalisation": (value_range([n.test_acc for n in shared], 0), value_range(ref.get("test_acc", []), 0)),
            "robustness": (value_range([n.pgd_acc for n in shared], 0), value_range(ref.get("pgd_acc", []), 0))}


def _outside_at(nets, part: str) -> str:
    """Where some but not all networks fail a regime `part`: " at eps 4 (40.1% vs the paper's 65.2%)",
    each failing network with its value (and the paper's); "" where none or all fail."""
    bad = [n for n in nets if n.part(part) is False]
    if not bad or len(bad) == len([n for n in nets if n.part(part) is not None]):
        return ""
    ours, paper = PART_VALUES[part]
    return " at " + ", ".join(f"{n.label} ({getattr(n, ours):.1f}%" + (f" vs the paper's {getattr(n, paper):.1f}%"
                                                                       if paper else "") + ")" for n in bad)


def regime_paragraph(inputs: dict, card: pd.DataFrame | None = None, name: str = "This build",
                     consequences: bool = True) -> str:
    """This build's regime in numbers beside the paper's (AR sweep against the paper's ResNet-56 at
    the same strengths, Table 3; ranges over the networks, one per seed and strength), whether each
    part holds and at which strengths it fails, and what follows for the verdicts: which claims need
    which part (`Claim.needs`; left out with `consequences=False`, where a paragraph before says it)
    and, given the scorecard `card`, how many are outside."""
    numbers = regime_numbers(inputs)
    if numbers is None:
        return "This build has no runs yet: no regime to state."
    sweep = adversarial_only(inputs)["ar_sweep"]
    nets = _regimes_of(sweep)
    holds = {part: not failing(nets, (part,)) for part in REGIME_PARTS}
    strengths = ", ".join(f"{e:g}" for e in sorted(set(sweep.eps)))
    sizes = _splits(next(sweep.itertuples()))
    words = {"fit": "clean training accuracy", "generalisation": "test accuracy",
             "robustness": "PGD accuracy of the correctly classified test images"}
    parts = [f"**{part}** ({words[part]}) {ours} against the paper's {paper} — "
             + ("inside the regime" if holds[part] else "**outside**" + _outside_at(nets, part))
             for part, (ours, paper) in numbers.items()]
    seeds = int(sweep.groupby("eps").seed.nunique().min())
    text = (f"**{name}'s regime.** The AR sweep's networks (eps {strengths}, {seeds} seed{'s' if seeds > 1 else ''}"
            f" each, {sizes[0]:,} training and {sizes[1]:,} test images) against the paper's ResNet-56 at the same "
            f"strengths (Table 3), as the lowest-highest value over the {len(nets)} networks: " + "; ".join(parts) + ".")
    if holds["fit"] and not holds["generalisation"]:
        text += (f" They fit — memorise — their {sizes[0]:,} training images, but generalise far worse than the paper's "
                 "networks" + (" and are far less robust on test images" if not holds["robustness"] else "") + ".")
    if not holds["fit"]:
        spread = max(abs(n.train_acc - n.test_acc) for n in nets)
        text += (" They do not fit their training images: trained for fewer epochs than the paper's networks, they "
                 f"underfit, their clean training and test accuracies within {spread:.1f} points of each other.")
    need = {part: [c for c in CLAIMS if part in c.needs] for part in REGIME_PARTS}
    only_fit = [c for c in CLAIMS if set(c.needs) == {"fit"}]
    text += "" if not consequences else (f" What follows for the verdicts: of the {len(CLAIMS)} claims, {len(need['generalisation'])} (those about "
             f"gaps and test quantities) need generalisation, {len(need['robustness'])} of them robustness as well, "
             f"and {len(only_fit)} need fit alone; a claim resting on a network outside a part it needs is marked "
             "*outside the regime* instead of reproduced or contradicted.")
    if card is not None and len(card):
        outside = int((card["this build verdict"] == OUTSIDE).sum())
        run = int((card["this build verdict"] != NOT_RUN).sum())
        if len(card) == 1:
            text += " Here the claim " + ("is not run." if not run else "is outside the regime." if outside
                                          else "is inside the regime.")
        elif run == len(card):
            text += f" Here {outside} of the {len(card)} claims are outside the regime."
        else:
            text += (f" Here {run} of the {len(card)} claims are run" + (f", {outside} of them outside the regime"
                                                                        if run else "") + ".")
    return text


# ----------------------------------------------------------------------------- tiers side by side

def tier_regimes(inputs_by_tier: dict[str, dict]) -> pd.DataFrame:
    """Each tier's AR sweep (AR strengths only) beside the paper's ResNet-56 at the same strengths
    (Table 3): network, data, epochs, seeds, and the regime's three parts as ranges (the lowest and
    highest value over the networks, one per seed and strength, as in `regime_paragraph`)."""
    columns = {}
    row = {part: f"{part}, {what} (lowest-highest over the networks)" for part, what in
           (("fit", "clean training accuracy"), ("generalisation", "test accuracy"), ("robustness", "PGD accuracy"))}
    for tier, inputs in inputs_by_tier.items():
        sweep = adversarial_only(inputs).get("ar_sweep")
        numbers = regime_numbers(inputs)
        if numbers is None:
            continue
        first = next(sweep.itertuples())
        train, test = _splits(first)
        columns[tier] = {"network": f"{first.arch} (x{first.width})" if first.width > 1 else first.arch,
                         "training / test images": f"{train:,} / {test:,}", "epochs": f"{first.epochs}",
                         "seeds per strength": f"{int(sweep.groupby('eps').seed.nunique().min())}",
                         **{row[part]: ours for part, (ours, _) in numbers.items()}}
        published = load_profile("paper").configs["ar_sweep"][0]  # the paper's settings (appendix B.1)
        paper = {"network": published.arch, "training / test images": "50,000 / 10,000 (all of CIFAR-10)",
                 "epochs": f"{published.epochs}", "seeds per strength": "not stated (one published network each)",
                 **{row[part]: theirs for part, (_, theirs) in numbers.items()}}
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame({"paper (Table 3)": paper, **columns})


def tier_table(cards: dict[str, pd.DataFrame]) -> str:
    """The claims of one or more scorecards side by side, as a compact HTML table: claim | paper
    figure | the paper's verdict | each tier's verdict with its change [95% CI]. `cards`: {tier
    name: scorecard}, all of the same claims."""
    names = list(cards)
    first = cards[names[0]]
    head = ("<thead><tr><th>claim</th><th>paper figure</th><th>paper</th>"
            + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr></thead>")
    rows = []
    by_claim = {n: card.set_index("claim") for n, card in cards.items()}
    for _, paper in first.iterrows():
        cells = []
        for n in names:
            row = by_claim[n].loc[paper["claim"]]
            change = row["this build [95% CI]"]
            cells.append(f"<td>{_verdict_cell(row, 'this build')}" + (f"<br><small>{html.escape(change)}</small>"
                                                                      if change else "") + "</td>")
        rows.append(f"<tr><td>{html.escape(paper['claim'])}</td><td>{html.escape(paper['paper figure'])}</td>"
                    f"<td>{_verdict_cell(paper, 'paper')}</td>{''.join(cells)}</tr>")
    width = (100 - 30 - 10 - 16) // len(names)
    colgroup = "".join(f'<col style="width:{w}%">' for w in (30, 10, 16, *[width] * len(names)))
    return f'<table class="arreg-scorecard"><colgroup>{colgroup}</colgroup>{head}<tbody>{"".join(rows)}</tbody></table>'
