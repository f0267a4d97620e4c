"""How figures are written against a model card's thresholds."""

import pytest

from ml.card import percents, refer_reason


@pytest.mark.parametrize(
    "value,threshold,expected",
    [
        (0.868, 0.87, ("86.8%", "87.0%")),  # not "87%" and "87%"
        (0.1867, 0.1868, ("18.67%", "18.68%")),
        (0.8699999, 0.87, ("86.999%", "87.000%")),
        (0.87, 0.87, ("87%", "87%")),  # at the threshold is not below it
        (0.3, 0.1868, ("30%", "19%")),
    ],
)
def test_a_figure_below_its_threshold_reads_below_it(value, threshold, expected):
    assert percents(value, threshold) == expected


def test_refer_reason_says_below_only_with_figures_that_are():
    assert refer_reason(0.868, 0.87) == (
        "confidence 86.8% is below the model's refer threshold 87.0%: refer for specialist review"
    )
