"""The character language model end to end on a tiny setting, and its pieces by hand."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from experiments import char_lm


def test_end_to_end_writes_outputs_and_the_loss_decreases(tmp_path):
    out = tmp_path / "run"
    metrics = char_lm.main(
        ["--steps", "30", "--hidden", "16", "--embed", "8", "--seq-len", "32",
         "--batch-size", "8", "--lr", "1e-2", "--eval-size", "4", "--eval-chars", "2000",
         "--sample-len", "20", "--prompt", "The ", "--log-every", "5", "--eval-every", "15",
         "--no-progress", "--out", str(out), "--data-dir", str(tmp_path / "tfds")]
    )  # fmt: skip
    for name in ("metrics.json", "log.jsonl", "curves.png"):
        assert os.path.getsize(out / name) > 0, name
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["metrics"]["sample"].startswith("The ")
    assert len(stored["metrics"]["sample"]) == len("The ") + 20
    assert stored["config"]["seq_len"] == 32
    assert metrics["final_train_loss"] < metrics["first_train_loss"]
    assert metrics["test_bpc"] < metrics["uniform_bpc"]
    assert metrics["final_train_bpc"] == pytest.approx(metrics["final_train_loss"] / math.log(2))


def test_windows_overlap_by_one_character():
    windows = char_lm.Windows(np.arange(10, dtype=np.int32), 3)
    assert len(windows) == 3
    np.testing.assert_array_equal(windows[0]["ids"], [0, 1, 2, 3])
    np.testing.assert_array_equal(windows[2]["ids"], [6, 7, 8, 9])
    with pytest.raises(IndexError):
        windows[3]


def test_streams_cut_contiguous_rows():
    rows = char_lm.streams(np.arange(11), 2, 0)
    np.testing.assert_array_equal(rows, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    np.testing.assert_array_equal(char_lm.streams(np.arange(11), 2, 6), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match="too few"):
        char_lm.streams(np.arange(3), 2, 0)


def test_unigram_bpc_by_hand():
    # Counts + 1 over a vocabulary of 3: id 2 seen twice -> p = 3/5; id 1 unseen -> 1/5.
    got = char_lm.unigram_bpc(np.array([2, 2]), np.array([2, 1]), 3)
    assert got == pytest.approx(-(math.log2(3 / 5) + math.log2(1 / 5)) / 2)


def test_pydoc_text_keeps_paragraph_order(tmp_path):
    from pydoc_data.topics import topics

    from lstm_jax.data import pydoc_topics

    text = char_lm.pydoc_text("test", str(tmp_path / "tfds"))
    first = sorted(t for t in topics if pydoc_topics.topic_split(t) == "test")[0]
    assert text.startswith(pydoc_topics.paragraphs(topics[first])[0])


@pytest.mark.parametrize(("processes", "per_process"), [(1, 4), (2, 2), (4, 1)])
def test_each_process_reads_its_rows_of_the_same_global_batch(processes, per_process):
    from lstm_jax.training import distributed

    windows = char_lm.Windows(np.arange(40, dtype=np.int32), 3)  # 10 windows
    config = char_lm.Config(batch_size=8, seq_len=3, seed=4)
    whole = char_lm.train_batches(windows, config)
    layout = distributed.rows_by_process(
        [p for p in range(processes) for _ in range(per_process)], 8
    )
    shards = {p: char_lm.train_batches(windows, config, (p, processes)) for p in layout}
    for step in range(3):  # step 1 crosses into the second epoch
        for p, rows in layout.items():
            np.testing.assert_array_equal(shards[p][step]["ids"], whole[step]["ids"][rows])
    # Shuffled, and reshuffled per epoch: not the windows in order, nor one epoch twice.
    firsts = [tuple(whole[step]["ids"][:, 0]) for step in range(3)]
    assert len(set(firsts)) == 3
