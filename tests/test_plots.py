"""The book's figures and tables with eps 0 (standard training) and several seeds per strength:
every seed a point, the mean a line; mean ± std tables; paper panels that pair nothing with eps 0."""
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
from matplotlib.collections import PathCollection  # noqa: E402

from arreg_core import plots  # noqa: E402


def runs(eps=(0, 4, 8, 16), seeds=(0, 1)):
    """A metrics table like Experiments.metrics: one row per (eps, seed)."""
    rows = [{"eps": float(e), "seed": s, "gap_loss": 1.0 - 0.05 * e + 0.1 * s, "gap_acc": 10 + e + s,
             "train_acc": 100 - e - s, "test_acc": 60 - e + s, "train_loss": 0.1 * e + s, "test_loss": 1 + s,
             "pgd_acc": 2 * e + s}
            for s in seeds for e in eps]
    return pd.DataFrame(rows)


PAPER = pd.DataFrame({"gap_loss": [0.669, 0.606, 0.545], "gap_acc": [10.65, 10.94, 11.08],
                      "train_acc": [99.51, 98.45, 95.97], "test_acc": [88.86, 87.51, 84.89],
                      "pgd_acc": [65.92, 65.24, 72.16]},
                     index=pd.Index([4, 8, 16], name="eps_train"))


def test_mean_std_over_two_seeds():
    t = pd.DataFrame({"eps": [0.0, 0.0, 4.0, 4.0, 8.0], "seed": [0, 1, 0, 1, 0], "acc": [90.0, 92.0, 80.0, 84.0, 70.0]})
    table = plots.mean_std(t, "eps", ["acc"])
    assert list(table.seeds) == [2, 2, 1]
    assert list(table.acc) == ["91 ± 1.414", "82 ± 2.828", "70"]  # sample std; one seed: the mean alone


def test_comparison_table_pairs_only_the_same_strength():
    table = plots.comparison_table(runs(), PAPER, ["test_acc", "pgd_acc"])
    acc, pgd = "test accuracy %", "PGD accuracy % (of the clean-correct)"
    assert list(table.columns) == ["seeds", f"{acc} (this build)", f"{acc} (paper)", f"{pgd} (this build)", f"{pgd} (paper)"]
    assert list(table.index) == [0, 4, 8, 16] and (table.seeds == 2).all()
    assert table.loc[0, f"{acc} (paper)"] == ""  # CIFAR's tables have no eps 0
    assert table.loc[4, f"{acc} (paper)"] == "88.86" and table.loc[4, f"{acc} (this build)"] == "56.5 ± 0.7071"
    assert list(plots.comparison_table(runs().assign(mystery=1.0), None, ["test_acc", "mystery"]).columns) == \
        ["seeds", f"{acc} (this build)", "mystery (this build)"]
    clipped = plots.comparison_table(runs().assign(spectral_norm="5"), None, ["test_acc"], index=["spectral_norm", "eps"])
    assert list(clipped.index.names) == ["spectral norm clip", "eps"]  # index levels named for a reader too


def test_gap_curves_draw_every_seed_and_eps_0_on_a_symlog_axis():
    fig = plots.gap_curves(runs(), PAPER)
    ours, paper = fig.axes[0], fig.axes[1]
    assert ours.get_xscale() == "symlog" and paper.get_xscale() == "log"
    line = ours.get_lines()[0]
    assert list(line.get_xdata()) == [0, 4, 8, 16]  # the means
    assert np.allclose(line.get_ydata(), runs().groupby("eps").gap_loss.mean())
    points = ours.collections[0].get_offsets()
    assert len(points) == 8 and all((points[:, 0] == e).sum() == 2 for e in (0, 4, 8, 16))  # 2 seeds a strength
    assert not paper.collections  # one published number a strength: no seed points
    assert paper.get_xlabel().endswith("; no eps 0 in the paper's table")
    assert ours.get_xlabel() == "AR strength eps (0-255 scale); 0: standard training"
    matplotlib.pyplot.close(fig)


