"""The words of the chapters' computed paragraphs, and the exercise switch."""
import numpy as np
import pandas as pd
import pytest

from arreg_core import chapter, verdicts


def series(*values):
    return pd.Series(values, index=[4, 8, 16][:len(values)])


@pytest.mark.parametrize("values,words", [((3, 2, 1), "falls"), ((1, 2, 3), "rises"), ((1, 1, 1), "stays flat"),
                                          ((1, 3, 2), "rises, then falls"), ((3, 1, 2), "falls, then rises")])
def test_direction(values, words):
    assert chapter.direction(series(*values)) == words


def test_verdict_and_regime_from_a_table():
    t = pd.DataFrame({"eps": [4, 8, 16], "seed": 0, "gap_loss": [5.7, 0.7, 0.07], "train_acc": [100, 70.8, 28.6]})
    text = chapter.step_by_step("Loss gap", t, "gap_loss", -1)
    assert "it falls, 5.70 at eps 4, 0.70 at eps 8 and 0.07 at eps 16 (one seed)." in text
    assert text.startswith("*Step by step*") and "Every step of the means goes the paper's way" in text
    # supporting detail, never a competing verdict: no "holds" / "does not hold" in bold
    against = chapter.step_by_step("Loss gap", t, "gap_loss", +1)
    assert "Not every step" in against and "**" not in against
    assert "**fit** (clean training accuracy) 28.6-100.0%: **outside** at eps 8, eps 16" in chapter.regime_line(t)
    assert "**fit** (clean training accuracy) 99.0%: inside" in chapter.regime_line(t.assign(train_acc=99))
    # the paper's side of the three parts is read from its tables, for the network the runs stand in for
    cifar = t.assign(dataset="cifar10-jpeg", train_acc=100.0, test_acc=[38.0, 35.0, 33.0], pgd_acc=[6.0, 12.0, 24.0])
    line = chapter.regime_line(cifar)
    assert "(Table 3)" not in line and "Table 3)" in line and "the paper's resnet56: 96.0-99.5%): inside" in line
    assert "**generalisation** (test accuracy) 33.0-38.0% against 84.9-88.9% for the paper's resnet56 at the same eps: **outside**" in line
    assert "**robustness** (PGD accuracy of the correctly classified test images) 6.0-24.0% against 65.2-72.2%" in line
    assert "memorise their training images but generalise far worse" in line
    assert "for the paper's resnet110 at the same eps" in chapter.regime_line(cifar, arch="resnet110")
    assert "the paper's resnet56 with its spectral norm clipped to 1: 90.6-96.9%" in chapter.regime_line(cifar, spectral_norm="1")
    assert "Table 6)" in chapter.regime_line(cifar, spectral_norm="1")
    fgsm = chapter.regime_line(cifar, method="fgsm")  # Table 2 publishes test accuracy only
    assert "Table 2)" in fgsm and "robustness" not in fgsm and "**fit** (clean training accuracy) 100.0%: inside" in fgsm
    close = cifar.assign(test_acc=[85.0, 80.0, 76.0])  # within 10 points of the paper's: generalises
    assert "**generalisation** (test accuracy) 76.0-85.0% against 84.9-88.9% for the paper's resnet56 at the same eps: inside" in chapter.regime_line(close)
    assert not chapter.fits_every_strength(t) and chapter.fits_every_strength(t.assign(train_acc=99))
    # one threshold across the book: a chapter's regime line agrees with the scorecard's regime check
    for acc in (79.9, 80.0, 90.0):
        assert chapter.fits_every_strength(t.assign(train_acc=acc)) == verdicts.fits(acc) == \
            verdicts.NetworkRegime("x", acc).part("fit")
    # seeds are averaged per eps
    two = pd.concat([t, t.assign(seed=1, gap_loss=[5.5, 0.9, 0.09])])
    assert "5.60 at eps 4, 0.80 at eps 8 and 0.08 at eps 16" in chapter.describe(two, "gap_loss", "x")


