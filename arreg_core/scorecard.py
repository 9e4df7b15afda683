"""The reproduction scorecard: each empirical claim of the paper, the statistic this build
computes for it, the same statistic on the paper's published numbers, and a verdict.

A trend over AR strengths is summarised by Spearman's rank correlation rho between eps and the
quantity (scipy.stats.spearmanr). With the paper's three strengths (4, 8, 16), rho = +1 or -1 means
a monotone trend; a claim counts as reproduced when rho has the claimed sign with |rho| >= 0.8
(a monotone trend over 3 or 4 strengths), "not reproduced" otherwise, and "not run here" when
this build has no runs for it ("not measurable" when it has runs but the series is constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .paper import paper_table

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run here"
NOT_MEASURABLE = "not measurable (constant series or fewer than 3 strengths)"
THRESHOLD = 0.8


def trend(x, y) -> float:
    """Spearman's rho of y against x (NaN with fewer than 3 points or a constant series)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def verdict(rho: float, sign: int) -> str:
    if rho is None or math.isnan(rho):
        return NOT_RUN
    return REPRODUCED if sign * rho >= THRESHOLD else NOT_REPRODUCED


def metric_trend(table: pd.DataFrame | None, metric: str) -> float:
    """rho of `metric` over eps in a runs table (one network per eps); error = 100 - accuracy."""
    if table is None or table.empty:
        return math.nan
    t = table.sort_values("eps")
    y = 100 - t["test_acc"] if metric == "test_error" else t[metric]
    return trend(t["eps"], y)


def paper_trend(metric: str, dataset: str = "cifar10", arch: str = "resnet56", method: str = "pgd",
                spectral_norm: str = "none") -> float:
    """The same statistic on the paper's published table."""
    t = paper_table()
    table_ids = {"pgd": [3, 4] if spectral_norm == "none" else [6], "fgsm": [2]}[method]
    rows = t[(t.dataset == dataset) & (t.arch == arch) & (t.method == method)
             & (t.spectral_norm.astype(str) == spectral_norm) & t.table.isin(table_ids)]
    wide = rows.pivot_table(index="eps_train", columns="metric", values="value").reset_index()
    if wide.empty:
        return math.nan
    y = 100 - wide["test_acc"] if metric == "test_error" else wide.get(metric)
    return math.nan if y is None else trend(wide["eps_train"], y)


@dataclass(frozen=True)
class Claim:
    """One empirical claim: where the paper makes it, what sign its trend over eps has, and how
    to compute the trend from this build's tables (`inputs` maps names to DataFrames)."""

    claim: str
    figure: str
    sign: int
    statistic: str
    ours: Callable[[dict], float]
    paper: Callable[[], float] = lambda: math.nan
    needs: tuple[str, ...] = ("ar_sweep",)  # the inputs this build must have run


def _sweep(metric: str, key: str = "ar_sweep") -> Callable[[dict], float]:
    return lambda inputs: metric_trend(inputs.get(key), metric)


def _by_eps(key: str, column: str) -> Callable[[dict], float]:
    """rho over eps of a per-eps summary table (margins, spectra, loss variation)."""
    def compute(inputs):
        t = inputs.get(key)
        return math.nan if t is None or t.empty else trend(t["eps"], t[column])
    return compute


def _fraction(key: str, column: str) -> Callable[[dict], float]:
    """A fraction in [0, 1] mapped to [-1, 1] (2f - 1), so that 'most' means a positive value."""
    def compute(inputs):
        t = inputs.get(key)
        return math.nan if t is None or t.empty else 2 * float(t[column].mean()) - 1
    return compute


def _sn_turn(inputs) -> float:
    """Fig. 6: rho of the error gap over eps without clipping minus rho with the strongest clip;
    >= 0.8 (on a -2..2 scale) means the trend turns from rising towards falling."""
    t = inputs.get("spectral_norm")
    if t is None or t.empty:
        return math.nan
    free = metric_trend(inputs.get("ar_sweep"), "gap_acc")
    strongest = t[t.spectral_norm == t.spectral_norm.min()]
    return free - metric_trend(strongest, "gap_acc")


