"""Reading a local file within bounds: opened without blocking (a FIFO swapped in cannot hang a loader thread),
its size from fstat, its head, the whole of it no bigger than said, its hash in pieces; and the memory budget the
loader threads share for what they hold at once."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

from fakevlm_cli.core.errors import ImageError


def default_max_memory() -> int:
    """--max-memory's default: a quarter of the machine's memory, and at least 1 GiB."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = 8 * 2**30
    return max(physical // 4, 2**30)


class MemoryBudget:
    """Bytes the loader threads may hold at once for files being read and decoded.

    A thread waits until its share fits beside the others'; a share bigger than the whole budget is refused
    by the caller before it asks, so the peak stays near the budget however many loader threads there are.
    """

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.peak = 0  # the most held at once, for tests and benchmarks
        self.waiting = 0  # threads waiting for room
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, amount: int):
        with self._cond:
            while self.used and self.used + amount > self.total:
                self.waiting += 1
                self._cond.notify_all()  # lets an observer (a test) see the new waiter
                self._cond.wait()
                self.waiting -= 1
            self.used += amount
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= amount
                self._cond.notify_all()


class OpenFile:
    """A regular file opened for reading: its size, its first bytes, and bounded ways to read the rest.

    Opened non-blocking and checked with fstat, so a file swapped for a FIFO after discovery cannot hang us.
    OS errors become one-line `ImageError`s.
    """

    HEAD = 4096

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> OpenFile:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise ImageError("broken symbolic link" if self.path.is_symlink() else "no such file") from None
        except PermissionError:
            raise ImageError("permission denied") from None
        except OSError as exc:
            raise ImageError(f"cannot open: {exc.strerror or exc}") from None
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError("not a regular file")
            self.size = st.st_size
            self.head = self._pread(min(self.HEAD, self.size), 0)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def _pread(self, n: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except OSError as exc:
            raise ImageError(f"cannot read: {exc.strerror or exc}") from None

    def reader(self) -> io.BufferedReader:
        """A file object over the same descriptor (not closing it), at the start."""
        fh = os.fdopen(self.fd, "rb", closefd=False)
        fh.seek(0)
        return fh

    def read_all(self) -> bytes:
        """The whole file, as big as fstat said it was; a file that grew since is an error, not a surprise."""
        try:
            with self.reader() as fh:
                data = fh.read(self.size + 1)
        except OSError as exc:
            raise ImageError(f"cannot read: {exc.strerror or exc}") from None
        if len(data) > self.size:
            raise ImageError("the file grew while it was being read")
        return data

    def sha256(self) -> str:
        """The hash of the whole file, read in 1 MiB pieces (memory stays flat whatever its size)."""
        digest, offset = hashlib.sha256(), 0
        while piece := self._pread(1 << 20, offset):
            digest.update(piece)
            offset += len(piece)
        return digest.hexdigest()
