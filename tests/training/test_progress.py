"""The progress display: a rich bar on a terminal, plain lines elsewhere, nothing when off."""

from __future__ import annotations

import io

from lstm_jax.training.progress import ProgressBar, format_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_seconds_by_hand():
    assert format_seconds(8) == "8s"
    assert format_seconds(75) == "1m15s"
    assert format_seconds(3725) == "1h02m"


def test_plain_lines_when_not_a_terminal_show_step_loss_rate_and_eta():
    out = io.StringIO()
    with ProgressBar(100, description="forward", plain_every=0.0, stream=out) as bar:
        bar.update(40, loss=0.25, steps_per_s=2.0, examples_per_s=64.0)
    line = out.getvalue()
    assert line == ("[forward] step 40/100 (40%)  loss 0.25  2.0 step/s  64 ex/s  ETA 30s\n"), line
    assert "\x1b" not in line


def test_plain_lines_are_rate_limited_but_the_last_step_is_always_shown():
    out = io.StringIO()
    with ProgressBar(10, plain_every=3600.0, stream=out) as bar:
        for step in range(1, 11):
            bar.update(step, loss=1.0, steps_per_s=5.0, examples_per_s=5.0)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/10", "10/10"]


def test_a_terminal_gets_the_rich_bar_with_the_description():
    out = Terminal()
    with ProgressBar(4, description="bidirectional", stream=out) as bar:
        bar.update(4, loss=0.5, steps_per_s=10.0, examples_per_s=80.0)
    text = out.getvalue()
    assert bar.mode == "bar"
    assert "bidirectional" in text and "loss 0.5" in text and "4/4" in text


def test_disabled_shows_nothing():
    out = Terminal()
    with ProgressBar(4, enabled=False, stream=out) as bar:
        bar.update(4, loss=0.5, steps_per_s=10.0, examples_per_s=80.0)
    assert out.getvalue() == ""
