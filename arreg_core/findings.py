"""What each chapter says about its runs: one function per computed paragraph, named for what it
reads, returning Markdown that the notebook shows with `chapter.md`.

    chapter.md(findings.ar_sweep_trends(ours, ref, dataset))

Every sentence is made of the trend words of `chapter` (`describe`, `step_by_step`, ...) and reads
the runs it is given, so that a re-run with other parameters keeps it true. The arguments are one
data set's rows of the tables the notebook already holds for its plots (`ex.metrics`, `ex.summary`,
`paper.metrics`); functions that return a list give one paragraph per item.
"""

from __future__ import annotations

import pandas as pd

from . import paper, plots, scorecard
from .chapter import (against_standard, bound_gap, describe, directions_per_clip, fits_every_strength, in_seeds,
                      move_together, next_to_paper, not_fitting, paper_strengths, per_eps, per_seed, regime_line,
                      seeds_note, share_between, skew_comparison, spread_changes, step_by_step, trend_direction,
                      values_at_eps, zero_layers)
from .evaluate import PAPER_PGD

# ----------------------------------------------------------------------------- shared

def means_only(tested_in: str = "the verdict section below") -> str:
    """The sentence that closes each paragraph of trends (this build's runs, the paper's numbers)."""
    return f" These directions are read from the means alone; {tested_in} tests them against the noise."


def paper_only(ref: pd.DataFrame, heading: str, source: str, column: str = "gap_loss", what: str = "the loss gap",
               fmt: str = "{:.2f}", unit: str = "") -> str:
    """A network only the paper trained (`ref`, a `paper.metrics` table): how `column` moves over its strengths."""
    return (f"**{heading}** ({source}; not trained by this build): "
            f"{describe(ref.reset_index(), column, what, fmt, unit, x='eps_train')}.")


def spread_falls_in(spectrum: pd.DataFrame, low: float, high: float) -> str:
    """Sec. 4.2.2 / Fig. 1a: "7 of 20 convolutions" (per seed) whose singular-value std falls from `low` to `high`."""
    fell = spread_changes(spectrum, low, high).query("group == 'decreased'")
    return f"{per_seed(fell, 'layers')} of {fell.of.iloc[0]} convolutions"


# ----------------------------------------------------------------------------- Fig. 1 (overview)


def fig1_panels(spectrum: pd.DataFrame, test_margins: pd.DataFrame, ours: pd.DataFrame) -> list[str]:
    """What Fig. 1's three panels show for this build: (a) the singular-value spread, (b) the test
    margins, (c) test and adversarial accuracy, then the standard-training reference and the regime."""
    low, high = paper_strengths(ours.eps)
    standard = against_standard(ours, "test_acc", "The test accuracy") + "." if 0 in set(ours.eps) else ""
    return [f"What the panels show here: (a) the std falls from eps {low:g} to {high:g} in "
            f"{spread_falls_in(spectrum, low, high)}; "
            f"(b) {describe(test_margins, 'std', 'the spread (std) of the test margins')}.",
            f"In this build, {describe(ours, 'test_acc', 'the test accuracy', '{:.1f}', '%')}, and "
            f"{describe(ours, 'robust_acc', 'the adversarial accuracy', '{:.1f}', '%')}.{means_only('the scorecard')} "
            "In panel (c) adversarial "
            f"accuracy is the share of *all* test images classified correctly both clean and under PGD ({PAPER_PGD['eps']:g}/255, the paper's "
            f"attack): the test accuracy times the PGD accuracy of the clean-correct images (Fig. 12's quantity) / 100.",
            standard + " " + regime_line(ours)]


# ----------------------------------------------------------------------------- Sec. 4.1


LOSS_GAP_CLAIMS = [("Loss gap", "gap_loss", -1, "{:.2f}", ""), ("Training loss", "train_loss", +1, "{:.2f}", ""),
                   ("Test error", "test_error", +1, "{:.1f}", "%"), ("Test loss", "test_loss", -1, "{:.2f}", "")]
