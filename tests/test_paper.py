import pytest

from arreg_core import paper


def test_paper_tables_are_shipped_and_consistent():
    t = paper.table()
    assert (t.source == "paper").all() and set(t.table) == {2, 3, 4, 5, 6}
    m = paper.metrics("cifar10", "resnet56")
    assert list(m.index) == [4, 8, 16]
    assert m.loc[4, "train_acc"] == 99.51
    # every gap equals train - test (acc) or test - train (loss) within the paper's rounding
    assert ((m.train_acc - m.test_acc - m.gap_acc).abs() < 0.02).all()
    assert ((m.test_loss - m.train_loss - m.gap_loss).abs() < 0.002).all()
    assert set(paper.metrics("cifar10", "resnet56", spectral_norm="1").index) == {4, 8, 16}
    assert list(paper.metrics("tinyimagenet", "wrn50_2").index) == [0, 4, 8, 16]
    assert len(paper.table("loss_variation")) == 18
    assert set(paper.table("singular_value_std_summary").group) == {"decreased", "increased"}


def test_unknown_tables_are_clear_errors():
    with pytest.raises(ValueError, match="choose one of"):
        paper.table("table7")
    with pytest.raises(ValueError, match="no results"):
        paper.metrics("mnist", "resnet56")
