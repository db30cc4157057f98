from bench.stats import percentile, rate, ratio, summary


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert percentile(range(101), 95) == 95
    assert abs(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) - 9.55) < 1e-9


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_summary_scales_seconds_to_milliseconds():
    s = summary([0.010, 0.020, 0.030], scale=1000)
    assert s["n"] == 3 and s["p50"] == 20 and s["max"] == 30
    assert abs(s["mean"] - 20) < 1e-9


def test_rate_and_ratio_without_time_are_none():
    assert rate(200, 0) is None and rate(200, 4) == 50
    assert ratio(1, 0) is None and ratio(9, 10) == 0.9
