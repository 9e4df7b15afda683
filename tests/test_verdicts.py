"""The verdict rule, its bootstrap and the regime check (arreg_core.verdicts)."""
import math

import numpy as np
import pytest

from arreg_core.verdicts import (CONTRADICTED, INCONCLUSIVE, NON_MONOTONE, NOT_RUN, NOT_TESTABLE, OUTSIDE, REPRODUCED,
                                 RULE, Network, NetworkRegime, endpoint_change, gate, holm, layer_majority_estimate, majority_estimate,
                                 regime_line,
                                 regime_marks, reverses, summary_network, trend_estimate, verdict)


def correct(accuracy: float, n: int, seed: int) -> np.ndarray:
    """n examples, exactly round(accuracy * n) of them correct, in random order."""
    out = np.zeros(n)
    out[: round(accuracy * n)] = 1
    return np.random.default_rng(seed).permutation(out)


def series(accuracies, n=300, seed=0) -> list[Network]:
    """One network per strength (4, 8, 16) with the given test accuracies (fractions)."""
    return [Network(eps, 0, examples={"test:correct": correct(a, n, seed + i)})
            for i, (eps, a) in enumerate(zip((4, 8, 16), accuracies))]


def test_the_change_is_strongest_minus_weakest_and_a_bump_between_is_no_trend():
    assert endpoint_change([4, 16], [1.0, 4.0]) == pytest.approx(3.0)
    assert endpoint_change([4, 8, 16], [1.0, 2.0, 4.0]) == pytest.approx(3.0)
    assert endpoint_change([16, 4, 8], [4.0, 1.0, 2.0]) == pytest.approx(3.0)  # order of the strengths
    assert endpoint_change([4, 8, 16], [[0, 0, 0], [2, 2, 2]]) == pytest.approx([0, 0])
    # the loss gap of the cpu store, 4.34 / 6.89 / 4.10: a least-squares line read it as a fall of 0.8
    assert endpoint_change([4, 8, 16], [4.34, 6.89, 4.10]) == pytest.approx(-0.24)


def test_the_rule():
    assert verdict(0.1, 0.5, +1) == REPRODUCED and verdict(0.1, 0.5, -1) == CONTRADICTED
    assert verdict(-0.5, -0.1, -1) == REPRODUCED and verdict(-0.5, -0.1, +1) == CONTRADICTED
    assert verdict(-0.1, 0.1, +1) == INCONCLUSIVE and verdict(math.nan, math.nan, +1) == NOT_RUN
    assert verdict(0.55, 0.9, +1, null=0.5) == REPRODUCED and verdict(0.4, 0.9, +1, null=0.5) == INCONCLUSIVE
    for word in ("reproduced", "contradicted", "inconclusive", "non-monotone", "outside the regime", "not run here",
                 "95%", "generalisation", "robustness", "assumes a per-example spread"):
        assert word in RULE
    # a reversal beyond the noise decides before the endpoints; a step inside the noise does not
    assert verdict(0.1, 0.5, +1, steps=((0.2, 0.6), (-0.4, -0.1))) == NON_MONOTONE
    assert verdict(0.1, 0.5, +1, steps=((0.2, 0.6), (-0.4, 0.1))) == REPRODUCED
    assert not reverses([(0.2, 0.6), (0.1, 0.3)]) and reverses([(-0.3, -0.1), (0.1, 0.3)])


def test_a_series_that_rises_then_falls_beyond_the_noise_is_non_monotone():
    """Test accuracy 50%, 90%, 50% on 300 examples: each step is 40 points against a noise of about
    5, so the series reverses; its endpoints agree (change 0), which alone would be inconclusive."""
    est = trend_estimate(series([0.50, 0.90, 0.50]), "test_acc", n_boot=500)
    assert est.value == pytest.approx(0) and est.low < 0 < est.high
    assert est.steps[0][0] > 0 and est.steps[1][1] < 0 and est.step_values == pytest.approx((40, -40))
    assert est.verdict(+1) == NON_MONOTONE and est.verdict(-1) == NON_MONOTONE
    assert est.reversal.startswith("+40 [") and " then -40 [" in est.reversal
    # the same shape within the noise (60, 62, 60%) is no reversal
    flat = trend_estimate(series([0.60, 0.62, 0.60]), "test_acc", n_boot=500)
    assert flat.verdict(+1) == INCONCLUSIVE and flat.reversal == ""
    # rising, then rising less: a monotone trend, reproduced
    assert trend_estimate(series([0.50, 0.80, 0.90]), "test_acc", n_boot=500).verdict(+1) == REPRODUCED