"""Sec. 4.1's claims as AR grows: (what, column, the claimed sign, format, unit)."""


def ar_sweep_trends(ours: pd.DataFrame, ref: pd.DataFrame, dataset: str) -> str:
    """Sec. 4.1, Fig. 2-3: the loss gap, training loss, test error and test loss as AR grows, next to
    the paper's ResNet-56 at the same strengths."""
    return (f"**{dataset}, {ours.arch.iloc[0]} (paper: {paper.dataset(dataset)}, ResNet-56).** "
            f"As AR grows, {describe(ours, 'gap_loss', 'the loss gap')}; "
            f"{describe(ours, 'train_loss', 'the training loss')}; "
            f"{describe(ours, 'test_error', 'the test error', '{:.1f}', '%')}; and "
            f"{describe(ours, 'test_loss', 'the test loss')}. "
            + next_to_paper(ours, ref, "The paper's ResNet-56") + means_only())


def standard_training_reference(ours: pd.DataFrame) -> str:
    """The test accuracy of the AR runs against standard training (eps 0), where this build has it."""
    standard = against_standard(ours, "test_acc", "The test accuracy")
    return (standard + ". The paper's CIFAR tables have no standard-training row to set this against "
            "(its Tiny-ImageNet Table 5 has one).") if standard else ""


def paper_trends(ref: pd.DataFrame, dataset: str, arch: str, table: str, trained: bool) -> str:
    """Sec. 4.1 on a data set of the paper's other tables: its loss gap, test loss and test error."""
    r = ref.reset_index()
    return (f"**{dataset}** ({table}, {arch}): in the paper {describe(r, 'gap_loss', 'the loss gap', x='eps_train')}, "
            f"{describe(r, 'test_loss', 'the test loss', x='eps_train')} and "
            f"{describe(r.assign(test_error=100 - ref.test_acc.values), 'test_error', 'the test error', '{:.1f}', '%', x='eps_train')}."
            + ("" if trained else " This build has no run of it."))


def ar_sweep_steps(ours: pd.DataFrame, dataset: str) -> list[str]:
    """Sec. 4.1's claims (LOSS_GAP_CLAIMS) step by step over the strengths."""
    return [step_by_step(f"{what} ({dataset})", ours, column, sign, fmt, unit)
            for what, column, sign, fmt, unit in LOSS_GAP_CLAIMS]


# ----------------------------------------------------------------------------- Sec. 4.2.1 and B.3


def margin_trends(test: pd.DataFrame, train: pd.DataFrame, probs: pd.DataFrame, dataset: str) -> str:
    """Sec. 4.2.1, Fig. 4-5: the spread of the test and training margins, the mean training margin,
    the margins near zero and the middle-valued probabilities as AR grows."""
    middle = share_between(probs, 0.2, 0.8)
    return (f"**{dataset}.** As AR grows, {describe(test, 'std', 'the spread (std) of the test margins')}; "
            f"{describe(train, 'std', 'that of the training margins')}; "
            f"{describe(train, 'mean', 'the mean training margin')}; "
            f"{describe(test.assign(f=100 * test.frac_near_zero), 'f', 'the share of test margins within 1 of zero', '{:.1f}', '%')}; and "
            f"{describe(middle, 'share', 'the share of test examples with a middle-valued probability (0.2-0.8)', '{:.1f}', '%')}."
            + means_only())


def margins_and_loss_gap(test: pd.DataFrame, train: pd.DataFrame, ours: pd.DataFrame, dataset: str) -> list[str]:
    """Sec. 4.2.1's account: do the test-margin spread and the loss gap move together, and do the
    training margins fall as the account starts from?"""
    paragraphs = [f"In this build ({dataset}) {describe(test, 'std', 'the test-margin spread')}, "
                  f"while {describe(ours, 'gap_loss', 'the loss gap')}: "
                  + move_together(test, "std", ours, "gap_loss", "falls")]
    if trend_direction(train, "mean") != "falls":
        paragraphs.append(
            f"The account above starts from correct training predictions becoming less confident as AR grows. "
            f"This build's do not at every step: {describe(train, 'mean', 'the mean training margin')}, "
            f"and {describe(ours, 'train_loss', 'the training loss', '{:.2g}')}. Where the mean training margin "
            "grows from one strength to the next, the training predictions become more confident, not less, so the "
            "paper's account cannot be what moves this build's gap there (the verdict section below says which "
            "steps lie outside the noise).")
    return paragraphs


