"""What every chapter of the book does first, in one call, and the words its computed paragraphs
are made of.

    from arreg_core import chapter, plots, paper
    ex = chapter.setup("ar_sweep", profile, eps=eps, **overrides)

`setup` sets the display options and the plot style, shows this page's scale next to the
paper's in a collapsed "Scale of this page" dropdown and returns the `Experiments` of the
profile, with the machine's settings (device, data root, run store) from the environment
(ARREG_DEVICE, ARREG_DATA, ARREG_RUNS). A notebook's parameters are `profile`, `eps` (the AR
strengths, 0-255 scale) and `overrides` (any other grid entry or TrainConfig field).

The trend words (`values`, `direction`, `follows`) describe a metric over the AR strengths from
the runs themselves, so that a re-run with other parameters keeps every sentence true.
"""

from __future__ import annotations

import html
import os

import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display

from . import plots
from .evaluate import PAPER_PGD  # noqa: F401 (the evaluation attack, for the chapters' words)
from .experiments import Experiments

FIT = 95.0  # % clean training accuracy: the paper's ResNet-56 fits 95.97-99.51% of CIFAR-10 (Table 3)
CLASS_PROFILE = "class"      # the exercises' scale (profiles.yaml): minutes on a laptop CPU
BOOK_BUILD_ENV = "ARREG_BOOK_BUILD"  # set by `arreg book` while it executes the notebooks


def setup(experiments: str | tuple[str, ...], profile: str, eps=None, **overrides) -> Experiments:
    """Display options, the plot style, the "Scale of this page" dropdown for `experiments`
    (one name or several), and the Experiments of `profile` with `eps` and `overrides`."""
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_colwidth", None)
    plots.use_style()
    ex = Experiments.from_environment(profile, eps=eps, **overrides)
    names = (experiments,) if isinstance(experiments, str) else tuple(experiments)
    tables = [(f"{name.replace('_', ' ')}" if len(names) > 1 else "", ex.scale_table(name)) for name in names]
    dropdown("Scale of this page (this build next to the paper)",
             *[part for caption, t in tables for part in ((f"<p><b>{caption}</b></p>",) if caption else ()) + (t,)])
    return ex


def md(text: str) -> None:
    """Show `text` as Markdown (the computed paragraphs of a chapter)."""
    display(Markdown(text))


def dropdown(title: str, *parts) -> None:
    """A collapsed block: `title`, and on click the `parts` (DataFrames or HTML strings)."""
    body = "".join(p.to_html(border=0, classes="dataframe") if isinstance(p, pd.DataFrame) else str(p)
                   for p in parts)
    display(HTML(f'<details class="arreg-dropdown"><summary>{html.escape(title)}</summary>{body}</details>'))


# ----------------------------------------------------------------------------- trend words

def per_eps(table: pd.DataFrame, column: str, x: str = "eps") -> pd.Series:
    """`column` per AR strength (the mean over seeds), indexed by eps in increasing order."""
    return table.groupby(x)[column].mean().sort_index()


def direction(series: pd.Series, tolerance: float = 0.0) -> str:
    """How a series over increasing eps moves: "rises", "falls", "stays flat", "rises, then
    falls" (or the reverse), or "moves up and down". Steps within `tolerance` count as flat."""
    steps = np.diff(np.asarray(series, float))
    signs = [0 if abs(s) <= tolerance else int(np.sign(s)) for s in steps]
    moving = [s for s in signs if s]
    if not moving:
        return "stays flat"
    if all(s > 0 for s in moving):
        return "rises"
    if all(s < 0 for s in moving):
        return "falls"
    changes = [moving[0]] + [b for a, b in zip(moving, moving[1:]) if a != b]
    if len(changes) == 2:
        return "rises, then falls" if changes[0] > 0 else "falls, then rises"
    return "moves up and down"