def test_exercises_train_nothing_while_a_non_smoke_book_is_built(monkeypatch):
    monkeypatch.setenv(chapter.BOOK_BUILD_ENV, "1")
    assert chapter.exercise("cpu", eps=[2]) is None


def two_seeds():
    """eps 0 (standard training) and 3 AR strengths, 2 seeds: the mean falls at every step,
    seed 1 on its own does not (it rises from 8 to 16)."""
    return pd.DataFrame({"eps": [0.0, 4, 8, 16] * 2, "seed": [0] * 4 + [1] * 4,
                         "gap_loss": [6.0, 5.0, 3.0, 1.0, 6.2, 4.8, 1.0, 1.4], "train_acc": [100, 99, 97, 90] * 2,
                         "test_acc": [60, 55, 50, 45, 62, 57, 52, 47]})


def test_words_name_standard_training_and_the_seeds():
    t = two_seeds()
    assert chapter.values_at_eps(chapter.per_eps(t, "gap_loss"), "{:.1f}") == \
        "6.1 at eps 0 (standard training), 4.9 at eps 4, 2.0 at eps 8 and 1.2 at eps 16"
    assert chapter.describe(t, "gap_loss", "the loss gap", "{:.1f}") == (
        "the loss gap falls over the AR strengths: 4.9 at eps 4, 2.0 at eps 8 and 1.2 at eps 16 "
        "(means over 2 seeds); standard training (eps 0): 6.1")
    text = chapter.step_by_step("Loss gap", t, "gap_loss", -1, "{:.1f}")
    assert "it falls over the AR strengths, 4.9 at eps 4" in text
    assert "Every step between AR strengths of the means goes the paper's way" in text
    assert "1.2 at eps 16 (means over 2 seeds); standard training (eps 0): 6.1. Every step" in text
    assert "every step goes that way in 1 of the 2 seeds taken one at a time" in text and "one seed per strength" not in text
    assert chapter.seeds_note(t[t.seed == 0]) == " (one seed)"
    assert chapter.seeds_note(t[t.seed == 0].drop(columns="seed")) == ""


def test_tiny_values_keep_two_significant_digits_instead_of_printing_zero():
    """A memorised training loss (2.9e-05) must not read "0.00" (secB4's resnet14 sentence did)."""
    losses = pd.Series([2.9e-5, 1.6e-5, 1.0e-4], index=[4.0, 8.0, 16.0])
    assert chapter.values_at_eps(losses) == "2.9e-05 at eps 4, 1.6e-05 at eps 8 and 0.0001 at eps 16"
    assert chapter.formatted(0.0) == "0.00" and chapter.formatted(0.004) == "0.004" and chapter.formatted(5.691) == "5.69"
    assert chapter.formatted(float("nan")) == "nan" and chapter.formatted(12.34, "{:.1f}") == "12.3"


def test_trends_are_read_over_the_ar_strengths_like_the_scorecards():
    """eps 0 is the reference, not a step of the trend: a metric low under standard training that
    falls over eps 4, 8, 16 "falls" (the scorecard's statistic is over eps > 0 too)."""
    t = two_seeds().assign(gap_loss=[0.5, 5.0, 3.0, 1.0, 0.4, 4.8, 2.0, 0.8])
    assert chapter.trend_direction(t, "gap_loss") == "falls"
    assert chapter.direction(chapter.per_eps(t, "gap_loss")) == "rises, then falls"
    assert "Every step between AR strengths of the means goes the paper's way; every step goes that way in 2 of the 2 " \
        "seeds taken one at a time" in chapter.step_by_step("Loss gap", t, "gap_loss", -1)
    # one AR strength: standard training is the only comparison, and stays in the series
    one = t[t.eps.isin([0, 8])]
    assert chapter.trend_direction(one, "gap_loss") == "rises"
    assert "over the AR strengths" not in chapter.describe(one, "gap_loss", "x")
    clips = pd.concat([t.assign(spectral_norm="none"), t.assign(spectral_norm="1", gap_loss=[3.0, 1, 2, 3] * 2)])
    assert chapter.directions_per_clip(clips, "gap_loss") == "no clip falls; SN 1 rises"


