"""TFDS builders of real time series that ship with statsmodels, offline.

``statsmodels_co2``: the weekly mean CO2 concentration (ppm) at Mauna Loa, 1958-03-29 to
2001-12-29, 2284 weeks (``statsmodels.datasets.co2``). 59 weeks are missing, in 22 gaps of 1
to 18 weeks; their ``value`` is filled by linear interpolation in time between the nearest
observed weeks on either side (the weeks are equally spaced, so this is ``np.interp`` over the
week index), and ``observed`` is False for them. The first and last weeks are observed, so
nothing is extrapolated.

``statsmodels_sunspots``: the yearly mean sunspot number, 1700 to 2008, 309 years
(``statsmodels.datasets.sunspots``), no gaps.

Each example is one time step, in time order (shuffling is disabled, so TFDS split slicing
such as ``"full[:-104]"`` cuts the series in time)::

    t         int32    position in the series, 0 .. n-1
    date      str      ISO date of the week ("1958-03-29") or the year ("1700")
    value     float32  the measurement (interpolated where not observed)
    observed  bool     False where ``value`` was interpolated

There is a single split, ``full``: where the held-out tail starts is the experiment's choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lstm_jax.data.offline_builder import OfflineBuilder

SPLIT = "full"


def interpolate_missing(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values: float [time]`` with NaNs -> (linearly filled ``float [time]``, observed mask).

    Each NaN takes the straight line between the nearest observed values before and after it;
    NaNs before the first (after the last) observed value take that value.
    """
    values = np.asarray(values, dtype=np.float64)
    observed = ~np.isnan(values)
    if not observed.any():
        raise ValueError("interpolate_missing: values must hold at least one observed value")
    t = np.arange(values.size)
    filled = np.interp(t, t[observed], values[observed])
    return filled, observed


# Both series: one example per time step.
SERIES_FEATURES = {
    "t": tfds.features.Scalar(dtype=np.int32),
    "date": tfds.features.Text(),
    "value": tfds.features.Scalar(dtype=np.float32),
    "observed": tfds.features.Scalar(dtype=np.bool_),
}


def _examples(dates: list[str], values: np.ndarray) -> Iterator[tuple[int, dict]]:
    filled, observed = interpolate_missing(values)
    for t, (date, v, seen) in enumerate(zip(dates, filled, observed, strict=True)):
        yield t, {"t": t, "date": date, "value": np.float32(v), "observed": bool(seen)}


class _StatsmodelsSeries(OfflineBuilder, skip_registration=True):
    """One series of statsmodels' data sets, one example per time step, stored in time order."""

    FEATURES: ClassVar = SERIES_FEATURES
    IN_ORDER = True  # keys are the time index: slices cut in time
    SPLITS: ClassVar = {SPLIT: ()}


class StatsmodelsCo2(_StatsmodelsSeries):
    """Weekly Mauna Loa CO2 from statsmodels; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Weekly values, gaps filled linearly in time, observed flag."
    }
    HOMEPAGE = "https://www.statsmodels.org/stable/datasets/generated/co2.html"

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        from statsmodels.datasets import co2

        frame = co2.load_pandas().data
        dates = [ts.date().isoformat() for ts in frame.index]
        return _examples(dates, frame["co2"].to_numpy(dtype=np.float64))


class StatsmodelsSunspots(_StatsmodelsSeries):
    """Yearly sunspot numbers from statsmodels; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Yearly values 1700-2008."}
    HOMEPAGE = "https://www.statsmodels.org/stable/datasets/generated/sunspots.html"

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        from statsmodels.datasets import sunspots

        frame = sunspots.load_pandas().data
        dates = [str(int(y)) for y in frame["YEAR"]]
        return _examples(dates, frame["SUNACTIVITY"].to_numpy(dtype=np.float64))