def test_two_noisy_series_whose_intervals_overlap_are_inconclusive():
    """Test error 40, 41, 42% on 300 examples each: each accuracy's own interval is +-5.5 points,
    so a 2-point rise is inside the noise."""
    nets = series([0.60, 0.59, 0.58])
    est = trend_estimate(nets, "test_error", n_boot=500)
    assert est.low < 0 < est.high
    assert est.verdict(+1) == INCONCLUSIVE and est.verdict(-1) == INCONCLUSIVE


def test_clear_series_are_reproduced_or_contradicted():
    nets = series([0.90, 0.70, 0.50])
    est = trend_estimate(nets, "test_error", n_boot=500)
    assert est.value == pytest.approx(100 * endpoint_change([4, 8, 16], [0.1, 0.3, 0.5]))
    assert 0 < est.low < est.value < est.high
    assert est.verdict(+1) == REPRODUCED and est.verdict(-1) == CONTRADICTED


def test_missing_data_is_not_run_here():
    assert trend_estimate([], "test_error").verdict(+1) == NOT_RUN
    assert trend_estimate(series([0.9])[:1], "test_error").verdict(+1) == NOT_RUN  # one strength: no trend
    assert majority_estimate(0, 0).verdict(+1) == NOT_RUN


def test_bootstrap_is_deterministic_given_its_seed():
    nets = series([0.60, 0.55, 0.58])
    a, b = trend_estimate(nets, "test_error", seed=3, n_boot=300), trend_estimate(nets, "test_error", seed=3, n_boot=300)
    assert (a.low, a.high) == (b.low, b.high)
    c = trend_estimate(nets, "test_error", seed=4, n_boot=300)
    assert (a.low, a.high) != (c.low, c.high) and a.value == c.value


def test_examples_are_resampled_together_across_networks():
    """The same test examples in every network: a paired bootstrap sees no noise in a difference
    between two networks that agree on every example except a fixed few."""
    base = correct(0.6, 400, 0)
    other = base.copy()
    other[np.flatnonzero(base == 1)[:40]] = 0  # 10 points lower, on the same examples
    nets = [Network(4, examples={"test:correct": base}), Network(16, examples={"test:correct": other})]
    est = trend_estimate(nets, "test_acc", n_boot=300)
    assert est.value == pytest.approx(-10) and est.high < -5  # unpaired, the interval would reach about -3


def test_seeds_are_the_outer_level():
    """Three seeds whose accuracies scatter by 20 points: their spread dominates the interval,
    which then contains 0 although every network has many examples."""
    nets = []
    for seed, offset in enumerate((-0.2, 0.0, 0.2)):
        for i, eps in enumerate((4, 16)):
            nets.append(Network(eps, seed, examples={"test:correct": correct(0.6 + offset - 0.05 * i, 2000, seed)}))
    est = trend_estimate(nets, "test_acc", n_boot=500)
    assert est.n_seeds == 3 and est.value == pytest.approx(-5, abs=0.1)
    assert est.verdict(-1) == INCONCLUSIVE
    one_seed = trend_estimate([n for n in nets if n.seed == 1], "test_acc", n_boot=500)
    assert one_seed.n_seeds == 1 and one_seed.verdict(-1) == REPRODUCED


def test_summary_networks_carry_binomial_noise_and_exact_losses():
    """The paper's style of network: accuracies with binomial noise over the set sizes, mean
    losses with none (flagged as taken exactly)."""
    nets = [summary_network(4, {"train_acc": 99.5, "test_acc": 88.9, "test_loss": 0.68, "train_loss": 0.01}, 50_000, 10_000),
            summary_network(16, {"train_acc": 96.0, "test_acc": 84.9, "test_loss": 0.65, "train_loss": 0.1}, 50_000, 10_000)]
    error = trend_estimate(nets, "test_error", n_boot=500)
    assert error.value == pytest.approx(4.0) and error.verdict(+1) == REPRODUCED
    assert 0.9 < (error.high - error.low) / 2 < 1.3  # 1.96 * sqrt(2) * 0.33 points
    loss = trend_estimate(nets, "gap_loss", n_boot=50)
    assert loss.low == loss.high == loss.value == pytest.approx(-0.12)
    assert set(loss.point_only) == {"test:loss", "train:loss"} and "no spread" in loss.interval


