"""The paper's published numbers (Tables 1-6, appendix B.2), shipped with the package as data.

Provenance and column meanings: `arreg_core/paper_tables/README.md`. Everything returned here
is the paper's, never ours: callers label it "paper".
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

TABLES = ("paper_results", "loss_variation", "singular_value_std_summary")
# Settings of the `paper` profile that the paper does not state (appendix B.1, D): the profile
# assumes a value for each, and a page that shows the paper's settings says which are assumed.
UNSTATED = {"weight_decay": "not stated ({} assumed here)", "precision": "not stated ({} assumed here)",
            "seed": "not stated (one network per strength published)"}


def table(name: str = "paper_results") -> pd.DataFrame:
    """One of TABLES as a DataFrame, with a `source` column saying "paper"."""
    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; choose one of {', '.join(TABLES)}")
    with files("arreg_core.paper_tables").joinpath(f"{name}.csv").open() as f:
        return pd.read_csv(f).assign(source="paper")


def metrics(dataset: str, arch: str, method: str = "pgd", spectral_norm: str = "none") -> pd.DataFrame:
    """The network's table (`results_table`) as one row per AR strength (index eps_train) and one column per metric."""
    t = table("paper_results")
    rows = t[(t.dataset == dataset) & (t.arch == arch) & (t.method == method) & (t.spectral_norm == spectral_norm)]
    rows = rows[rows.table == results_table(dataset, method, spectral_norm)] if not rows.empty else rows
    if rows.empty:
        raise ValueError(f"the paper has no results for dataset={dataset!r} arch={arch!r} method={method!r} "
                         f"spectral_norm={spectral_norm!r}")
    return rows.pivot_table(index="eps_train", columns="metric", values="value")


def results_table(dataset: str, method: str = "pgd", spectral_norm: str = "none") -> int:
    """The paper's table that publishes a network's results: 2 (FGSM), 3, 4 and 5 (PGD on CIFAR-10,
    CIFAR-100 and Tiny-ImageNet), 6 (under a spectral-norm clip; its unclipped rows repeat Table 3's)."""
    if method == "fgsm":
        return 2
    if spectral_norm != "none":
        return 6
    return {"cifar10": 3, "cifar100": 4, "tinyimagenet": 5}[dataset]


def dataset(name: str) -> str:
    """The paper's data set a build's data set `name` stands in for: cifar10-jpeg (and the smoke
    profile's synthetic data) are compared with the paper's CIFAR-10."""
    return {"cifar10-jpeg": "cifar10", "synthetic": "cifar10"}.get(name, name)


def spread_summary() -> pd.DataFrame:
    """Table B.2 (the sums and means of the changes of each layer's singular-value std from AR 4 to 16,
    per group of layers whose std decreased or increased) with the number of layers in each group
    (`layers`: the sum divided by the mean)."""
    t = table("singular_value_std_summary")
    return t.assign(layers=(t["sum"] / t["mean"]).round().astype(int))


def spectral_norm_results() -> pd.DataFrame:
    """Table 6 (ResNet-56 on CIFAR-10 under each spectral-norm clip): one row per clip and AR strength
    (columns spectral_norm, eps_train) and one column per metric."""
    t = table("paper_results")
    return t[t.table == 6].pivot_table(index=["spectral_norm", "eps_train"], columns="metric", values="value").reset_index()