def skewness_and_gaps(margins: pd.DataFrame, ours: pd.DataFrame, dataset: str) -> str:
    """B.3, Fig. 4: the skewness of the training and test margins per strength, and the two gaps."""
    train, test = margins[margins.split == "train"], margins[margins.split == "test"]
    skew_train, skew_test = per_eps(train, "skewness"), per_eps(test, "skewness")
    per = ", ".join(f"eps {e:g}: {a:+.2f} (training) vs {b:+.2f} (test)"
                    for e, a, b in zip(skew_train.index, skew_train, skew_test))
    return (f"**{dataset}.** Skewness of the margins per AR strength{seeds_note(train)} — {per}. "
            f"{describe(ours, 'gap_acc', 'The error gap', '{:.1f}', ' points')}, and "
            f"{describe(ours, 'gap_loss', 'the loss gap')}." + means_only())


def skewness_steps(ours: pd.DataFrame, margins: pd.DataFrame, dataset: str) -> list[str]:
    """B.3's claims step by step: the error gap rises, the loss gap falls, the training margins skew
    towards zero; and whether the training margins are more skewed than the test margins."""
    return [step_by_step(f"Error gap ({dataset}; the paper's CIFAR-10 trend)", ours, "gap_acc", +1, "{:.1f}", " points"),
            step_by_step(f"Loss gap ({dataset})", ours, "gap_loss", -1),
            step_by_step(f"Skewness of the training margins ({dataset}; B.3's 'skews towards zero', read as growing with AR)",
                         margins[margins.split == "train"], "skewness", +1),
            f"**Training margins more skewed than test margins** — the paper: yes, on CIFAR-10. This build "
            f"(|skewness|, whichever the tail): {skew_comparison(margins)}."]


def pile_up(train: pd.DataFrame) -> str:
    """B.3's mechanism: are the training examples piled just beyond the decision boundary (margins
    within 1 of zero, the median training margin)?"""
    near = per_eps(train.assign(near=100 * train.frac_near_zero), "near")
    median = per_eps(train, "median")
    return (f"**B.3's mechanism** — training examples piled just beyond the decision boundary. This build: "
            f"{values_at_eps(near, '{:.1f}', '%')} of the training margins lie within 1 of zero, the median "
            f"training margin is {values_at_eps(median, '{:.1f}')}. "
            + ("At every strength most training examples sit further than 1 from the boundary (the median is above "
               "1): the error gap rises here without the pile-up the paper describes, and a trend reproduced is not a "
               "mechanism reproduced." if (median > 1).all() else "Compare with Fig. 4c."))


# ----------------------------------------------------------------------------- Sec. 4.2.2


def spread_falls(spectrum: pd.DataFrame, published: pd.DataFrame, dataset: str) -> str:
    """Sec. 4.2.2, Fig. 5c and Table B.2: in how many convolutions (and the linear layer) the std of
    the singular values falls between the paper's strengths, and the sums of the falls and rises,
    next to the paper's (`published`: this data set's rows of `paper.spread_summary()`)."""
    low, high = paper_strengths(spectrum.eps)
    change = spread_changes(spectrum, low, high)
    fell, rose = change[change.group == "decreased"], change[change.group == "increased"]
    linear = spread_changes(spectrum, low, high, kind="linear").query("group == 'decreased'").set_index("seed").layers > 0
    published = published.set_index("group")
    paper_total = published.layers.sum()
    return (f"**{dataset}.** From AR {low:g} to AR {high:g} the std of singular values falls in **{per_seed(fell, 'layers')} of the "
            f"{fell.of.iloc[0]} convolutions** ({(fell.layers / fell.of).mean():.0%}{' on average' if len(fell) > 1 else ''}; the linear layer: "
            f"{in_seeds(linear, 'falls', 'does not fall')}); "
            f"in the paper's ResNet-56 on {paper.dataset(dataset)} it fell in {published.layers['decreased']} of {paper_total} "
            f"({published.layers['decreased'] / paper_total:.0%}; counts from B.2's sums divided by its means). The falls add up to "
            f"{per_seed(fell, 'sum', '{:.3f}')}, the rises to {per_seed(rose, 'sum', '{:.3f}')} (paper: "
            f"{published['sum']['decreased']:.4f} and {published['sum']['increased']:.4f}).")


