"""Plots in the paper's forms, shared by the notebooks. Each draws this build's numbers and,
where the paper published them, the paper's beside them (labelled "paper").

Inputs are tidy pandas tables: a runs table (`runs.runs_table`: eps, train/test acc and loss,
gaps, pgd_acc, ...) and the paper's (`paper.paper_metrics`, index eps_train).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from mpl_toolkits.axes_grid1.inset_locator import inset_axes

sns.set_theme(style="whitegrid", context="notebook")
EPS_PALETTE = "viridis"


def _eps_axis(ax, eps, scale: str = "log"):
    """AR strengths on a base-2 axis ("symlog" where eps 0 is among them), ticked at each."""
    ax.set_xscale(scale, base=2, **({"linthresh": 1} if scale == "symlog" else {}))
    ax.set_xticks(sorted(set(eps)))
    ax.set_xticklabels([f"{e:g}" for e in sorted(set(eps))])
    ax.set_xlabel("AR strength eps (0-255 scale)")


def _ours_and_paper(ours: pd.DataFrame, paper: pd.DataFrame | None, draw, titles=("this build", "paper")):
    """Two panels, this build's and the paper's, drawn by `draw(ax, table, eps_column)`."""
    panels = 2 if paper is not None and not paper.empty else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    draw(axes[0, 0], ours, "eps")
    axes[0, 0].set_title(titles[0])
    if panels == 2:
        draw(axes[0, 1], paper.reset_index(), "eps_train")
        axes[0, 1].set_title(titles[1])
    fig.tight_layout()
    return fig


def _titles(label: str, paper_label: str | None) -> tuple[str, str]:
    """Panel titles: this build's data and network, and the paper's (which may differ)."""
    return f"this build {label}".strip(), f"paper {paper_label if paper_label is not None else label}".strip()


def gap_curves(ours: pd.DataFrame, paper: pd.DataFrame | None = None, label: str = "", paper_label: str | None = None):
    """Fig. 3a / 6a / 7a: loss gap (test - train) and error gap (train - test accuracy) vs eps."""
    def draw(ax, t, x):
        t = t.sort_values(x)
        ax.plot(t[x], t["gap_loss"], "o-", color="tab:blue", label="loss gap")
        ax.set_ylabel("loss gap (test - train)", color="tab:blue")
        if "gap_acc" in t:  # the paper's FGSM table (Table 2) has no error gap
            twin = ax.twinx()
            twin.plot(t[x], t["gap_acc"], "s--", color="tab:red", label="error gap")
            twin.set_ylabel("error gap, % (train - test acc.)", color="tab:red")
            twin.grid(False)
        _eps_axis(ax, t[x])
    return _ours_and_paper(ours, paper, draw, _titles(label, paper_label))


def loss_error_curves(ours: pd.DataFrame, paper: pd.DataFrame | None = None, label: str = "", paper_label: str | None = None):
    """Fig. 3b / 6b / 7b: training and test loss, training and test error vs eps."""
    def draw(ax, t, x):
        t = t.sort_values(x)
        ax.plot(t[x], t["train_loss"], "o-", color="tab:blue", label="training loss")
        ax.plot(t[x], t["test_loss"], "o--", color="tab:cyan", label="test loss")
        ax.set_ylabel("cross entropy")
        twin = ax.twinx()
        if "train_acc" in t:  # absent from the paper's FGSM table (Table 2)
            twin.plot(t[x], 100 - t["train_acc"], "s-", color="tab:red", label="training error")
        twin.plot(t[x], 100 - t["test_acc"], "s--", color="tab:orange", label="test error")
        twin.set_ylabel("error rate, %")
        twin.grid(False)
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [l.get_label() for l in lines], fontsize=8, loc="best")
        _eps_axis(ax, t[x])
    return _ours_and_paper(ours, paper, draw, _titles(label, paper_label))


def adversarial_accuracy(ours: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Fig. 12: PGD accuracy (of clean-correct test examples) vs the AR strength trained with."""
    def draw(ax, t, x):
        t = t.sort_values(x)
        ax.plot(t[x], t["pgd_acc"], "o-")
        ax.set_ylabel("PGD accuracy, % (eps 8/255, 10 x 2/255)")
        _eps_axis(ax, t[x], "symlog")
    return _ours_and_paper(ours, paper, draw)


def histograms_by_eps(values: dict[float, np.ndarray], xlabel: str, bins=60, value_range=None,
                      inset_range=None, title: str = "", ax=None):
    """Fig. 4, 5a/b: one step histogram per AR strength; optional inset zooming on `inset_range`
    (the paper's inset for the middle values of Fig. 5a/b)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    colors = sns.color_palette(EPS_PALETTE, len(values))
    all_values = np.concatenate([np.asarray(v) for v in values.values()])
    value_range = value_range or (float(all_values.min()), float(all_values.max()))
    for color, (eps, v) in zip(colors, sorted(values.items())):
        ax.hist(v, bins=bins, range=value_range, histtype="step", lw=1.6, color=color, label=f"AR {eps:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    ax.set_title(title)
    if inset_range is not None:
        inset = inset_axes(ax, width="45%", height="45%", loc="upper center")
        for color, (eps, v) in zip(colors, sorted(values.items())):
            inset.hist(v, bins=bins // 2, range=inset_range, histtype="step", lw=1.2, color=color)
        inset.tick_params(labelsize=7)
    return ax


def singular_value_std_by_layer(stds: dict[float, np.ndarray], title: str = "", ax=None):
    """Fig. 1a, 5c/d: standard deviation of each layer's singular values, per AR strength."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    colors = sns.color_palette(EPS_PALETTE, len(stds))
    for color, (eps, s) in zip(colors, sorted(stds.items())):
        ax.plot(np.arange(1, len(s) + 1), s, "o-", ms=3, color=color, label=f"AR {eps:g}")
    ax.set_xlabel("layer index")
    ax.set_ylabel("std of singular values")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return ax


def loss_variation_bars(table: pd.DataFrame, title: str = "", ax=None):
    """Fig. 8: mean (+- std) maximal loss change per attack strength, one bar per AR strength.
    `table`: columns eps (trained), eps_attack, mean, std."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    trained = sorted(table["eps"].unique())
    attacks = sorted(table["eps_attack"].unique())
    width = 0.8 / len(trained)
    colors = sns.color_palette(EPS_PALETTE, len(trained))
    for i, (eps, color) in enumerate(zip(trained, colors)):
        t = table[table["eps"] == eps].set_index("eps_attack").loc[attacks]
        ax.bar(np.arange(len(attacks)) + i * width, t["mean"], width, yerr=t["std"], capsize=3,
               color=color, label=f"AR {eps:g}")
    ax.set_xticks(np.arange(len(attacks)) + 0.4 - width / 2)
    ax.set_xticklabels([f"eps = {a:g}" for a in attacks])
    ax.set_ylabel("max. loss variation")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return ax


def comparison_table(ours: pd.DataFrame, paper: pd.DataFrame | None, metrics, index="eps") -> pd.DataFrame:
    """Side-by-side table: for each metric a column for this build and one for the paper."""
    left = ours.set_index(index)[list(metrics)].add_suffix(" (this build)")
    if paper is None or paper.empty:
        return left
    right = paper[[m for m in metrics if m in paper]].add_suffix(" (paper)")
    right.index = right.index.rename(index)
    both = left.join(right, how="outer")
    return both[[c for m in metrics for c in (f"{m} (this build)", f"{m} (paper)") if c in both]]
