"""The punctuation-restoration experiment end to end on a tiny setting, and its pieces."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments import restore_punctuation as rp


def test_two_steps_write_every_output(tmp_path):
    out = tmp_path / "run"
    metrics = rp.main(
        ["--steps", "2", "--out", str(out), "--seed", "1", "--hidden", "8", "--embed", "4",
         "--batch-size", "8", "--max-len", "48", "--data-dir", str(tmp_path / "tfds")]
    )  # fmt: skip
    for name in ("metrics.json", "log.jsonl", "curves.png", "f1.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    assert set(stored["results"]) == set(rp.MODELS)
    for model in rp.MODELS:
        assert set(stored["results"][model]["punct"]) == set(rp.data.PUNCT_LABELS)
        assert np.isfinite(stored["results"][model]["loss"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "validation", "test"}
    assert metrics["config"]["max_len"] == 48


@given(st.text(alphabet="ab ", max_size=60), st.integers(1, 9))
def test_chunks_rebuild_the_text_and_respect_max_len(text, max_len):
    text = " ".join(text.split())
    chunks = rp.chunk_words(text, max_len)
    assert all(0 < len(c) <= max_len for c in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")


def test_per_label_scores_by_hand():
    true = np.array([0, 1, 1, 2, 0])
    pred = np.array([0, 1, 0, 1, 0])
    s = rp.per_label_scores(true, pred, ["none", "a", "b"])
    assert s["a"]["precision"] == 0.5 and s["a"]["recall"] == 0.5 and s["a"]["support"] == 2
    assert s["b"]["f1"] == 0.0 and s["b"]["support"] == 1
    assert s["none"]["recall"] == 1.0 and s["none"]["precision"] == 2 / 3


def test_bad_flags_are_rejected_by_the_parser_naming_the_flag(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for argv, flag in (
        (["--lr", "inf"], "--lr"),
        (["--clip-norm", "0"], "--clip-norm"),
        (["--clip-norm", "-1"], "--clip-norm"),
        (["--out", str(tmp_path / "file")], "--out"),
    ):
        with pytest.raises(SystemExit):
            rp.parse_args(argv)
        assert f"argument {flag}: " in capsys.readouterr().err