def spread_majority(changes: pd.DataFrame, dataset: str) -> str:
    """Sec. 4.2.2 per seed: does the singular-value spread fall in a majority of the convolutions?
    (`changes`: this data set's `chapter.spread_changes`)."""
    fell = changes[changes.group == "decreased"].set_index("seed")
    majority = fell.layers > fell.of / 2
    return (f"*Per seed* — singular-value spread ({dataset}; the paper: it falls from AR 4 to 16 in most layers, 41 of 55 "
            f"convolutions on CIFAR-10): it falls in {per_seed(fell.reset_index(), 'layers')} of {fell.of.iloc[0]} "
            "convolutions, " + in_seeds(majority, "a majority", "not a majority") + ".")


def bound_vacuity(sigma: pd.DataFrame, names, bound: pd.DataFrame, dataset: str) -> str:
    """Theorem 3.1's bound (Sec. 4.2.2): is any convolution's smallest singular value zero, making the
    bound vacuous, and how far the bound lies from the measured margins (`chapter.bound_gap`)."""
    vacuous = zero_layers(sigma, names)
    seeds = sorted(sigma.seed.unique())
    computed = f"The bound is computed for seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}. "
    return f"**{dataset}.** " + computed + (
        "No convolution has a zero smallest singular value: the product, and so the bound, is positive at every strength."
        if not vacuous else
        "The smallest singular value is exactly 0 in " + "; in ".join(vacuous) + ". Such a convolution maps some input "
        "pattern to zero (a rank-deficient operator). The product of the smallest "
        "singular values is then 0, its logarithm minus infinity (`-inf`), and the lower bound on the output "
        "margin u_min (eq. 5; the table's 'bound on smallest margin') is 0: the bound is vacuous for these "
        "networks. The '(non-zero ...)' columns repeat the computation with "
        "each layer's smallest *non-zero* singular value, to show the size of the other terms.") + " " + bound_gap(bound)


# ----------------------------------------------------------------------------- B.4


def deeper_trends(ours: pd.DataFrame, ref: pd.DataFrame, dataset: str) -> str:
    """B.4: the deeper network's loss gap, training loss and test error, and the paper's ResNet-110."""
    return (f"**{dataset}, {ours.arch.iloc[0]}.** {describe(ours, 'gap_loss', 'The loss gap')}; "
            f"{describe(ours, 'train_loss', 'the training loss')}; "
            f"{describe(ours, 'test_error', 'the test error', '{:.1f}', '%')}. "
            f"In the paper (ResNet-110) {describe(ref.reset_index(), 'gap_loss', 'the loss gap', x='eps_train')}."
            + means_only())


CLIP_ORDER = ["none", "5", "3", "1"]
"""B.4's spectral-norm clips from the largest capacity to the smallest, as in Fig. 6."""


def clip_directions(table6: pd.DataFrame, clipped: pd.DataFrame) -> list[str]:
    """B.4, Fig. 6: the error gap's direction over the strengths per clip, the paper's (Table 6) and
    this build's, and the paper's change with the scorecard's interval."""
    return [f"Per clip, from the largest capacity to the smallest, the error gap over AR strengths — **paper (Table 6)**: "
            f"{directions_per_clip(table6, 'gap_acc', CLIP_ORDER, 'eps_train')}. **This build**: "
            f"{directions_per_clip(clipped, 'gap_acc', CLIP_ORDER)}.",
            "The paper's change of the error gap from eps 4 to eps 16 (points), with the scorecard's 95% interval "
            f"for one network per strength: {scorecard.paper_change_per_clip('gap_acc')}. A rise inside the noise is the "
            "paper's direction, not its evidence: the scorecard counts it inconclusive."]


