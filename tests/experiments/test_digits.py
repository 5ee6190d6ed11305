"""The digits experiment end to end on a tiny setting."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from experiments import digits


def test_two_steps_write_every_output(tmp_path):
    out = tmp_path / "run"
    digits.main(
        ["--steps", "2", "--out", str(out), "--hidden", "8", "--batch-size", "16",
         "--cell", "gru", "--data-dir", str(tmp_path / "tfds")]
    )  # fmt: skip
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    for model in digits.MODELS:
        assert 0.0 <= stored["results"][model]["test_accuracy"] <= 1.0


def test_rows_are_scaled_to_unit_interval():
    example = {"image": np.full((8, 8), 16, np.uint8), "label": 3}
    rows = digits.to_rows(example)
    assert rows["x"].shape == (8, 8) and rows["x"].dtype == np.float32
    np.testing.assert_array_equal(rows["x"], 1.0)
    assert rows["label"] == 3


def test_bad_flags_are_rejected_by_the_parser_naming_the_flag(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for argv, flag in (
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--out", str(tmp_path / "file")], "--out"),
    ):
        with pytest.raises(SystemExit):
            digits.parse_args(argv)
        assert f"argument {flag}: " in capsys.readouterr().err