def values(series: pd.Series, fmt: str = "{:.2f}", unit: str = "") -> str:
    """"5.69 at eps 4, 1.78 at eps 8 and 2.08 at eps 16"."""
    parts = [f"{fmt.format(v)}{unit} at eps {e:g}" for e, v in series.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(table: pd.DataFrame, column: str, what: str, fmt: str = "{:.2f}", unit: str = "", x: str = "eps") -> str:
    """"the loss gap falls: 5.69 at eps 4, ..." from the runs."""
    s = per_eps(table, column, x)
    if len(s) < 2:
        return f"{what} is {values(s, fmt, unit)} (one AR strength only: no trend)"
    return f"{what} {direction(s)}: {values(s, fmt, unit)}"


def follows(series: pd.Series, sign: int) -> bool:
    """Whether every step of the series goes the claimed way (+1 rises, -1 falls)."""
    steps = np.diff(np.asarray(series, float))
    return len(steps) > 0 and bool(np.all(sign * steps > 0))


def verdict(what: str, table: pd.DataFrame, column: str, sign: int, fmt: str = "{:.2f}", unit: str = "",
            x: str = "eps") -> str:
    """The chapter's verdict sentence on one claimed trend: the claim, what the runs show, and
    whether the direction agrees at every step. The scorecard adds the confidence interval."""
    s = per_eps(table, column, x)
    claimed = "rises" if sign > 0 else "falls"
    if len(s) < 2:
        return f"**{what}** — the paper: it {claimed} with AR. Here: only one AR strength, no trend."
    seeds = table.groupby(x)["seed"].nunique().min() if "seed" in table else 1
    agrees = follows(s, sign)
    note = "" if seeds > 1 else " (one seed per strength: see the scorecard for how much noise could do)"
    return (f"**{what}** — the paper: it {claimed} with AR. This build: it {direction(s)} "
            f"({values(s, fmt, unit)}): the paper's direction **{'holds' if agrees else 'does not hold'}** "
            f"at every step{note}.")


def regime(table: pd.DataFrame) -> str:
    """Whether the networks fit their training sets as the paper's do (>= FIT % clean training
    accuracy): below it, a small gap may come from not fitting rather than from the paper's
    mechanism."""
    s = per_eps(table, "train_acc")
    below = s[s < FIT]
    fits = f"The networks' clean training accuracy is {values(s, '{:.1f}', '%')}"
    if below.empty:
        return f"**Regime.** {fits}: at every AR strength at least {FIT:g}%, as the paper's networks do."
    where = ", ".join(f"{e:g}" for e in below.index)
    return (f"**Regime.** {fits}. At eps {where} that is below {FIT:g}%: **outside the paper's regime** "
            f"(its ResNet-56 fits 95.97-99.51% of CIFAR-10), so what this build shows there may come from "
            f"the network not fitting its training set rather than from the paper's mechanism.")


# ----------------------------------------------------------------------------- exercises

def exercise(profile: str, experiment: str = "ar_sweep", **overrides) -> Experiments | None:
    """The runs of one exercise cell: `experiment` at the `class` scale (`smoke` when the book is
    the smoke one, as in CI), with `overrides` (e.g. eps=[2, 16]); trained now if missing.
    While `arreg book` builds a book of another profile it trains nothing and returns None,
    saying how to run the cell (the book renders from its committed run store alone)."""
    scale = "smoke" if profile == "smoke" else CLASS_PROFILE
    if os.environ.get(BOOK_BUILD_ENV) and scale != "smoke":
        md(f"*Not run while the book was built. In Jupyter, this cell trains what it needs at the "
           f"`{scale}` scale (profiles.yaml; the teaching page lists how long each exercise takes).*")
        return None
    ex = Experiments.from_environment(scale, **overrides)
    ex.runs(experiment)
    return ex


def table(*parts) -> pd.DataFrame:
    """One table from DataFrames and lists of row dicts, stacked in order."""
    return pd.concat([p if isinstance(p, pd.DataFrame) else pd.DataFrame(p) for p in parts], ignore_index=True)
