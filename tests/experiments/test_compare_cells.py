import os

from experiments import compare_cells


def test_writes_a_table_and_a_plot(tmp_path):
    out = str(tmp_path / "cmp")
    md = compare_cells.main(
        [
            "--experiment",
            "adding_problem",
            "--cells",
            "simple_rnn",
            "lstm",
            "--seeds",
            "0",
            "1",
            "--steps",
            "2",
            "--sweep",
            "seq-len=4",
            "--out",
            out,
            "--",
            "--hidden",
            "4",
            "--batch-size",
            "4",
            "--eval-size",
            "8",
            "--no-progress",
        ]
    )
    for name in ("results.md", "results.json", "compare.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.path.exists(os.path.join(out, "seq-len4", "lstm", "seed1", "metrics.json"))
    lines = md.splitlines()
    assert lines[0].startswith("| cell | seq-len=4 test_mse | seq-len=4 solved_fraction |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["simple_rnn", "lstm"]


def test_every_library_cell_is_offered():
    from experiments import common
    from lstm_jax.cells import CELL_TYPES

    library = {n for n, c in CELL_TYPES.items() if c.__module__.startswith("lstm_jax.cells.")}
    assert library <= set(common.CELLS)