def test_one_seed_draws_the_line_only():
    fig = plots.gap_curves(runs(eps=(4, 8, 16), seeds=(0,)), PAPER)
    assert not fig.axes[0].collections and fig.axes[0].get_xscale() == "log"
    assert fig.axes[1].get_xlabel() == "AR strength eps (0-255 scale)"  # the paper has every strength trained here
    matplotlib.pyplot.close(fig)


def test_histograms_average_the_seeds_counts():
    rng = np.random.default_rng(0)
    examples = pd.DataFrame([{"eps": e, "seed": s, "value": v} for e in (0.0, 8.0) for s in (0, 1)
                             for v in rng.normal(size=50)])
    ax = plots.histograms_by_eps(examples, "margin", bins=10)
    heights = [patch.get_path().vertices[:, 1].max() for patch in ax.patches]
    assert len(ax.patches) == 2 and all(h <= 50 for h in heights)
    assert sum(np.histogram(examples[examples.eps == 0].value.astype(float), bins=10)[0]) / 2 == 50
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["standard (eps 0)", "AR 8"] and ax.get_ylabel() == "examples, mean over 2 seeds"
    matplotlib.pyplot.close(ax.figure)


def test_singular_value_std_by_layer_draws_each_seed():
    spectrum = pd.DataFrame([{"eps": e, "seed": s, "layer": i, "name": f"conv{i}", "std": e + i + s}
                             for e in (0.0, 4.0, 16.0) for s in (0, 1) for i in (1, 2, 3)])
    ax = plots.singular_value_std_by_layer(spectrum, (4.0, 16.0))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["AR 4", "AR 16"]
    assert [len(c.get_offsets()) for c in ax.collections] == [6, 6]  # 3 layers x 2 seeds, per strength
    assert np.allclose(ax.get_lines()[0].get_ydata(), [5.5, 6.5, 7.5])
    matplotlib.pyplot.close(ax.figure)


def test_smallest_singular_values_mark_zeros_and_draw_each_seed():
    sigma = pd.DataFrame({"eps": [0.0, 0.0, 16.0, 16.0], "seed": [0, 1, 0, 1],
                          "value": [np.array([1.0, 0.1]), np.array([1.0, 0.0]), np.array([0.5, 0.2]), np.array([0.5, 0.2])]})
    ax = plots.smallest_singular_values(sigma, ["conv1", "conv2"])
    zeros = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert [len(line.get_xdata()) for line in zeros] == [1]  # seed 1's conv2 at eps 0
    assert abs(zeros[0].get_xdata()[0] - 2) <= 0.3
    assert np.allclose(ax.get_lines()[0].get_ydata(), [0, -1])  # the mean of the non-zero logs
    matplotlib.pyplot.close(ax.figure)


def test_zero_singular_values_of_every_strength_stay_visible_and_the_legend_shows_them():
    """Theorem 3.1's figure: where every strength has a zero at the same layer, each x sits apart
    in its strength's colour, and the legend's x's are the drawn ones (not one grey stand-in)."""
    eps = (0.0, 4.0, 8.0, 16.0)
    sigma = pd.DataFrame({"eps": eps, "seed": 0, "value": [np.array([1.0, 0.0, 0.0])] * 4})
    ax = plots.smallest_singular_values(sigma, ["conv1", "conv2", "conv3"])
    zeros = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(zeros) == 4
    at_conv2 = sorted(line.get_xdata()[0] for line in zeros)
    assert all(b - a >= 0.1 for a, b in zip(at_conv2, at_conv2[1:])) and abs(np.mean(at_conv2) - 2) < 1e-9
    assert [matplotlib.colors.to_hex(line.get_color()) for line in zeros] == \
        [matplotlib.colors.to_hex(plots.eps_color(e)) for e in eps]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()][-1] == "exactly 0 (on the dotted floor)"
    shown = [c for c in legend.findobj(matplotlib.lines.Line2D) if c.get_marker() == "x"]
    assert sorted(matplotlib.colors.to_hex(c.get_color()) for c in shown) == \
        sorted(matplotlib.colors.to_hex(line.get_color()) for line in zeros)
    matplotlib.pyplot.close(ax.figure)


