"""HdrHistogram helpers: latencies are recorded in microseconds with 3 significant digits
(< 0.1% relative error), encoded as base64 strings to ship between processes, and merged exactly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing we time can be longer (every run is bounded)
SIG_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new() -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_DIGITS)


def record_ms(hist: HdrHistogram, ms: float, count: int = 1) -> None:
    """HdrHistogram.record_value, inlined (it is on the path of every request; the package's takes
    four method calls to find the counter)."""
    us = int(ms * 1000.0)
    if us < LOWEST_US:
        us = LOWEST_US
    elif us > HIGHEST_US:
        us = HIGHEST_US
    unit = hist.unit_magnitude
    half_mag = hist.sub_bucket_half_count_magnitude
    bucket = (us | hist.sub_bucket_mask).bit_length() - unit - half_mag - 1
    index = ((bucket + 1) << half_mag) + (us >> (bucket + unit)) - hist.sub_bucket_half_count
    hist.counts[index] += count
    hist.total_count += count
    if us < hist.min_value:
        hist.min_value = us
    if us > hist.max_value:
        hist.max_value = us


def from_us(values: list[int]) -> HdrHistogram:
    """A histogram of raw microsecond values: the same counts, total, min and max as record_ms of each
    value, bucketed with numpy in one pass (the recorder keeps raw values during each second)."""
    hist = new()
    if not values:
        return hist
    import numpy as np

    us = np.clip(np.asarray(values, dtype=np.int64), LOWEST_US, HIGHEST_US)
    unit, half_mag = hist.unit_magnitude, hist.sub_bucket_half_count_magnitude
    # bit_length of (us | mask): frexp's exponent, exact for integers below 2**53
    bits = np.frexp((us | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - unit - half_mag - 1
    index = ((bucket + 1) << half_mag) + (us >> (bucket + unit)) - hist.sub_bucket_half_count
    counts = np.ctypeslib.as_array(hist.counts, shape=(hist.counts_len,))
    counts += np.bincount(index, minlength=hist.counts_len)[: hist.counts_len].astype(counts.dtype)
    hist.total_count = len(values)
    hist.min_value = int(us.min())
    hist.max_value = int(us.max())
    return hist


def encode(hist: HdrHistogram) -> str:
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(text: str) -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(text.encode("ascii"))


def merged(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    out = new()
    for h in hists:
        out.add(h)
    return out


def values_at(hist: HdrHistogram, percentiles: list[float]) -> list[int]:
    """The package's percentile walk is a Python loop over ~23k counters (tens of ms, which would
    stall the generator's event loop); the same HdrHistogram semantics with numpy take microseconds."""
    import numpy as np

    counts = np.ctypeslib.as_array(hist.counts, shape=(hist.counts_len,))
    cumulative = np.cumsum(counts)
    out = []
    for p in percentiles:
        target = hist.get_target_count_at_percentile(p)
        index = int(np.searchsorted(cumulative, target, side="left"))
        value = hist.get_value_from_index(min(index, hist.counts_len - 1))
        out.append(hist.get_highest_equivalent_value(value) if p else hist.get_lowest_equivalent_value(value))
    return out


def summary(hist: HdrHistogram) -> dict[str, float | None]:
    """latency_ms {p50, p90, p95, p99, p999, max, mean}; all None when nothing was recorded."""
    if hist.get_total_count() == 0:
        return {**{k: None for k in PERCENTILES}, "max": None, "mean": None}
    values = values_at(hist, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: round(v / 1000.0, 3) for k, v in zip(PERCENTILES, values, strict=True)}
    out["max"] = round(hist.get_max_value() / 1000.0, 3)
    out["mean"] = round(_mean(hist) / 1000.0, 3)
    return out


def _mean(hist: HdrHistogram) -> float:
    """Like the package's mean (each bucket counted at its median equivalent value), vectorised."""
    import numpy as np

    counts = np.ctypeslib.as_array(hist.counts, shape=(hist.counts_len,))
    idx = np.nonzero(counts)[0].astype(np.int64)
    if not len(idx):
        return 0.0
    median = median_values(hist, idx)
    weights = counts[idx].astype(np.float64)
    return float((median.astype(np.float64) * weights).sum() / weights.sum())


def median_values(hist: HdrHistogram, idx: Any) -> Any:
    """The median equivalent value (microseconds) of each counts index in idx (a numpy int64 array)."""
    import numpy as np

    half, half_mag, unit = hist.sub_bucket_half_count, hist.sub_bucket_half_count_magnitude, hist.unit_magnitude
    bucket = (idx >> half_mag) - 1
    sub = (idx & (half - 1)) + half
    low = bucket < 0
    sub = np.where(low, sub - half, sub)
    bucket = np.where(low, 0, bucket)
    value = sub << (bucket + unit)
    return value + ((np.int64(1) << (bucket + unit)) >> 1)


def quantile_ms(hist: HdrHistogram, percentile: float) -> float | None:
    if hist.get_total_count() == 0:
        return None
    return round(values_at(hist, [percentile])[0] / 1000.0, 3)
