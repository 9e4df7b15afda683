"""The chapters' computed paragraphs (arreg_core.findings): each branch of what they say, on small
tables, and every paragraph once on the committed `cpu` store."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arreg_core import chapter, findings, paper, plots
from arreg_core.experiments import Experiments
from arreg_core.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]


def runs(**columns):
    """One run per AR strength 4/8/16 (seed 0) with the given metric columns."""
    return pd.DataFrame({"eps": [4.0, 8.0, 16.0], "seed": 0, **columns})


def test_standard_training_is_a_reference_only_where_the_build_has_eps_0():
    assert findings.standard_training_reference(runs(test_acc=[38.0, 35.0, 33.0])) == ""
    with_standard = pd.concat([pd.DataFrame({"eps": [0.0], "seed": 0, "test_acc": [40.0]}), runs(test_acc=[38.0, 35.0, 33.0])])
    text = findings.standard_training_reference(with_standard)
    assert "38.0% against 40.0%" in text and text.endswith("(its Tiny-ImageNet Table 5 has one).")


def test_the_margin_account_is_questioned_only_where_the_training_margins_do_not_fall():
    test = runs(std=[3.0, 2.0, 1.0])
    gap = runs(gap_loss=[5.0, 3.0, 1.0], train_loss=[1e-4, 1e-3, 1e-2])
    falling = findings.margins_and_loss_gap(test, runs(mean=[5.0, 4.0, 3.0]), gap, "d")
    assert len(falling) == 1 and "they move together, both falling, as in the paper." in falling[0]
    growing = findings.margins_and_loss_gap(test, runs(mean=[3.0, 4.0, 5.0]), gap, "d")
    assert len(growing) == 2 and "the mean training margin rises: 3.00 at eps 4" in growing[1]


def test_the_pile_up_is_called_absent_when_most_training_margins_lie_beyond_1():
    far = findings.pile_up(runs(frac_near_zero=[0.1, 0.2, 0.3], median=[4.0, 3.0, 2.0]))
    assert "10.0% at eps 4, 20.0% at eps 8 and 30.0% at eps 16 of the training margins lie within 1 of zero" in far
    assert "a trend reproduced is not a mechanism reproduced" in far
    near = findings.pile_up(runs(frac_near_zero=[0.1, 0.4, 0.6], median=[4.0, 1.0, 0.5]))
    assert near.endswith("Compare with Fig. 4c.")


def test_the_bound_is_called_vacuous_only_where_a_smallest_singular_value_is_zero():
    names = ["conv1", "blocks.1.conv2"]
    sigma = pd.DataFrame({"eps": [4.0, 8.0], "seed": [0, 0], "value": [np.array([0.5, 0.2]), np.array([0.5, 0.0])]})
    bound = pd.DataFrame({"u_min_bound_nonzero": [1e-9], "empirical_u_min": [0.05]})
    vacuous = findings.bound_vacuity(sigma, names, bound, "d")
    assert vacuous.startswith("**d.** The bound is computed for seed 0. The smallest singular value is exactly 0 in the "
                              "second convolution of residual block 2 (blocks.1.conv2) at eps 8")
    assert "the bound is vacuous for these networks" in vacuous and "orders of magnitude below" in vacuous
    positive = findings.bound_vacuity(sigma.assign(value=[np.array([0.5, 0.2])] * 2), names, bound, "d")
    assert positive.startswith("**d.** The bound is computed for seed 0. No convolution has a zero smallest singular value")


def test_a_clip_that_never_bound_is_named_and_only_it():
    free = runs(dataset="d", train_acc=[90.0, 80.0, 70.0], test_acc=[40.0, 38.0, 35.0],
                train_loss=[0.1, 0.2, 0.3], test_loss=[2.0, 2.1, 2.2])
    clipped = free.assign(spectral_norm="5")
    clipped.loc[clipped.eps == 16, "train_acc"] = 60.0
    never = findings.never_clipped(clipped, free)
    assert [p.split(" was never")[0] for p in never] == ["**SN 5 at eps 4", "**SN 5 at eps 8"]
    assert "(90.0% / 40.0%, 0.100 / 2.000)" in never[0]


def test_the_unclipped_error_gap_decides_what_the_clip_can_turn():
    rising = findings.unclipped_error_gap(runs(spectral_norm="none", gap_acc=[1.0, 2.0, 3.0]))
    assert rising.startswith("Here the unclipped error gap rises: the clip has a rising trend to turn")
    falling = findings.unclipped_error_gap(runs(spectral_norm="none", gap_acc=[3.0, 2.0, 1.0]))
    assert "there is no rising trend for the clip to turn" in falling


def test_a_clip_whose_networks_do_not_fit_carries_its_regime_line():
    clipped = pd.concat([runs(spectral_norm="none", gap_loss=[3.0, 2.0, 1.0], gap_acc=[1.0, 2.0, 3.0], train_acc=100.0),
                         runs(spectral_norm="1", gap_loss=[3.0, 2.0, 1.0], gap_acc=[3.0, 2.0, 1.0], train_acc=[60.0, 50.0, 40.0])])
    free, sn1 = findings.clip_steps(clipped, paper.spectral_norm_results())
    assert free.startswith("*Step by step* — Loss gap, no clip") and "regime" not in free.lower()
    assert "this build falls." in sn1 and "**outside**" in sn1


def test_madry_baseline_sentence_says_below_or_at_and_what_follows():
    below = findings.against_madry_baseline(runs(pgd_acc=[10.0, 15.0, 20.0], robust_acc=[4.0, 5.0, 6.0]))
    assert "this build's best PGD accuracy is 20.0%, below it" in below
    assert "the rise of Fig. 12 is here, its level is not" in below
    above = findings.against_madry_baseline(runs(pgd_acc=[50.0, 60.0, 70.0], robust_acc=[40.0, 45.0, 50.0]))
    assert f"{plots.MADRY_PGD_ACC:g}%" in above and "at or above it" in above and "no defence" not in above


def test_robustness_over_few_images_is_qualified_when_a_network_does_not_fit():
    ref = paper.metrics("cifar10", "resnet56")
    fits = runs(pgd_acc=[10.0, 15.0, 20.0], test_acc=[40.0, 35.0, 30.0], n_test=1000, train_acc=100.0)
    assert "these are 400 images at eps 4, 350 images at eps 8 and 300 images at eps 16 (of 1000 test images)" in \
        findings.robustness_trends(fits, ref, "d")
    assert "do not fit" not in findings.robustness_trends(fits, ref, "d")
    underfit = fits.assign(train_acc=[100.0, 70.8, 28.6])
    assert ("The networks at eps 8 (70.8%) and eps 16 (28.6%) do not fit their training sets"
            in findings.robustness_trends(underfit, ref, "d"))


@pytest.fixture(scope="module")
def cpu():
    return Experiments.from_parameters("cpu", runs_dir=ROOT / load_profile("cpu").runs_dir)


def test_every_paragraph_reads_the_committed_cpu_store(cpu):
    """Each chapter's paragraphs, as the notebooks call them, on the committed `cpu` store: the
    numbers they print are the store's."""
    t, margins = cpu.metrics("ar_sweep"), cpu.summary("ar_sweep", "margins")
    spectrum, bound = cpu.summary("ar_sweep", "spectrum"), cpu.summary("ar_sweep", "bound")
    dataset = cpu.datasets("ar_sweep")[0]
    ours, ref = t[t.dataset == dataset], paper.metrics(paper.dataset(dataset), "resnet56")
    m = margins[margins.dataset == dataset]
    test, train = m[m.split == "test"], m[m.split == "train"]
    s = spectrum[spectrum.dataset == dataset]
    low, high = chapter.paper_strengths(s.eps)
    change = chapter.spread_changes(s, low, high)
    fell = change[change.group == "decreased"]

    trends = findings.ar_sweep_trends(ours, ref, dataset)
    assert trends.startswith(f"**{dataset}, {ours.arch.iloc[0]} (paper: cifar10, ResNet-56).**")
    assert chapter.values_at_eps(chapter.over_strengths(chapter.per_eps(ours, "gap_loss"))[0]) in trends
    assert len(findings.ar_sweep_steps(ours, dataset)) == len(findings.LOSS_GAP_CLAIMS)
    probs = cpu.examples("ar_sweep", "margins", "test_prob", dataset)
    assert "middle-valued probability" in findings.margin_trends(test, train, probs, dataset)
    assert "Skewness of the margins per AR strength" in findings.skewness_and_gaps(m, ours, dataset)
    assert len(findings.skewness_steps(ours, m, dataset)) == 4
    b2 = paper.spread_summary()
    spread = findings.spread_falls(s, b2[b2.dataset == "cifar10"], dataset)
    assert f"of the {fell.of.iloc[0]} convolutions**" in spread and "it fell in 41 of 55" in spread
    assert "convolutions, " in findings.spread_majority(change.assign(dataset=dataset), dataset)
    sigma = cpu.arrays("ar_sweep", "bound", "sigma_min", dataset)
    names = cpu.arrays("ar_sweep", "bound", "layer_name", dataset).value.iloc[0]
    assert findings.bound_vacuity(sigma, names, bound[bound.dataset == dataset], dataset).startswith(f"**{dataset}.**")
    assert findings.fig1_panels(s, test, ours)[0].startswith(f"What the panels show here: (a) the std falls from eps {low:g}")
    assert "PGD accuracy of the clean-correct test examples" in findings.robustness_trends(ours, ref, dataset)
    assert "best PGD accuracy is" in findings.against_madry_baseline(ours)
    lv = cpu.summary("ar_sweep", "loss_variation")
    table1 = paper.table("loss_variation").rename(columns={"eps_train": "eps"})
    assert "the mean loss variation" in findings.loss_variation_trends(lv[lv.dataset == dataset], table1[table1.dataset == "cifar10"], dataset)
    assert findings.paper_loss_variation(table1[table1.dataset == "cifar100"]).startswith("**The paper's CIFAR-100 (Table 1")
    assert findings.paper_only(paper.metrics("cifar100", "resnet110"), "The paper's CIFAR-100, ResNet-110", "Table 4") \
        .startswith("**The paper's CIFAR-100, ResNet-110** (Table 4; not trained by this build): the loss gap ")


def test_notebooks_call_their_paragraphs_instead_of_building_them():
    """A notebook reads: parameters, one setup line, calls, plots, prose. No `chapter.md` call in a
    notebook spans more than three lines: a computed paragraph is a function of `findings` (or
    `performance`), where it is named, documented and tested."""
    import ast
    import json

    long_calls = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "md" \
                        and node.end_lineno - node.lineno > 2:
                    long_calls.append(f"{path.name}: {ast.get_source_segment(''.join(cell['source']), node)[:60]}")
    assert not long_calls, long_calls