def never_clipped(clipped: pd.DataFrame, free: pd.DataFrame) -> list[str]:
    """B.4: the clipped runs whose accuracies and losses equal the unclipped run's exactly, so the clip
    never bound (no layer's spectral norm exceeded it)."""
    keys, metrics = ["dataset", "eps", "seed"], ["train_acc", "test_acc", "train_loss", "test_loss"]
    same = clipped.merge(free[keys + metrics], on=keys, suffixes=("", "_free"))
    same = same[(same[metrics].to_numpy() == same[[m + "_free" for m in metrics]].to_numpy()).all(axis=1)]
    return [f"**SN {r.spectral_norm} at eps {r.eps:g} was never clipped**: its training and test accuracy and loss equal "
            f"the unclipped run's exactly ({r.train_acc:.1f}% / {r.test_acc:.1f}%, {r.train_loss:.3f} / {r.test_loss:.3f}), "
            f"so no layer's spectral norm ever exceeded {r.spectral_norm} when the clip was applied. Its row repeats the "
            f"unclipped network." for _, r in same.iterrows()]


def unclipped_error_gap(clipped: pd.DataFrame) -> str:
    """B.4: is there a rising error gap without a clip, for the clip to turn?"""
    free = trend_direction(clipped[clipped.spectral_norm == "none"], "gap_acc")
    return f"Here the unclipped error gap {free}: " + (
        "there is no rising trend for the clip to turn; only the "
        "loss-gap half of the claim is tested (the scorecard's rows \"With the spectral norm clipped to ... the loss gap still shrinks\")."
        if free != "rises" else
        "the clip has a rising trend to turn, as the paper "
        "reports. The paper's own unclipped rise lies inside its sampling noise (above), so on the paper's numbers the "
        "turn is *not testable* by the scorecard's rule; on this build's the rule can test it, and the verdict below says "
        "whether the networks it rests on are in the regime the claim needs.")


def clip_steps(clipped: pd.DataFrame, table6: pd.DataFrame) -> list[str]:
    """B.4 per clip: the loss gap step by step, the error gap's direction here and in Table 6, and the
    regime of a clip whose networks do not fit."""
    paragraphs = []
    for c, g in clipped.groupby("spectral_norm", sort=False):
        name = "no clip" if c == "none" else f"SN {c}"
        paper_dir = trend_direction(table6[table6.spectral_norm == c], "gap_acc", "eps_train")
        paragraphs.append(step_by_step(f"Loss gap, {name}", g, "gap_loss", -1) + f" Error gap: the paper's Table 6 {paper_dir}; "
                          f"this build {trend_direction(g, 'gap_acc')}."
                          + ("" if fits_every_strength(g) else " " + regime_line(g, spectral_norm=c)))
    return paragraphs


# ----------------------------------------------------------------------------- B.5


def loss_variation_trends(ours: pd.DataFrame, ref: pd.DataFrame, dataset: str) -> str:
    """B.5, Fig. 8: the mean loss variation per attack strength as AR grows, next to Table 1's."""
    return f"**{dataset}.** " + "; ".join(
        f"at attack {a:g}/255 {describe(g, 'mean', 'the mean loss variation', '{:.3f}')} "
        f"(paper: {trend_direction(ref[ref.eps_attack == a], 'mean')}, "
        f"{per_eps(ref[ref.eps_attack == a], 'mean').iloc[0]:.4f} at eps 4)"
        for a, g in ours.groupby("eps_attack")) + "." + means_only(
            f"the verdict section below, for the {scorecard.LOSS_VARIATION_ATTACK:g}/255 attack,")