def test_margin_std_from_resampled_moments():
    m = np.random.default_rng(0).normal(0, 2.0, 5000)
    nets = [Network(4, examples={"test:margin": m, "test:margin_sq": m ** 2}),
            Network(16, examples={"test:margin": m / 2, "test:margin_sq": (m / 2) ** 2})]
    est = trend_estimate(nets, "margin_std", n_boot=200)
    assert est.value == pytest.approx(-m.std() / 2) and est.verdict(-1) == REPRODUCED


def test_majority_of_layers_with_its_binomial_interval():
    """B.2: 41 of 55 layers fell. A majority with its interval, not a 0.8 threshold (which the
    paper's own 74.5% would fail)."""
    paper = majority_estimate(41, 55)
    assert paper.value == pytest.approx(41 / 55) and 0.5 < paper.low < paper.value < paper.high < 0.9
    assert paper.verdict(+1) == REPRODUCED
    assert paper.interval == f"75% [{paper.low:.0%}, {paper.high:.0%}]"  # a share of layers, not a signed change
    assert majority_estimate(5, 8).verdict(+1) == INCONCLUSIVE  # 5 of 8 is no evidence of a majority
    assert majority_estimate(1, 20).verdict(+1) == CONTRADICTED


def test_holm_steps_down_until_the_first_p_value_above_its_threshold():
    # thresholds 0.05/4, 0.05/3, 0.05/2, 0.05/1 for the sorted p-values
    assert holm([0.01, 0.04, 0.012, 0.3], 0.05).tolist() == [True, False, True, False]
    assert holm([0.02, 0.001, 0.3, 0.018], 0.05).tolist() == [False, True, False, False]  # 0.018 > 0.05/3
    assert holm([float("nan"), 0.001], 0.05).tolist() == [False, True]


def test_layers_of_several_seeds_count_once_each():
    """Three seeds of a 7-layer network: 19 of 21 seed-layer pairs follow the claim, but the units
    are the 7 layers, their seeds repeated measurements: one layer goes either way (no evidence),
    so the interval cannot exclude that it goes against the claim."""
    rng = np.random.default_rng(0)
    clear = 0.5 + 0.02 * rng.standard_normal((3, 5))
    follows = np.column_stack([clear, [0.2, -0.1, 0.1], [0.1, -0.15, 0.03]])
    est = layer_majority_estimate(follows)
    assert est.value == pytest.approx(6 / 7) and est.n_seeds == 3
    assert est.low == pytest.approx(5 / 7) and est.high == 1.0 and est.verdict(+1) == REPRODUCED
    assert int((follows > 0).sum()) == 19  # the pairs pooling would count as 21 layers
    against = -np.abs(clear)  # five layers go against the claim beyond the noise, two are unclear
    est = layer_majority_estimate(np.column_stack([against, follows[:, 5:]]))
    assert est.high == pytest.approx(2 / 7) and est.verdict(+1) == CONTRADICTED
    weak = layer_majority_estimate(np.array([[0.1, 0.2, -0.1], [-0.1, 0.3, 0.1]]))  # two seeds, nothing beyond the noise
    assert (weak.low, weak.high) == (0.0, 1.0) and weak.verdict(+1) == INCONCLUSIVE
    one = layer_majority_estimate(np.array([[0.1, 0.2, -0.1, 0.3]]))  # one seed: the layers of one network
    assert (one.value, one.low, one.high) == (majority_estimate(3, 4).value, majority_estimate(3, 4).low,
                                              majority_estimate(3, 4).high)