def test_loss_variation_bars_put_each_seed_on_its_bar():
    table = pd.DataFrame([{"eps": e, "eps_attack": a, "seed": s, "mean": 0.1 * a + 0.01 * s, "std": 0.05}
                          for e in (0.0, 4.0) for a in (1.0, 4.0) for s in (0, 1)])
    ax = plots.loss_variation_bars(table)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == 8  # 2 strengths x 2 attacks x 2 seeds
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["each seed (bar: their mean)", "standard (eps 0)", "AR 4"]
    matplotlib.pyplot.close(ax.figure)


def test_loss_variation_bars_colour_each_strength_alike_in_both_panels_and_stop_whiskers_at_0():
    """Fig. 8: AR 4 has one colour in this build's panel (with eps 0) and the paper's (without);
    a mean - std below 0 is not drawn (the change is >= 0), and the axis says so."""
    ours = pd.DataFrame([{"eps": e, "eps_attack": a, "mean": 0.1 * a, "std": 0.05} for e in (0.0, 4.0, 8.0) for a in (1.0, 4.0)])
    paper = pd.DataFrame([{"eps": e, "eps_attack": a, "mean": 0.03, "std": 0.1} for e in (4.0, 8.0) for a in (1.0, 4.0)])
    fig, axes = plots.figure(1, 2)
    left = plots.loss_variation_bars(ours, ax=axes[0, 0])
    right = plots.loss_variation_bars(paper, ax=axes[0, 1])

    def colours(ax):
        return {t.get_text(): matplotlib.colors.to_hex(h.get_facecolor())
                for h, t in zip(ax.get_legend().legend_handles, ax.get_legend().get_texts())}
    assert colours(left)["AR 4"] == colours(right)["AR 4"] and colours(left)["AR 8"] == colours(right)["AR 8"]
    for ax in (left, right):
        whiskers = [seg for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)
                    for seg in c.get_segments()]
        assert whiskers and min(seg[:, 1].min() for seg in whiskers) >= 0
        assert ax.get_ylim()[0] == 0 and "cut at 0" in ax.get_ylabel()
    assert max(seg[:, 1].max() for c in right.collections if isinstance(c, matplotlib.collections.LineCollection)
               for seg in c.get_segments()) == pytest.approx(0.13)  # the upper whisker keeps its full std
    matplotlib.pyplot.close(fig)


def test_eps_colour_depends_on_the_strength_alone():
    assert plots.eps_color(4) == plots.eps_color(4.0) != plots.eps_color(8)
    assert plots.eps_color(plots.EPS_TOP) == plots.eps_color(2 * plots.EPS_TOP)  # the lightest, beyond too


def test_a_panel_the_paper_did_not_publish_shows_only_words():
    """B.6, Fig. 9a: the paper has no FGSM error gap; its panel says so, with no axes, ticks or scale."""
    fig = plots.gap_curves(runs(), PAPER.drop(columns="gap_acc"))
    unpublished = fig.axes[3]  # error gap row, paper column
    assert not unpublished.axison and [t.get_text() for t in unpublished.texts] == ["not published"]
    assert unpublished.get_title(loc="left").startswith("(a) error gap — paper")
    assert all(ax.axison for ax in fig.axes[:3])
    matplotlib.pyplot.close(fig)
    fig = plots.gap_curves(None, PAPER.drop(columns="gap_acc"))  # a paper-only figure: the empty row is short
    assert fig.axes[1].get_position().height < fig.axes[0].get_position().height / 2
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("eps,label", [(0, "standard (eps 0)"), (4.0, "AR 4"), (2.5, "AR 2.5")])
def test_eps_label(eps, label):
    assert plots.eps_label(eps) == label


