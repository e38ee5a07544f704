"""A terminal progress bar for training (tqdm), drawn only where a person watches.

When stderr is a terminal (``python -m pipeline train`` by hand) one line is redrawn in
place: iterations done, percentage, loss, iterations per second and time left. When stderr
is a file (a Snakemake rule's log, a SLURM output file) nothing is drawn, so the log keeps
only the plain per-epoch lines the training loop logs.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

#: ``unet fold_0 12/18  67% |################        | 5.12it/s, 00:01 left, loss 0.4321``
BAR_FORMAT = "{desc}{n_fmt}/{total_fmt} {percentage:3.0f}% |{bar:24}| {rate_fmt}, {remaining} left{postfix}"


class _Tqdm(tqdm):
    """tqdm without its monitor thread: the bar is created before the DataLoader forks its
    workers, and a thread running at a fork is best avoided."""

    monitor_interval = 0


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    """Columns and lines of the terminal ``stream`` writes to. A terminal that does not know
    its size (0 x 0, as a fresh pty) gets no width limit, where tqdm would draw nothing."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (a StringIO), or not a terminal
        return 1000, 20
    return size.columns or 1000, size.lines or 20


class ProgressBar:
    """Progress of iterations ``start..total``, redrawn at most ``per_second`` times a second.

    Args:
        total: iterations of the whole training.
        start: iterations already done (a resumed run starts part-way; the rate and the
            time left count only the iterations of this run).
        stream: where to draw; default stderr. Nothing is drawn unless it is a terminal,
            or ``force`` is set.
        label: text in front of the bar (experiment and fold).
    """

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, label: str = "", force: bool = False, per_second: float = 4.0) -> None:
        self.total, self.start, self.label = total, start, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self._cleared = False
        self._bar = None
        if self.enabled:
            # smoothing=0: the rate is the average over this run, not a moving average, so the
            # time left does not jump at each validation pause; miniters=1: only the clock throttles.
            columns, lines = _terminal_size(self.stream)
            self._bar = _Tqdm(
                total=total, initial=start, file=self.stream, desc=f"{label} " if label else "", bar_format=BAR_FORMAT,
                mininterval=1.0 / per_second, miniters=1, smoothing=0, ncols=columns, nrows=lines, leave=True, unit="it",
            )  # fmt: skip

    def update(self, done: int, loss: float | None = None) -> None:
        """Redraw after ``done`` iterations (throttled; at once after :meth:`clear`)."""
        if self._bar is None:
            return
        if loss is not None:
            self._bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self._bar.update(done - self._bar.n)
        if self._cleared or done >= self.total:
            self._cleared = False
            self._bar.refresh()

    def clear(self) -> None:
        """Erase the bar's line, so a log line printed next starts at the left margin."""
        if self._bar is not None:
            self._bar.clear()
            self._cleared = True

    def close(self) -> None:
        """Draw the bar a last time and end its line, so later output starts on a new one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
