"""A progress bar for long runs: step, loss and throughput, drawn with ``rich``.

``rich`` already comes with Flax. The bar is drawn only on an interactive terminal unless asked
for explicitly, so logs of batch jobs and test runs stay free of control characters.
"""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """Shows ``step / total``, the latest loss and steps (and examples) per second.

    Args:
      total: the step the run ends at.
      initial: the step it starts from (non-zero when resuming).
      enabled: draw the bar; None draws it only when stderr is a terminal.
    """

    def __init__(self, total: int, *, initial: int = 0, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self._progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=initial, info="")

    def update(self, step: int, *, loss: float, steps_per_s: float, examples_per_s: float) -> None:
        """Moves the bar to ``step`` and shows the loss and throughput."""
        if self._progress is None:
            return
        info = f"loss {loss:.4g}  {steps_per_s:.1f} step/s  {examples_per_s:.0f} ex/s"
        self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
