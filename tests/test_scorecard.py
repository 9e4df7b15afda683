import math

import pandas as pd
import pytest

from arreg_core.scorecard import (NOT_MEASURABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, paper_trend, scorecard, trend,
                                  verdict)


def test_trend_is_spearman():
    assert trend([4, 8, 16], [1, 2, 3]) == pytest.approx(1.0)
    assert trend([4, 8, 16], [3, 2, 1]) == pytest.approx(-1.0)
    assert trend([4, 8, 16], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(trend([4, 8], [1, 2])) and math.isnan(trend([4, 8, 16], [1, 1, 1]))


def test_verdicts():
    assert verdict(-1.0, -1) == REPRODUCED and verdict(0.5, +1) == NOT_REPRODUCED
    assert verdict(1.0, -1) == NOT_REPRODUCED and verdict(math.nan, +1) == NOT_RUN


def test_the_papers_own_numbers_support_its_claims():
    assert paper_trend("gap_loss") == pytest.approx(-1) and paper_trend("train_loss") == pytest.approx(1)
    assert paper_trend("test_error") == pytest.approx(1)
    assert paper_trend("gap_loss", method="fgsm") == pytest.approx(-1)
    card = scorecard({})
    assert (card["verdict"] == NOT_RUN).all()
    published = card[card["paper's own numbers"] != "no published data"]
    assert len(published) == 6


def test_scorecard_on_hand_made_tables():
    sweep = pd.DataFrame({"eps": [4, 8, 16], "gap_loss": [0.5, 0.3, 0.1], "train_loss": [0.1, 0.3, 0.6],
                          "test_acc": [80, 70, 60], "test_loss": [0.6, 0.7, 0.8], "gap_acc": [5, 6, 7]})
    clipped = sweep.assign(gap_acc=[7, 6, 5], spectral_norm=1.0)
    inputs = {"ar_sweep": sweep, "fgsm": sweep.assign(gap_loss=[0.1, 0.2, 0.3]),
              "spectral_norm": pd.concat([clipped, sweep.assign(spectral_norm=5.0)]),
              "margins": pd.DataFrame({"eps": [4, 8, 16], "test_std": [3.0, 2.0, 1.0]}),
              "spectra": pd.DataFrame({"std_falls": [True, True, False]}),
              "loss_variation": pd.DataFrame({"eps": [4, 8, 16], "mean": [0.2, 0.1, 0.05]})}
    card = scorecard(inputs).set_index("paper figure")
    assert card.loc["Fig. 3a", "verdict"] == REPRODUCED
    assert card.loc["Fig. 9, Table 2", "verdict"] == NOT_REPRODUCED  # FGSM gap grew in this made-up table
    assert card.loc["Fig. 6, Table 6", "this build"] == pytest.approx(2.0)
    assert card.loc["Fig. 5c/d, B.2", "this build"] == pytest.approx(1 / 3)
    assert card.loc["Fig. 5c/d, B.2", "verdict"] == NOT_REPRODUCED
    assert (card.loc[["Fig. 4", "Fig. 8, Table 1"], "verdict"] == REPRODUCED).all()


def test_runs_with_a_constant_series_are_not_measurable_rather_than_not_run():
    sweep = pd.DataFrame({"eps": [4, 8, 16], "gap_loss": [0.5, 0.3, 0.1], "train_loss": [0.1, 0.3, 0.6],
                          "test_acc": [10.0, 10.0, 10.0], "test_loss": [2.3, 2.3, 2.3], "gap_acc": [0, 0, 0]})
    card = scorecard({"ar_sweep": sweep}).set_index("statistic")
    assert card.loc["rho(eps, test error)", "verdict"] == NOT_MEASURABLE
    assert card.loc["rho(eps, loss gap), FGSM", "verdict"] == NOT_RUN
