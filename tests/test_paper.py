import pytest

from arreg_core.paper import paper_metrics, paper_table


def test_paper_tables_are_shipped_and_consistent():
    t = paper_table()
    assert (t.source == "paper").all() and set(t.table) == {2, 3, 4, 5, 6}
    m = paper_metrics("cifar10", "resnet56")
    assert list(m.index) == [4, 8, 16]
    assert m.loc[4, "train_acc"] == 99.51
    # every gap equals train - test (acc) or test - train (loss) within the paper's rounding
    assert ((m.train_acc - m.test_acc - m.gap_acc).abs() < 0.02).all()
    assert ((m.test_loss - m.train_loss - m.gap_loss).abs() < 0.002).all()
    assert set(paper_metrics("cifar10", "resnet56", spectral_norm="1").index) == {4, 8, 16}
    assert list(paper_metrics("tinyimagenet", "wrn50_2").index) == [0, 4, 8, 16]
    assert len(paper_table("loss_variation")) == 18
    assert set(paper_table("singular_value_std_summary").group) == {"decreased", "increased"}


def test_unknown_tables_are_clear_errors():
    with pytest.raises(ValueError, match="choose one of"):
        paper_table("table7")
    with pytest.raises(ValueError, match="no results"):
        paper_metrics("mnist", "resnet56")