def paper_loss_variation(ref: pd.DataFrame) -> str:
    """B.5 on the paper's CIFAR-100 (Table 1), which this build does not train."""
    return "**The paper's CIFAR-100 (Table 1; not trained by this build):** " + "; ".join(
        f"at attack {a:g}/255 the mean {trend_direction(g, 'mean')}" for a, g in ref.groupby("eps_attack")) + "."


# ----------------------------------------------------------------------------- B.6


def fgsm_trends(ours: pd.DataFrame, ref: pd.DataFrame, test_margins: pd.DataFrame, spectrum: pd.DataFrame,
                dataset: str) -> str:
    """B.6, Fig. 9-11: FGSM training's loss gap, training loss, test-margin spread and singular-value
    spread, and the paper's loss gap (Table 2)."""
    low, high = paper_strengths(ours.eps)
    return (f"**{dataset}, FGSM.** {describe(ours, 'gap_loss', 'The loss gap')}; "
            f"{describe(ours, 'train_loss', 'the training loss')}; "
            f"{describe(test_margins, 'std', 'the spread of the test margins')}; the singular-value std falls from eps "
            f"{low:g} to {high:g} in {spread_falls_in(spectrum, low, high)}. "
            f"In the paper (Table 2) {describe(ref.reset_index(), 'gap_loss', 'the loss gap', x='eps_train')}."
            + means_only())


def fgsm_under_pgd(ours: pd.DataFrame, pgd_trained: pd.DataFrame) -> str:
    """B.6, Fig. 12's quantity: the PGD accuracy of the FGSM-trained networks and of the PGD-trained
    ones at the same strengths."""
    return (f"Against the PGD evaluation attack (Fig. 12's quantity), {describe(ours, 'pgd_acc', 'the PGD accuracy of the FGSM-trained networks', '{:.1f}', '%')}; "
            f"{describe(pgd_trained[pgd_trained.eps.isin(ours.eps)], 'pgd_acc', 'that of the PGD-trained ones', '{:.1f}', '%')}.")


# ----------------------------------------------------------------------------- D.2


def robustness_trends(ours: pd.DataFrame, ref: pd.DataFrame, dataset: str) -> str:
    """D.2, Fig. 12: the PGD accuracy of the clean-correct test images as AR grows, over how many
    images, and the paper's; a network that does not fit is said to make it meaningless."""
    correct = per_eps(ours.assign(n=ours.test_acc * ours.n_test / 100), "n")
    return (f"**{dataset}.** {describe(ours, 'pgd_acc', 'The PGD accuracy of the clean-correct test examples', '{:.1f}', '%')}; "
            f"these are {values_at_eps(correct, '{:.0f}', ' images')} "
            f"(of {ours.n_test.iloc[0]} test images). In the paper {describe(ref.reset_index(), 'pgd_acc', 'it', '{:.1f}', '%', x='eps_train')}."
            + ("" if fits_every_strength(ours) else f" The networks at {not_fitting(ours)} do not fit their training "
               "sets (mean clean training accuracy): their PGD accuracy is over the fewer, easier test images they "
               "classify correctly, and is not comparable with that of a network that fits.") + means_only())


def against_madry_baseline(ours: pd.DataFrame) -> str:
    """D.2 on CIFAR-10: this build's best PGD accuracy against the paper's baseline (App. A), and
    whether the networks are a defence at all."""
    best = per_eps(ours, "pgd_acc").max()
    below = best < plots.MADRY_PGD_ACC
    return (f"Against the paper's baseline (the dotted line, {plots.MADRY_PGD_ACC:g}%, App. A): this build's best PGD "
            f"accuracy is {best:.1f}%, " + ("below it" if below else "at or above it") + ". Counted over "
            f"*all* test images (correct both clean and under attack), {describe(ours, 'robust_acc', 'the robust accuracy', '{:.1f}', '%')}."
            + (" At this scale the networks are no defence worth the name: the rise of Fig. 12 "
               + ("is here, its level is not" if trend_direction(ours, "pgd_acc") == "rises" else "and its level are not here")
               + ", and D.2's point that the regularization studied is that of a *relevant* adversarial training "
               "does not carry over." if below else ""))
