"""The punctuation-restoration experiment end to end on a tiny setting, and its pieces."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments import restore_punctuation as rp


def test_two_steps_write_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    metrics = rp.main(
        ["--steps", "2", "--out", str(out), "--seed", "1", "--hidden", "8", "--embed", "4",
         "--batch-size", "8", "--max-len", "48", "--data-dir", str(tmp_path / "tfds")]
    )  # fmt: skip
    printed = capsys.readouterr()
    # Not a terminal: one plain progress line per model at its last step, on stderr.
    for model in rp.MODELS:
        (line,) = [x for x in printed.err.splitlines() if x.startswith(f"[{model}] step")]
        assert line.startswith(f"[{model}] step 2/2 (100%)  loss ") and "\x1b" not in line
    sample = metrics["samples"]
    for model in rp.MODELS:
        assert f"{model:<14}: {sample[model]}" in printed.out
        assert sample[model].lower().replace(" ", "") != ""
    assert f"truth         : {sample['truth']}" in printed.out
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


def test_the_sample_is_the_chunk_where_the_models_differ_most():
    same = (np.array([0, 1, 0]), np.array([1, 0, 0]))
    rows = {
        "bidirectional": {0: same, 1: (np.array([1, 1, 0]), np.array([0, 0, 0])), 2: same},
        "forward": {0: same, 1: same, 2: (np.array([0, 1, 2]), np.array([1, 0, 0]))},
    }
    # Chunk 1 differs at characters 0 (punct and case) and nothing else: 1; chunk 2 at 1.
    # The tie goes to the lower index.
    assert rp.choose_sample(rows) == (1, 1)
    rows["forward"][2] = (np.array([2, 2, 2]), np.array([0, 1, 1]))
    assert rp.choose_sample(rows) == (2, 3)
    agree = {m: {0: same, 1: same} for m in rp.MODELS}
    assert rp.choose_sample(agree) == (0, 0)


def test_labels_without_test_support_get_no_f1_bar():
    def scores(f1, support):
        return {"precision": f1, "recall": f1, "f1": f1, "support": support}

    result = {
        "punct": {m: scores(0.0 if m == "?" else 0.5, 0 if m == "?" else 4)
                  for m in rp.data.PUNCT_LABELS},
        "case": {"capital": scores(0.7, 9)},
    }  # fmt: skip
    support, f1 = rp.f1_by_label({"bidirectional": result, "forward": result})
    labels = [*rp.data.PUNCTUATION, "capital"]
    for label, n, value in zip(labels, support, f1["forward"], strict=True):
        if label == "?":
            assert n == 0 and np.isnan(value)
        else:
            assert n > 0 and value == (0.7 if label == "capital" else 0.5)


def test_data_dir_help_states_its_default_once(capsys):
    with pytest.raises(SystemExit):
        rp.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: cache)" not in text
    assert f"TFDS data dir (default: {rp.data.default_data_dir()})" in text