@pytest.mark.parametrize("eps,pair", [([0, 4, 8, 16], (4, 16)), ([4, 8, 16], (4, 16)), ([0, 2, 6], (2, 6)),
                                      ([0, 8], (0, 8)), ([2, 4, 16, 32], (4, 16))])
def test_paper_strengths_are_4_and_16_never_standard_training_where_avoidable(eps, pair):
    assert chapter.paper_strengths(eps) == pair


def test_next_to_paper_sets_the_same_strength_side_by_side():
    ref = pd.DataFrame({"train_acc": [99.51, 98.45], "test_acc": [88.86, 87.51]}, index=pd.Index([4, 8], name="eps_train"))
    text = chapter.next_to_paper(two_seeds(), ref, "The paper's ResNet-56")
    assert text == ("The paper's ResNet-56 reaches 99.51% training and 88.86% test accuracy at eps 4; "
                    "this build 99.0% and 56.0% at eps 4 (means over 2 seeds).")
    assert "no AR strength in common" in chapter.next_to_paper(two_seeds()[lambda t: t.eps == 0], ref, "It")


def test_share_between_is_per_run():
    examples = pd.DataFrame({"eps": [0.0] * 4 + [8.0] * 4, "seed": [0, 0, 1, 1] * 2,
                             "value": [0.1, 0.5, 0.5, 0.5, 0.9, 0.3, 0.2, 0.8]})
    share = chapter.share_between(examples, 0.2, 0.8)
    assert share.to_dict("list") == {"eps": [0.0, 0.0, 8.0, 8.0], "seed": [0, 1, 0, 1], "share": [50.0, 100.0, 50.0, 0.0]}


def test_spread_changes_per_seed_and_the_b2_table():
    spectrum = pd.DataFrame([{"dataset": "d", "eps": e, "seed": s, "layer": i, "kind": "conv" if i < 3 else "linear",
                              "std": {4.0: 2.0, 16.0: 1.0}[e] * i + (0.5 * s if i == 2 else 0) * (e == 16)}
                             for e in (4.0, 16.0) for s in (0, 1) for i in (1, 2, 3)])
    changes = chapter.spread_changes(spectrum, 4.0, 16.0)
    fell = changes[changes.group == "decreased"]
    assert list(fell.layers) == [2, 2] and list(fell.of) == [2, 2]
    assert fell["sum"].tolist() == [3.0, 2.5]
    assert chapter.per_seed(fell, "layers") == "2 (seed 0) and 2 (seed 1)"
    assert chapter.per_seed(fell[fell.seed == 0], "sum", "{:.1f}") == "3.0"
    linear = chapter.spread_changes(spectrum, 4.0, 16.0, kind="linear")
    assert linear[linear.group == "decreased"].layers.tolist() == [1, 1]
    published = pd.DataFrame({"dataset": ["d", "d"], "group": ["decreased", "increased"], "sum": [4.7465, 0.4372],
                              "mean": [0.1158, 0.0312], "layers": [41, 14]})
    table = chapter.spread_table(changes, published)
    assert table.columns.tolist() == ["seeds", "layers (per seed)", "sum of changes", "mean change"]
    assert table.index.names == ["source", "dataset", "group"]  # no bare row numbers on the page
    assert table.loc[("this build", "d", "decreased")].tolist()[:2] == [2, "2, 2"]
    assert table.iloc[0]["sum of changes"] == "2.75 ± 0.3536" and table.loc[("paper", "d", "decreased"), "sum of changes"] == "4.7465"