def test_the_regime_gate_on_an_out_of_regime_series():
    """Networks that memorise their training set (100%) but reach 35% test accuracy where the
    paper's reach 88%: a claim that needs generalisation is outside the regime whatever the rule
    says; a claim that needs only fit keeps the rule's verdict."""
    memorising = [NetworkRegime(f"eps {e}", 100.0, 35.0, 10.0, paper_test, 66.0)
                  for e, paper_test in ((4, 88.9), (16, 84.9))]
    assert gate(REPRODUCED, memorising, ("fit", "generalisation")) == OUTSIDE
    assert gate(CONTRADICTED, memorising, ("generalisation",)) == OUTSIDE
    assert gate(NON_MONOTONE, memorising, ("robustness",)) == OUTSIDE
    assert gate(REPRODUCED, memorising, ("fit",)) == REPRODUCED
    assert gate(NOT_RUN, memorising, ("generalisation",)) == NOT_RUN
    assert gate(NOT_TESTABLE, memorising, ("generalisation",)) == NOT_TESTABLE
    line = regime_line(memorising, ("fit", "generalisation", "robustness"))
    assert line == "fit yes (train acc 100%); generalisation no (test acc 35% vs paper 85-89%); robustness no (PGD acc 10% vs paper 66%)"
    assert regime_marks(memorising, ("fit", "generalisation")) == "fit ✓, generalisation ✗"
    # a network that does not fit, named; one within the tolerance of the paper generalises
    underfit = [NetworkRegime("eps 4", 99.0, 80.0, 60.0, 88.9, 66.0), NetworkRegime("eps 16", 35.4, 79.0, 60.0, 84.9, 72.2)]
    assert gate(REPRODUCED, underfit, ("fit",)) == OUTSIDE
    assert "fit no (train acc 35% < 80% at eps 16)" in regime_line(underfit, ("fit",))
    assert underfit[0].part("generalisation") and underfit[1].part("generalisation")
    assert underfit[1].part("robustness") is False  # 60% against 72.2%: more than 10 points below
    # a part with no number to compare (the paper's FGSM table has no training accuracy) does not gate
    unknown = [NetworkRegime("eps 4", math.nan, 85.0, math.nan, 85.0, math.nan)]
    assert unknown[0].part("fit") is None and gate(REPRODUCED, unknown, ("fit", "robustness")) == REPRODUCED
    assert regime_marks(unknown, ("fit",)) == "fit ?" and "fit unknown" in regime_line(unknown, ("fit",))


def test_an_assumed_loss_spread_gives_the_papers_losses_an_interval():
    metrics = [{"test_loss": 0.68, "train_loss": 0.01}, {"test_loss": 0.647, "train_loss": 0.1}]
    exact = [summary_network(e, m, 50_000, 10_000) for e, m in zip((4, 16), metrics)]
    assert trend_estimate(exact, "test_loss", n_boot=200).exact
    for spread, expected in ((0.5, REPRODUCED), (2.0, INCONCLUSIVE)):  # -0.033: +-0.025 at 0.5 nats, +-0.055 at 2
        nets = [summary_network(e, m, 50_000, 10_000, loss_spread=spread) for e, m in zip((4, 16), metrics)]
        est = trend_estimate(nets, "test_loss", n_boot=2000)
        assert not est.exact and est.low < est.value < est.high
        assert (est.high - est.low) / 2 == pytest.approx(1.96 * spread * math.sqrt(2 / 10_000), rel=0.15)
        assert est.verdict(-1) == expected, spread


def test_a_decided_change_says_which_steps_carry_it():
    """The cpu store's training loss: a rise from eps 4 to 16 beyond the noise that comes from the
    step 8 -> 16 alone, the step 4 -> 8 inside the noise; a change every step carries says nothing."""
    from arreg_core.verdicts import Estimate
    flat_then_up = Estimate(0.081, 0.057, 0.11, steps=((-9e-05, 4e-05), (0.057, 0.11)), step_values=(-1.5e-05, 0.081),
                            strengths=(4.0, 8.0, 16.0))
    assert flat_then_up.verdict(+1) == REPRODUCED
    assert flat_then_up.carried_by(+1) == ("only the step from eps 8 to 16 rises beyond the noise; the step "
                                           "from eps 4 to 8 is inside the noise (-1.5e-05 [-9e-05, +4e-05])")
    assert "is against it" in Estimate(1.0, 0.5, 1.5, steps=((-0.6, -0.1), (1.1, 1.6)), step_values=(-0.3, 1.3),
                                       strengths=(4.0, 8.0, 16.0)).carried_by(+1)
    every_step = trend_estimate(series([0.9, 0.6, 0.3], n=2000), "test_acc", n_boot=300)
    assert every_step.verdict(-1) == REPRODUCED and every_step.strengths == (4.0, 8.0, 16.0)
    assert every_step.carried_by(-1) == ""
    assert trend_estimate(series([0.9, 0.3], n=2000)[:2], "test_acc", n_boot=100).carried_by(-1) == ""  # one step
