import numpy as np
import pytest
from scipy import stats

from grokpath.correlation import correlate, rise_window


def test_rise_window_starts_at_the_last_low_checkpoint():
    acc = [0.3, 0.1, 0.12, 0.4, 0.6, 0.9]
    # low = within 10% of the range (0.8) above the minimum 0.1: indices 1 and 2; the last is 2.
    assert rise_window(acc, min_points=3) == [2, 3, 4, 5]


def test_rise_window_is_widened_to_min_points():
    acc = [0.1, 0.1, 0.1, 0.1, 0.2, 0.9]
    assert rise_window(acc, min_points=4) == [2, 3, 4, 5]


def test_rise_window_ignores_a_late_dip():
    acc = [0.0, 0.5, 0.6, 0.7, 0.65]
    assert rise_window(acc, min_points=2) == [0, 1, 2, 3, 4]


def test_perfect_and_inverse_relations():
    x = [1, 2, 3, 4, 5]
    c = correlate(x, [2, 4, 6, 8, 10])
    assert c.pearson_r == pytest.approx(1.0)
    assert c.spearman_rho == pytest.approx(1.0)
    assert c.n == 5
    d = correlate(x, [5, 3, 2, 1.5, 0])
    assert d.spearman_rho == pytest.approx(-1.0)
    assert d.pearson_r < -0.9


def test_known_values_match_scipy_reference():
    x = [0.2, 0.4, 0.35, 0.6, 0.9, 0.8]
    y = [3.0, 2.6, 2.8, 2.0, 1.1, 1.5]
    c = correlate(x, y)
    assert c.pearson_r == pytest.approx(np.corrcoef(x, y)[0, 1])
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    assert (c.pearson_r, c.pearson_p) == pytest.approx((pearson.statistic, pearson.pvalue))
    assert (c.spearman_rho, c.spearman_p) == pytest.approx((spearman.statistic, spearman.pvalue))
    assert c.spearman_rho == pytest.approx(-1.0)  # y falls wherever x rises
    assert c.pearson_p < 0.01
    assert c.pearson_ci[0] <= c.pearson_r <= c.pearson_ci[1] + 1e-9


def test_spearman_interval_is_on_ranks_and_pearson_on_values():
    # Monotone but far from linear: every resample has Spearman rho 1, Pearson r below 1.
    x = np.arange(1.0, 7.0)
    c = correlate(x, np.exp(2 * x))
    assert c.spearman_ci == (1.0, 1.0)
    assert c.pearson_ci[0] < 0.9
    assert c.pearson_r < 1


def test_bootstrap_interval_is_wide_for_few_noisy_points():
    c = correlate([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert c.spearman_ci[1] - c.spearman_ci[0] > 0.5


def test_degenerate_inputs_give_nan():
    assert np.isnan(correlate([1, 2], [3, 4]).pearson_r)
    assert np.isnan(correlate([1, 1, 1], [3, 4, 5]).spearman_rho)
    assert correlate([1, 2, np.nan, 4], [1, 2, 3, 4]).n == 3
