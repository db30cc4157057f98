import pytest

from shared.timeutil import duration, parse_docker_time


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T03:04:05.123456789Z", 1704164645.123456),
    ("2024-01-02T03:04:05Z", 1704164645.0),
    ("2024-01-02T05:04:05.5+02:00", 1704164645.5),
])
def test_docker_timestamps_become_epoch_seconds_utc(text, expected):
    assert parse_docker_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "", None])
def test_docker_zero_time_is_none(text):
    assert parse_docker_time(text) is None


def test_duration_is_end_minus_start_or_none():
    assert duration(10.0, 12.5) == 2.5
    assert duration(None, 3.0) is None and duration(1.0, None) is None
