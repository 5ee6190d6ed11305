"""Progress of a long run: step, loss, steps per second and the time left.

On an interactive terminal it is a ``rich`` bar (``rich`` comes with Flax); otherwise, as in
the log of a batch job or a test run, it is a plain line now and then, free of control
characters, so a slow run never looks hung.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_seconds(seconds: float) -> str:
    """``75 -> "1m15s"``, ``3725 -> "1h02m"``, ``8 -> "8s"``."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m"


class ProgressBar:
    """Shows ``step / total``, the latest loss, steps (and examples) per second and an ETA.

    Args:
      total: the step the run ends at.
      initial: the step it starts from (non-zero when resuming).
      enabled: True draws a ``rich`` bar, False shows nothing, None (the default) draws the bar
        when ``stream`` is a terminal and prints plain lines otherwise.
      description: the label in front of the bar or line (a model's name, say).
      plain_every: seconds between plain lines (the last step always gets one).
      stream: where it writes (default: ``sys.stderr``, so stdout keeps only results).
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        enabled: bool | None = None,
        description: str = "train",
        plain_every: float = 30.0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.description, self.plain_every = total, description, plain_every
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            self.mode = "bar" if isatty is not None and isatty() else "plain"
        else:
            self.mode = "bar" if enabled else "off"
        self.enabled = self.mode != "off"
        self._progress = None
        self._last_line = -float("inf")
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(f"[bold]{description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=initial, info="")

    def update(self, step: int, *, loss: float, steps_per_s: float, examples_per_s: float) -> None:
        """Moves to ``step`` and shows the loss and throughput."""
        info = f"loss {loss:.4g}  {steps_per_s:.1f} step/s  {examples_per_s:.0f} ex/s"
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=info)
            return
        if self.mode != "plain":
            return
        now = time.monotonic()
        if now - self._last_line < self.plain_every and step < self.total:
            return
        self._last_line = now
        left = (self.total - step) / steps_per_s if steps_per_s > 0 else float("nan")
        eta = format_seconds(left) if left == left else "?"
        percent = 100 * step / self.total if self.total else 100.0
        print(
            f"[{self.description}] step {step}/{self.total} ({percent:.0f}%)  {info}  ETA {eta}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
