"""Pure helpers of the benchmark: percentiles, summaries, rates (unit-tested, no I/O)."""
import math


def percentile(values, q):
    """The ``q``-th percentile (0-100) of ``values``, interpolated linearly (numpy's default); None if empty."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    rank = (len(data) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return data[low]
    return data[low] + (data[high] - data[low]) * (rank - low)


def summary(values, scale=1.0):
    """n, mean, p50, p95, p99 and max of ``values``, each multiplied by ``scale`` (1000: s -> ms)."""
    data = [v * scale for v in values]
    if not data:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    return {"n": len(data), "mean": sum(data) / len(data), "p50": percentile(data, 50),
            "p95": percentile(data, 95), "p99": percentile(data, 99), "max": max(data)}


def rate(count, seconds):
    """count / seconds, None when no time passed."""
    return count / seconds if seconds and seconds > 0 else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def histogram_percentile(buckets, q):
    """The ``q``-th percentile (0-100) from a Prometheus histogram's cumulative buckets.

    ``buckets``: (upper bound, observations at most that) pairs, the last bound ``inf``;
    interpolated linearly within the bucket it falls in, as ``histogram_quantile`` does
    (the lowest bucket from 0; a value in the ``inf`` bucket is given the highest bound).
    None when nothing was observed.
    """
    ordered = sorted(buckets)
    if not ordered or not ordered[-1][1]:
        return None
    rank = ordered[-1][1] * q / 100.0
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == math.inf:
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