def test_in_seeds_and_zero_layers():
    assert chapter.in_seeds(pd.Series([True], index=[0]), "falls", "does not fall") == "falls"
    assert chapter.in_seeds(pd.Series([False], index=[0]), "falls", "does not fall") == "does not fall"
    assert chapter.in_seeds(pd.Series([True, True], index=[0, 1]), "falls", "x") == "falls in every seed"
    assert chapter.in_seeds(pd.Series([False, False], index=[0, 1]), "x", "does not fall") == "does not fall in any seed"
    assert chapter.in_seeds(pd.Series([False, True, True], index=[0, 1, 2]), "falls", "x") == \
        "falls in 2 of 3 seeds (seed 1, 2)"
    zero, one = np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0])
    sigma = pd.DataFrame({"eps": [0.0, 0.0, 4.0, 4.0, 16.0, 16.0], "seed": [0, 1] * 3,
                          "value": [zero, zero, zero, one, one, np.ones(3)]})
    assert chapter.zero_layers(sigma, ["conv1", "conv2", "conv3"]) == [
        "conv1 and conv2 at eps 0 and 4 (seed 0)", "conv2 at eps 4 (seed 1) and 16 (seed 0)"]
    assert chapter.zero_layers(sigma[sigma.seed == 0], ["conv1", "conv2", "conv3"]) == [
        "conv1 and conv2 at eps 0 and 4", "conv2 at eps 16"]
    assert chapter.zero_layers(sigma[sigma.eps == 16].assign(value=[np.ones(3)] * 2), ["a", "b", "c"]) == []


def test_smoke_exercises_run_at_the_class_scales_seeds(monkeypatch):
    """The smoke book stands in for the class scale in its exercise cells: one seed, as there,
    however many seeds smoke's own grid has."""
    from arreg_core.experiments import Experiments
    from arreg_core.profiles import load_profile

    monkeypatch.setattr(Experiments, "runs", lambda self, experiment: pd.DataFrame())
    ex = chapter.exercise("smoke", eps=[2, 16])
    assert {c.seed for c in ex.configs("ar_sweep")} == set(load_profile("class").grid["seeds"])
    assert {c.seed for c in chapter.exercise("smoke", eps=[2], seed=3).configs("ar_sweep")} == {3}
    # a class-scale schedule (secB4's strongest clip: 60 epochs) leaves smoke's own
    short = chapter.exercise("smoke", eps=[2], epochs=60, milestones=[35, 50], eps_warmup_epochs=10)
    smoke = load_profile("smoke").configs["ar_sweep"][0]
    assert {(c.epochs, c.milestones, c.eps_warmup_epochs) for c in short.configs("ar_sweep")} == \
        {(smoke.epochs, smoke.milestones, smoke.eps_warmup_epochs)}


def test_an_exercise_not_run_in_a_book_build_says_so_once_per_cell(monkeypatch):
    """While `arreg book` builds a non-smoke book, exercise cells train nothing; a cell that calls
    `exercise` twice (two run sets to compare) says so once."""
    class Shell:
        execution_count = 7

    shown, shell = [], Shell()
    monkeypatch.setattr(chapter, "md", shown.append)
    monkeypatch.setattr(chapter, "get_ipython", lambda: shell)
    monkeypatch.setenv(chapter.BOOK_BUILD_ENV, "1")
    assert chapter.exercise("cpu", eps=[4], n_train=250) is None and chapter.exercise("cpu", eps=[4]) is None
    assert len(shown) == 1 and shown[0].startswith("*Not run while the book was built.")
    shell.execution_count = 8  # the next cell
    chapter.exercise("cpu", eps=[4])
    assert len(shown) == 2


def test_an_exercise_prints_its_networks_regime_line(monkeypatch):
    """A class network at eps 16 that reaches 18% clean training accuracy: the exercise says, before its
    numbers, that it does not fit (and at eps 2, where it fits, that it generalises worse than the paper's)."""
    from arreg_core.experiments import Experiments

    runs = pd.DataFrame({"run": ["a", "b"], "dataset": "cifar10-jpeg", "arch": "resnet8", "method": "pgd",
                         "spectral_norm": None, "eps": [4.0, 16.0], "seed": 0, "train_acc": [99.0, 18.0],
                         "test_acc": [40.0, 17.4], "pgd_acc": [10.0, 80.0], "path": ["a", "b"]})
    monkeypatch.setattr(Experiments, "runs", lambda self, experiment: runs)
    shown = []
    monkeypatch.setattr(chapter, "md", shown.append)
    chapter.exercise("smoke", eps=[4, 16])
    assert len(shown) == 1 and shown[0].startswith("**Regime**")
    assert "**fit** (clean training accuracy) 18.0-99.0% (the paper's resnet56: 96.0-99.5%): **outside** at eps 16" in shown[0]