def _paper_sn_turn() -> float:
    return paper_trend("gap_acc") - paper_trend("gap_acc", spectral_norm="1")


CLAIMS = [
    Claim("The loss gap (test - train) shrinks as AR grows", "Fig. 3a", -1, "rho(eps, loss gap)",
          _sweep("gap_loss"), lambda: paper_trend("gap_loss")),
    Claim("The training loss grows with AR", "Fig. 3b", +1, "rho(eps, training loss)",
          _sweep("train_loss"), lambda: paper_trend("train_loss")),
    Claim("The test error grows with AR", "Fig. 3b", +1, "rho(eps, test error)",
          _sweep("test_error"), lambda: paper_trend("test_error")),
    Claim("On CIFAR-10 the test loss falls while the test error rises", "Fig. 3b", -1, "rho(eps, test loss)",
          _sweep("test_loss"), lambda: paper_trend("test_loss")),
    Claim("Test margins concentrate around zero as AR grows", "Fig. 4", -1, "rho(eps, std of test margins)",
          _by_eps("margins", "test_std"), needs=("margins",)),
    Claim("Per-layer singular-value std falls from AR 4 to 16 in most layers", "Fig. 5c/d, B.2", +1,
          "2 x (fraction of layers whose std falls) - 1", _fraction("spectra", "std_falls"), needs=("spectra",)),
    Claim("Loss variation around test examples falls as AR grows", "Fig. 8, Table 1", -1,
          "rho(eps, mean loss variation at attack 4/255)", _by_eps("loss_variation", "mean"), needs=("loss_variation",)),
    Claim("With FGSM training the loss gap still shrinks as AR grows", "Fig. 9, Table 2", -1,
          "rho(eps, loss gap), FGSM", _sweep("gap_loss", "fgsm"), lambda: paper_trend("gap_loss", method="fgsm"),
          needs=("fgsm",)),
    Claim("Spectral normalisation turns the error-gap trend from rising to falling", "Fig. 6, Table 6", +1,
          "rho(eps, error gap) unclipped - clipped to the smallest norm", _sn_turn, _paper_sn_turn,
          needs=("ar_sweep", "spectral_norm")),
]


def scorecard(inputs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim: figure, statistic, this build's value, the paper's value, verdict.
    `inputs` may hold: ar_sweep, fgsm, spectral_norm (runs tables with eps, metrics and
    spectral_norm), margins (eps, test_std), spectra (layer, std_falls), loss_variation (eps, mean)."""
    rows = []
    for c in CLAIMS:
        ours, paper = c.ours(inputs), c.paper()
        has_runs = all(inputs.get(k) is not None and not inputs[k].empty for k in c.needs)
        ours_verdict = NOT_RUN if not has_runs else NOT_MEASURABLE if math.isnan(ours) else verdict(ours, c.sign)
        rows.append({"claim": c.claim, "paper figure": c.figure, "statistic": c.statistic,
                     "expected sign": "+" if c.sign > 0 else "-", "this build": ours, "paper": paper,
                     "verdict": ours_verdict, "paper's own numbers": verdict(paper, c.sign)
                     if not math.isnan(paper) else "no published data"})
    return pd.DataFrame(rows)


def sentence(what: str, rho: float, sign: int) -> str:
    """A computed sentence for the book: whether `what` follows the paper's trend here."""
    if rho is None or math.isnan(rho):
        return f"**{what}**: not measurable here (fewer than three AR strengths or a constant series)."
    claimed = "rises" if sign > 0 else "falls"
    return (f"**{what}** — the paper: it {claimed} with AR. This build: Spearman rho = {rho:+.2f} over AR "
            f"strengths, so the claim is **{verdict(rho, sign)}** at this scale.")
