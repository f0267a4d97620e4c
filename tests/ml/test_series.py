"""Series verdict rules on hand-made series of slice probabilities."""

import numpy as np
import pytest

from ml.series import (
    CONSECUTIVE,
    MAX,
    RULE_FILE,
    TOP_MEAN,
    Rule,
    calls,
    candidate_rules,
    choose_rule,
    load_rule,
    longest_run,
    most_suspicious,
    top_mean,
    verdict,
)

NAN = float("nan")
T = 0.2  # a slice threshold like the card's


def test_longest_run_counts_consecutive_slices_at_or_above_the_threshold():
    assert longest_run([0.1, 0.2, 0.3, 0.1, 0.5, 0.6, 0.7, 0.0], T) == 3
    assert longest_run([0.1, 0.1], T) == 0
    assert longest_run([], T) == 0


def test_a_refused_slice_breaks_a_run():
    assert longest_run([0.9, 0.9, NAN, 0.9], T) == 2


def test_k_consecutive_rule_needs_the_run_not_just_k_slices():
    scattered = [0.9, 0.0, 0.9, 0.0, 0.9]
    together = [0.0, 0.9, 0.9, 0.9, 0.0]
    rule = Rule(CONSECUTIVE, 3, T)
    assert not rule.suspected(scattered)
    assert rule.suspected(together)
    assert Rule(CONSECUTIVE, 1, T).suspected(scattered)


def test_max_rule_has_its_own_threshold():
    series = [0.1, 0.35, 0.2]
    assert Rule(MAX, 1, 0.3).suspected(series)
    assert not Rule(MAX, 1, 0.4).suspected(series)


def test_top_mean_averages_the_m_highest_answered_slices():
    assert top_mean([0.9, 0.1, 0.5, NAN, 0.7], 2) == pytest.approx(0.8)
    assert top_mean([0.4], 3) == pytest.approx(0.4)
    assert top_mean([NAN, NAN], 2) == 0.0
    assert Rule(TOP_MEAN, 2, 0.75).suspected([0.9, 0.1, 0.7])
    assert not Rule(TOP_MEAN, 2, 0.85).suspected([0.9, 0.1, 0.7])


def test_an_empty_or_fully_refused_series_is_not_suspected():
    for rule in (Rule(CONSECUTIVE, 1, T), Rule(MAX, 1, 0.0), Rule(TOP_MEAN, 3, 0.5)):
        assert not rule.suspected([])
    assert not Rule(CONSECUTIVE, 1, T).suspected([NAN, NAN])


def test_most_suspicious_slices_first_ties_in_slice_order_refused_left_out():
    probs = [0.3, 0.9, NAN, 0.3, 0.95, 0.3]
    assert most_suspicious(probs) == [4, 1, 0, 3, 5]
    assert most_suspicious(probs, limit=3) == [4, 1, 0]


def test_verdict_gives_the_call_its_score_and_the_slices_to_read_first():
    result = verdict([0.1, 0.5, 0.6, NAN, 0.05], Rule(CONSECUTIVE, 2, T), limit=2)
    assert result.tumour_suspected
    assert result.score == 2
    assert result.most_suspicious == [2, 1]
    assert (result.slices, result.answered) == (5, 4)


def test_bad_rules_and_bad_input_are_refused():
    with pytest.raises(ValueError, match="unknown series rule"):
        Rule("vote", 1, T)
    with pytest.raises(ValueError, match="k >= 1"):
        Rule(CONSECUTIVE, 0, T)
    with pytest.raises(ValueError, match="1 for max"):
        Rule(MAX, 2, 0.5)
    with pytest.raises(ValueError, match="one probability per slice"):
        longest_run(np.zeros((2, 2)), T)


def test_rule_round_trips_through_a_dict():
    rule = Rule(TOP_MEAN, 3, 0.41234)
    assert Rule.from_dict(rule.as_dict()) == Rule(TOP_MEAN, 3, 0.4123)
    assert "top 3" in rule.describe()
    assert Rule(CONSECUTIVE, 1, 0.2).describe() == "tumour suspected if a slice reaches 0.2"
    assert "3 consecutive slices" in Rule(CONSECUTIVE, 3, 0.2).describe()


def test_calls_agree_with_each_rule_on_its_own():
    series = [np.array(s) for s in ([0.9, 0.9, 0.1], [0.3, NAN, 0.3], [], [0.05, 0.1, 0.8, 0.7, 0.6])]
    rules = candidate_rules(series, T, max_k=4)
    expected = np.array([[rule.suspected(s) for s in series] for rule in rules])
    assert (calls(rules, series) == expected).all()


def test_choose_rule_prefers_the_smallest_k_with_the_best_specificity_at_the_sensitivity():
    # Tumours show as runs of 3 or more; the healthy series have isolated or paired false alarms.
    tumours = [np.array([0.1, 0.5, 0.6, 0.7, 0.1]), np.array([0.4, 0.4, 0.4, 0.1, 0.1])]
    healthy = [np.array([0.9, 0.1, 0.9, 0.1, 0.1]), np.array([0.1, 0.6, 0.6, 0.1, 0.1])]
    series, labels = tumours + healthy, [True, True, False, False]
    rules = [Rule(CONSECUTIVE, k, T) for k in range(1, 6)]
    # k = 3 clears both healthy series and finds both tumours; k = 4 or 5 would miss them.
    assert choose_rule(rules, series, labels, min_sensitivity=1.0) == Rule(CONSECUTIVE, 3, T)


def test_choose_rule_can_pick_another_family_and_says_none_when_nothing_is_sensitive_enough():
    tumours = [np.array([0.1, 0.95, 0.1]), np.array([0.1, 0.1, 0.9])]
    healthy = [np.array([0.5, 0.5, 0.5, 0.5])]
    series, labels = tumours + healthy, [True, True, False]
    chosen = choose_rule(candidate_rules(series, T, max_k=3), series, labels, min_sensitivity=1.0)
    assert chosen == Rule(MAX, 1, 0.9)
    assert choose_rule([Rule(CONSECUTIVE, 2, T)], series, labels, min_sensitivity=1.0) is None


def test_a_model_without_a_rule_file_flags_a_series_when_any_slice_reaches_its_threshold(tmp_path):
    assert load_rule(tmp_path, 0.19) == Rule(CONSECUTIVE, 1, 0.19)


def test_the_rule_file_beside_the_card_is_read_and_a_broken_one_is_an_error(tmp_path):
    (tmp_path / RULE_FILE).write_text('{"rule": {"kind": "max", "k": 1, "threshold": 0.07}}')
    assert load_rule(tmp_path, 0.19) == Rule(MAX, 1, 0.07)
    (tmp_path / RULE_FILE).write_text('{"rule": {"kind": "vote", "k": 1, "threshold": 0.07}}')
    with pytest.raises(ValueError, match="does not hold a series rule"):
        load_rule(tmp_path, 0.19)
