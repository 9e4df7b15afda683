"""The words of the chapters' computed paragraphs, and the exercise switch."""
import pandas as pd
import pytest

from arreg_core import chapter


def series(*values):
    return pd.Series(values, index=[4, 8, 16][:len(values)])


@pytest.mark.parametrize("values,words", [((3, 2, 1), "falls"), ((1, 2, 3), "rises"), ((1, 1, 1), "stays flat"),
                                          ((1, 3, 2), "rises, then falls"), ((3, 1, 2), "falls, then rises")])
def test_direction(values, words):
    assert chapter.direction(series(*values)) == words


def test_verdict_and_regime_from_a_table():
    t = pd.DataFrame({"eps": [4, 8, 16], "seed": 0, "gap_loss": [5.7, 0.7, 0.07], "train_acc": [100, 70.8, 28.6]})
    text = chapter.verdict("Loss gap", t, "gap_loss", -1)
    assert "it falls (5.70 at eps 4, 0.70 at eps 8 and 0.07 at eps 16)" in text and "**holds**" in text
    assert "**does not hold**" in chapter.verdict("Loss gap", t, "gap_loss", +1)
    assert "At eps 8, 16 that is below 95%" in chapter.regime(t)
    assert "at every AR strength" in chapter.regime(t.assign(train_acc=99))
    # seeds are averaged per eps
    two = pd.concat([t, t.assign(seed=1, gap_loss=[5.5, 0.9, 0.09])])
    assert "5.60 at eps 4, 0.80 at eps 8 and 0.08 at eps 16" in chapter.describe(two, "gap_loss", "x")


def test_exercises_train_nothing_while_a_non_smoke_book_is_built(monkeypatch):
    monkeypatch.setenv(chapter.BOOK_BUILD_ENV, "1")
    assert chapter.exercise("cpu", eps=[2]) is None