def test_readable_names_columns_and_turns_fractions_into_percentages():
    t = pd.DataFrame({"eps": [4.0], "accuracy": [0.362], "frac_near_zero": [0.1], "skewness": [1.5], "other": [2]})
    shown = plots.readable(t, percent=plots.MARGIN_FRACTIONS)
    assert list(shown.columns) == ["eps", "accuracy %", "margins within 1 of zero %", "skewness", "other"]
    assert shown["accuracy %"].iloc[0] == pytest.approx(36.2) and t.accuracy.iloc[0] == 0.362  # the input is kept


def test_histogram_legends_sit_below_the_panel_and_insets_avoid_the_spikes():
    """Fig. 1b, 4a, 5a/b: the legend never covers the bars (it sits below the axes), and the inset
    goes to the third of the range with the lowest bars (here the middle: values pile up at 0 and 1)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 0.05, 400), rng.uniform(0.95, 1, 400), rng.uniform(0, 1, 50)])
    examples = pd.DataFrame({"eps": 4.0, "seed": 0, "value": values})
    ax = plots.histograms_by_eps(examples, "probability", value_range=(0, 1), inset_range=(0.2, 0.8))
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 < ax.get_window_extent().y0  # entirely below the panel
    (inset,) = [a for a in ax.figure.axes if a is not ax]
    box, panel = inset.get_position(), ax.get_position()
    assert panel.x0 + panel.width / 4 < (box.x0 + box.x1) / 2 < panel.x1 - panel.width / 4  # centred
    assert all(t.get_size() >= 8 for t in inset.get_xticklabels())
    assert plots.emptiest_third([(4, np.full(10, 0.9), np.ones(10), 1)], (0, 1), 9) == "upper left"
    matplotlib.pyplot.close(ax.figure)


def test_fig_12_keeps_its_legend_and_the_madry_star_off_the_data():
    """The legend sits below the panel, and the y axis runs from 0 to above both the curve and the
    ~50% reference, so neither the star nor a point touches the frame or hides under the legend."""
    fig = plots.adversarial_accuracy(runs(), PAPER)
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend.get_bbox_to_anchor().y0 < ax.get_window_extent().y0  # below the axes
        low, high = ax.get_ylim()
        assert -5 < low < 0 and high > max(plots.MADRY_PGD_ACC, *[max(line.get_ydata()) for line in ax.get_lines()]) + 5
    matplotlib.pyplot.close(fig)


def test_numbered_layers_name_the_classifier():
    spectrum = pd.DataFrame([{"eps": e, "seed": 0, "layer": i, "name": n, "kind": k, "std": e + i}
                             for e in (4.0, 16.0) for i, n, k in ((1, "conv1", "conv"), (2, "conv2", "conv"), (3, "fc", "linear"))])
    ax = plots.singular_value_std_by_layer(spectrum, (4.0, 16.0), names=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "fc"]
    assert ax.get_xlabel() == "convolution (fc: the classifier)"
    matplotlib.pyplot.close(ax.figure)


def test_margin_tables_split_each_split_into_a_margins_and_a_confidence_table():
    rows = [{"run": f"r{eps}{seed}{split}", "dataset": "cifar10-jpeg", "eps": eps, "seed": seed, "split": split,
             "n": 500 if split == "train" else 1000, "mean": 1.0 + eps, "median": 0.5, "std": 2.0, "skewness": 0.1,
             "frac_near_zero": 0.25, "frac_negative": 0.5, "accuracy": 0.375, "mean_loss": 0.0011334, "mean_prob": 0.9}
            for eps in (0, 8) for seed in (0, 1) for split in ("train", "test")]
    parts = plots.margin_tables(pd.DataFrame(rows))
    assert len(parts) == 6 and "train split" in parts[0] and "500 examples" in parts[0] and "1000 examples" in parts[3]
    margins, confidence = parts[1], parts[2]
    assert list(margins.index.names) == ["eps", "seed"] and len(margins) == 4
    assert margins.columns.tolist() == list(plots.MARGIN_COLUMNS["margins"].values())
    assert margins.loc[(8, 1), "mean margin"] == "9" and margins.loc[(0, 0), "negative %"] == "50"
    assert confidence.loc[(0, 0), "accuracy %"] == "37.5" and confidence.loc[(0, 0), "mean loss"] == "0.001133"


def _examples():
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"eps": e, "seed": 0, "value": v} for e in (0.0, 4.0, 16.0) for v in rng.normal(size=40)])


def _spectrum():
    return pd.DataFrame([{"eps": e, "seed": 0, "layer": i, "name": f"block{i}.conv", "std": e + i}
                         for e in (4.0, 16.0) for i in (1, 2, 3)])


def _clipped():
    return runs().assign(spectral_norm="none").pipe(lambda t: pd.concat([t, t.assign(spectral_norm="1", gap_loss=0.1)]))


def _step_matrix():
    from arreg_core import performance
    rows = [{"network": n, "step": s, "precision": p, "runs per GPU": r, "sharing": "processes", "images/s per GPU": v}
            for n in ("resnet20", "resnet56")
            for s, p, r, v in (("plain loop", "fp32", 1, 5000.0), ("eager", "bf16", 4, 24500.0), ("CUDA graph", "bf16", 1, 18000.0))]
    return performance.plot_step_matrix(pd.DataFrame(rows))


FIGURES = {  # every figure with a legend: (a way to draw it) -> its figure
    "gap and loss curves": lambda: plots.loss_error_curves(runs(), PAPER),
    "by clip": lambda: plots.by_clip(_clipped(), _clipped().rename(columns={"eps": "eps_train"}).query("seed == 0"),
                                     [("gap_loss", "loss gap"), ("gap_acc", "error gap")], "a"),
    "Fig. 12": lambda: plots.adversarial_accuracy(runs(), PAPER),
    "Fig. 1c": lambda: plots.accuracy_panel(runs().assign(robust_acc=1.0), plots.figure()[1][0, 0]).figure,
    "histograms": lambda: plots.histograms_by_eps(_examples(), "margin").figure,
    "std by layer": lambda: plots.singular_value_std_by_layer(_spectrum(), (4.0, 16.0)).figure,
    "smallest sigma": lambda: plots.smallest_singular_values(
        pd.DataFrame({"eps": (0.0, 16.0), "seed": 0, "value": [np.array([1.0, 0.0])] * 2}), ["conv1", "conv2"]).figure,
    "Fig. 8": lambda: plots.loss_variation_bars(pd.DataFrame(
        [{"eps": e, "eps_attack": a, "mean": a, "std": 0.5} for e in (4.0, 8.0) for a in (1.0, 4.0)])).figure,
    "GPU step matrix": _step_matrix,
}


@pytest.mark.parametrize("name", FIGURES)
def test_no_legend_sits_on_data(name):
    """Every legend lies under its panel, below the x tick labels and x label: it can cover no line,
    bar or point (the step matrix's goal legend once hid the end of a bar; B.4's touched SN 3)."""
    fig = FIGURES[name]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for ax in legends:
        box = ax.get_legend().get_window_extent(renderer)
        assert box.y1 <= ax.get_window_extent(renderer).y0
        assert box.y1 <= ax.xaxis.get_tightbbox(renderer).y0 + 1  # under the axis labels, too
    matplotlib.pyplot.close(fig)


def test_three_panels_go_two_a_row_the_third_centred():
    """Fig. 1 (overview): three panels at the column's width, two a row, the last centred."""
    fig, axes = plots.panels(3)
    (a, b, c) = [ax.get_position() for ax in axes]
    assert a.y0 == b.y0 > c.y1 and abs((c.x0 + c.x1) / 2 - 0.5) < 0.02
    assert a.width == pytest.approx(c.width) and a.width > 0.3
    matplotlib.pyplot.close(fig)
