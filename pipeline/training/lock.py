"""One trainer per fold at a time, with a lock that dies with its process.

A second ``train`` of the same fold - the rerun of a workflow whose Snakemake was killed
while its training went on, or a duplicate started by hand - would resume from the same
checkpoint as the first; the first would finish and move the checkpoint away, the second
would crash, and Snakemake would then delete the finished outputs. So a trainer holds an
exclusive ``fcntl.flock`` on ``<fold dir>/work/train.lock`` from before it reads the
checkpoint until its outputs are in place. The kernel drops the lock when the process ends,
however it ends (SIGKILL included), so it is never stale. The file names the holder (pid,
host, start) for the message of a trainer that waits.

A trainer that had to wait, or finds the fold finished (``best.pt``, ``last.pt`` and
``log.tsv`` in the fold folder and no ``work/resume.pt``), does not train again: its job
succeeds, and Snakemake keeps the outputs. Data-parallel runs lock on the main rank; the
other ranks wait until it holds the lock (no collective runs meanwhile, so none times out).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import torch.distributed as dist

from pipeline.training import distributed

log = logging.getLogger(__name__)

LOCK_FILE = "train.lock"
#: The outputs of a finished fold (``work/resume.pt`` has become ``last.pt``).
OUTPUTS = ("best.pt", "last.pt", "log.tsv")
#: Seconds between two looks at the lock file by the other ranks of a data-parallel run.
POLL_SECONDS = 0.5
#: Descriptors of the locks this process holds: a forked child (a data loader worker)
#: closes its copies, so the lock ends with the trainer, not with its last child.
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def identity() -> str:
    """This process as the lock file names it: ``pid=<pid> host=<host>``."""
    return f"pid={os.getpid()} host={socket.gethostname()}"


def fold_finished(fold_dir: str | os.PathLike[str]) -> bool:
    """Whether ``fold_dir`` holds a finished training: its outputs and no resume state."""
    folder = Path(fold_dir)
    return all((folder / name).is_file() for name in OUTPUTS) and not (folder / "work" / "resume.pt").exists()


class FoldLock:
    """The exclusive lock on ``<work>/train.lock`` (blocking; see the module docstring)."""

    def __init__(self, work: str | os.PathLike[str], label: str) -> None:
        self.path = Path(work) / LOCK_FILE
        self.label = label
        self.waited = False
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds (or last held) the lock, as its file says."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return text or "a process that has not written its name yet"

    def acquire(self) -> None:
        """Take the lock, waiting for a trainer that holds it (logged with its pid and host).

        Where the filesystem has no ``flock``, training goes on unlocked with a warning.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s: another training of this fold is running (%s); waiting for it to end (lock %s)", self.label, self.holder(), self.path)
                tic = time.monotonic()
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.waited = True
                log.info("%s: the other training ended after %.0f s of waiting", self.label, time.monotonic() - tic)
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            log.warning(
                "%s: %s cannot be locked (%s): a second training of this fold at the same time would not be stopped", self.label, self.path, err.strerror
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{identity()} started={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
        self._fd = fd
        _HELD.add(fd)

    def release(self) -> None:
        """Clear the holder's name and drop the lock (the file stays: removing it would race)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.discard(fd)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> FoldLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _broadcast(context: distributed.Context, value: object) -> object:
    """``value`` of the main rank on every rank (itself in one process)."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _wait_for_main(path: Path, main: str) -> None:
    """On a rank other than the main one: wait until the lock file names the main rank."""
    logged = False
    while True:
        try:
            if path.read_text(encoding="utf-8").startswith(main + " "):
                return
        except OSError:
            pass
        if not logged:
            log.info("waiting for the main rank (%s) to take %s", main, path)
            logged = True
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def fold_lock(fold_dir: str | os.PathLike[str], label: str, context: distributed.Context) -> Iterator[bool]:
    """Hold the fold's lock (on the main rank) while the block runs; yield whether the fold
    is already finished, in which case the caller must not train it again."""
    work = Path(fold_dir) / "work"
    main = str(_broadcast(context, identity()))  # before anyone waits: no collective can time out
    lock = FoldLock(work, label) if context.is_main else None
    if lock is not None:
        lock.acquire()
    else:
        _wait_for_main(work / LOCK_FILE, main)
    try:
        finished = bool(_broadcast(context, fold_finished(fold_dir) if context.is_main else None))
        if finished and context.is_main:
            log.info("%s: already trained (%s in %s, no work/resume.pt); not training it again", label, ", ".join(OUTPUTS), fold_dir)
        yield finished
    finally:
        if lock is not None:
            lock.release()
