"""The statsmodels series builders against statsmodels' own data."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_jax import data
from lstm_jax.data import series

pytest.importorskip("statsmodels")


def read(name, split, data_dir):
    source = data.data_source(name, split, data_dir=data_dir)
    return [source[i] for i in range(len(source))]


def test_interpolate_missing_by_hand():
    filled, observed = series.interpolate_missing(np.array([np.nan, 1.0, np.nan, np.nan, 4.0]))
    np.testing.assert_allclose(filled, [1.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(observed, [False, True, False, False, True])


def test_interpolate_missing_rejects_an_empty_series():
    with pytest.raises(ValueError, match="at least one observed"):
        series.interpolate_missing(np.array([np.nan, np.nan]))


def test_co2_is_in_time_order_and_matches_statsmodels(data_dir):
    from statsmodels.datasets import co2

    raw = co2.load_pandas().data["co2"].to_numpy()
    rows = read("statsmodels_co2", "full", data_dir)
    assert [int(r["t"]) for r in rows] == list(range(len(raw)))
    values = np.array([r["value"] for r in rows])
    observed = np.array([bool(r["observed"]) for r in rows])
    np.testing.assert_array_equal(observed, ~np.isnan(raw))
    np.testing.assert_allclose(values[observed], raw[observed], rtol=1e-6)
    assert rows[0]["date"] == b"1958-03-29" and rows[-1]["date"] == b"2001-12-29"


def test_co2_gaps_lie_on_the_line_between_their_neighbours(data_dir):
    from statsmodels.datasets import co2

    raw = co2.load_pandas().data["co2"].to_numpy()
    values = np.array([r["value"] for r in read("statsmodels_co2", "full", data_dir)])
    for t in np.flatnonzero(np.isnan(raw)):
        before = t - 1
        while np.isnan(raw[before]):
            before -= 1
        after = t + 1
        while np.isnan(raw[after]):
            after += 1
        expected = raw[before] + (raw[after] - raw[before]) * (t - before) / (after - before)
        np.testing.assert_allclose(values[t], expected, rtol=1e-6)


def test_slices_cut_the_series_in_time(data_dir):
    tail = read("statsmodels_sunspots", "full[-3:]", data_dir)
    head = read("statsmodels_sunspots", "full[:-3]", data_dir)
    assert [r["date"] for r in tail] == [b"2006", b"2007", b"2008"]
    assert len(head) == 306 and int(head[-1]["t"]) == 305


def test_sunspots_match_statsmodels(data_dir):
    from statsmodels.datasets import sunspots

    raw = sunspots.load_pandas().data
    rows = read("statsmodels_sunspots", "full", data_dir)
    np.testing.assert_allclose([r["value"] for r in rows], raw["SUNACTIVITY"], rtol=1e-6)
    assert [int(r["date"]) for r in rows] == raw["YEAR"].astype(int).tolist()
    assert all(r["observed"] for r in rows)
