"""A terminal progress bar for training, drawn only where a person watches.

When stderr is a terminal (``python -m pipeline train`` by hand) one line is redrawn in
place: iterations done, percentage, loss, iterations per second and time left. When stderr
is a file (a Snakemake rule's log, a SLURM output file) nothing is drawn, so the log keeps
only the plain per-epoch lines the training loop logs.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``1h02m``, ``3m12s`` or ``45s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressBar:
    """Progress of iterations ``start..total``, redrawn at most ``per_second`` times a second.

    Args:
        total: iterations of the whole training.
        start: iterations already done (a resumed run starts part-way).
        stream: where to draw; default stderr. Nothing is drawn unless it is a terminal,
            or ``force`` is set.
        label: text in front of the bar (experiment and fold).
    """

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, label: str = "", force: bool = False, per_second: float = 4.0) -> None:
        self.total, self.start, self.label = total, start, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 1.0 / per_second
        self._tic = time.perf_counter()
        self._drawn = -float("inf")

    def line(self, done: int, loss: float | None = None, width: int = 24) -> str:
        """The bar's text after ``done`` iterations."""
        fraction = done / self.total if self.total else 1.0
        filled = int(round(width * fraction))
        elapsed = time.perf_counter() - self._tic
        rate = (done - self.start) / elapsed if elapsed > 0 and done > self.start else 0.0
        left = (self.total - done) / rate if rate else float("nan")
        parts = [f"{self.label} " if self.label else "", f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {100 * fraction:3.0f}%"]
        if loss is not None:
            parts.append(f" loss {loss:.4f}")
        if rate:
            parts.append(f" {rate:.2f} it/s, {format_seconds(left)} left")
        return "".join(parts)

    def update(self, done: int, loss: float | None = None) -> None:
        """Redraw after ``done`` iterations (throttled; always at the last one)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._drawn < self.interval and done < self.total:
            return
        self._drawn = now
        self.stream.write("\r\033[K" + self.line(done, loss))
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar's line, so a log line printed next starts at the left margin."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = -float("inf")

    def close(self) -> None:
        """End the bar's line so later output starts on a new one."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