def test_against_standard_compares_the_weakest_ar_with_eps_0_per_seed():
    t = pd.DataFrame({"eps": [0, 0, 4, 4, 16, 16], "seed": [0, 1, 0, 1, 0, 1],
                      "test_acc": [35.0, 36.0, 38.0, 35.5, 30.0, 31.0]})
    line = chapter.against_standard(t, "test_acc", "The test accuracy")
    assert line == ("The test accuracy at the weakest AR (eps 4) is 36.8% against 35.5% with standard training "
                    "(eps 0) (means over 2 seeds): higher in 1 of 2 seeds (seed 0)")
    assert chapter.against_standard(t[t.seed == 1], "test_acc", "x").endswith(": not higher")
    assert chapter.against_standard(t[t.eps > 0], "test_acc", "x") == ""


def test_verdict_calls_a_step_against_the_claim_inside_the_seed_spread_noise():
    """The training loss 7.9e-5 -> 6.4e-5 -> 0.08 (3 seeds, std ~3e-5 at eps 4 and 8): the fall from
    eps 4 to 8 is smaller than the spread between seeds."""
    t = pd.DataFrame({"eps": [4, 4, 4, 8, 8, 8, 16, 16, 16], "seed": [0, 1, 2] * 3,
                      "train_loss": [5e-5, 8e-5, 11e-5, 3e-5, 6e-5, 10e-5, 0.07, 0.08, 0.09]})
    text = chapter.step_by_step("Training loss", t, "train_loss", +1)
    assert "Not every step" in text and "(eps 4 to 8) is smaller than the spread between seeds" in text
    clear = t.assign(train_loss=[0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    assert "spread between seeds" not in chapter.step_by_step("Training loss", clear, "train_loss", +1)


def test_layer_words_and_the_bound_gap():
    assert chapter.layer_words("blocks.1.conv2") == "the second convolution of residual block 2 (blocks.1.conv2)"
    assert chapter.layer_words("fc") == "fc"
    bound = pd.DataFrame({"u_min_bound_nonzero": [1e-15, 1e-13, 0.0], "empirical_u_min": [0.03, 0.22, 0.1]})
    line = chapter.bound_gap(bound)
    assert "1.0e-15 to 1.0e-13" in line and "0.03 to 0.22" in line and "12 or more orders of magnitude below" in line
    assert chapter.bound_gap(bound.iloc[2:]) == "" and chapter.bound_gap(bound[["empirical_u_min"]]) == ""
    assert "lies above the measured margin" in chapter.bound_gap(bound.assign(u_min_bound_nonzero=[1.0, 1e-13, 0.0]))


def test_move_together_compares_the_steps():
    a = pd.DataFrame({"eps": [4, 8, 16], "seed": 0, "x": [7.57, 11.87, 7.34], "y": [4.34, 6.89, 4.10]})
    assert chapter.move_together(a, "x", a, "y", "falls") == (
        "they move together step by step (both: rises, then falls), but not in the paper's direction (both should fall).")
    falling = a.assign(x=[3.0, 2.0, 1.0], y=[9.0, 5.0, 4.0])
    assert chapter.move_together(falling, "x", falling, "y", "falls") == "they move together, both falling, as in the paper."
    assert chapter.move_together(falling, "x", a, "y", "falls") == "the two do not move together here."


def test_skew_comparison_in_magnitude():
    m = pd.DataFrame({"eps": [4, 4, 16, 16], "split": ["train", "test"] * 2, "skewness": [0.97, -0.72, 0.50, -1.49]})
    assert chapter.skew_comparison(m) == "at eps 4, not at eps 16 (0.50 vs 1.49)"
    assert chapter.skew_comparison(m[m.eps == 4]) == "at eps 4"
    assert chapter.skew_comparison(m[m.eps == 16]) == "at no strength"


def test_the_gpu_tier_is_read_from_its_committed_store_and_never_trained(monkeypatch):
    """Experiments.tier reads the gpu profile's committed runs and artifacts (no data, no training,
    no analysis); a chapter's verdict section sets its claims beside this build's, with each tier's
    regime; without finished gpu runs it says how to run them."""
    from arreg_core import experiments, scorecard as sc

    monkeypatch.setenv("ARREG_RUNS", "/nonexistent")  # the executed profile's store, never the tier's
    monkeypatch.setattr(experiments, "get_or_train_all", lambda *a, **k: pytest.fail("a tier trained"))
    monkeypatch.setattr(experiments.analysis, "analyze", lambda *a, **k: pytest.fail("a tier analysed"))
    gpu = experiments.Experiments.tier("gpu")
    assert gpu is not None and gpu.read_only and list(gpu.metrics("ar_sweep").eps) == [0, 4, 8, 16]
    inputs = sc.inputs(gpu)
    card = sc.scorecard(inputs, n_boot=200, chapter="sec4_1")
    shown = []
    monkeypatch.setattr(chapter, "md", shown.append)
    monkeypatch.setattr(chapter, "show_html", shown.append)
    monkeypatch.setattr(chapter, "display", shown.append)
    ex = experiments.Experiments.from_parameters("smoke")
    monkeypatch.setattr(chapter.Experiments, "tier", classmethod(lambda cls, name: gpu))
    chapter.tier_section(ex, inputs, card, "sec4_1", n_boot=200)  # the smoke inputs stand in for this build's
    table = next(s for s in shown if isinstance(s, str) and s.startswith("<table"))
    assert "<th>smoke tier (this build)</th><th>gpu tier</th>" in table and table.count("<tr>") == len(card) + 1
    regimes = next(s for s in shown if isinstance(s, pd.DataFrame))
    assert list(regimes.columns) == ["paper (Table 3)", "smoke tier (this build)", "gpu tier"]
    assert regimes.loc["training / test images", "gpu tier"] == "50,000 / 10,000"
    assert any("The gpu tier's regime" in s and "do not fit" in s for s in shown if isinstance(s, str))
    assert any(s.startswith("The gpu tier's training seeds per network setting: AR sweep 1. Where there is one seed")
               for s in shown if isinstance(s, str))
    shown.clear()  # the scorecard's regime of each network: a table per tier, each under its name
    chapter.regime_tables(ex, inputs)
    assert [s for s in shown if isinstance(s, str)] == ["**The smoke tier (this build)**", "**The gpu tier**"]
    assert [len(s) for s in shown if isinstance(s, pd.DataFrame)] == [len(sc.regime_table(sc.adversarial_only(inputs)))] * 2
    shown.clear()  # the overview's paragraphs, glued for the intro: both regimes and the verdict counts
    import myst_nb
    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: glued.setdefault(key, value.data))
    monkeypatch.setattr(sc, "inputs", lambda experiments: inputs)  # the gpu tier's inputs stand in for this build's
    chapter.regime_summary(ex)
    assert list(glued) == ["regime", "gpu_regime", "verdicts"] and len(shown) == 3
    assert "The gpu tier's regime" in glued["gpu_regime"] and "<strong>The verdicts</strong>" in glued["verdicts"]
    assert f"Of {len(sc.CLAIMS)} claims" in shown[2]
    shown.clear()  # a chapter whose claims the gpu tier does not run: no regime paragraph of it
    chapter.tier_section(ex, inputs, sc.scorecard(inputs, n_boot=200, chapter="secB4"), "secB4", n_boot=200)
    texts = [s for s in shown if isinstance(s, str)]
    assert not any("The gpu tier's regime" in s for s in texts)
    assert "The gpu tier runs none of this chapter's claims: its regime above does not bear on them." in texts
    shown.clear()
    monkeypatch.setattr(chapter.Experiments, "tier", classmethod(lambda cls, name: None))
    chapter.tier_section(ex, inputs, card, "sec4_1")
    assert len(shown) == 1 and "has no finished runs yet" in shown[0] and "gpu_session.sh" in shown[0]
