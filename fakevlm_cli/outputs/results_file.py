"""The `-o` results file: checked, locked for the whole run, and only then cut back or appended to.

Rules, each there because breaking it loses someone's work:

* **Only our own files are overwritten.** An existing file is cut to nothing only when it is empty or is an
  earlier fakevlm output (JSONL records, or our CSV header); anything else — a photo, someone's notes — is
  refused unless `--force`.
* **Never an input.** An output that is also one of the files being scanned (the same file, through a
  symbolic or hard link too) is refused before anything is opened for writing (commands/scan.py,
  `_candidates`).
* **One writer.** An exclusive advisory lock (``flock``) is held on the file from before it is read or cut
  until the run ends; a second run on the same file stops with an error and leaves it alone.
* **Resume only into fakevlm records.** `--resume` reads the file first: every complete line must be a
  fakevlm record, or the file is refused untouched. Only then is a torn last line — a run killed mid-write —
  cut off, and records appended after the last complete one.
* **Resume by file identity.** Earlier records are matched to files by resolved absolute path (raw bytes, so
  non-UTF-8 names match too) and content hash: see `ResumeIndex`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO

import orjson

from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.core.files import resume_key
from fakevlm_cli.core.record import raw_path
from fakevlm_cli.outputs.guard import RESULTS, OutputTarget

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the rest still holds
    fcntl = None

_RECORD_START = b'{"schema":'  # every JSONL line we write starts so (orjson, fixed key order)
_CSV_HEADER_START = b"path,verdict,p_fake,"
HEAD = 64 * 1024
MAX_LINE = 16 * 1024 * 1024  # a record is a few KB; a longer "line" means this is not a results file


def format_for_path(path: Path) -> str:
    """The output format a file name asks for: .csv → csv, anything else → jsonl."""
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def is_record(obj: object) -> bool:
    """A fakevlm record: an object with an integer `schema`, a string `path` and ``tool.name == "fakevlm"``."""
    return (isinstance(obj, dict) and type(obj.get("schema")) is int and isinstance(obj.get("path"), str)
            and isinstance(obj.get("tool"), dict) and obj["tool"].get("name") == "fakevlm")


def looks_like_results(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a fakevlm output (JSONL records or our CSV)."""
    if head.startswith(_CSV_HEADER_START):
        return True
    if not head.startswith(_RECORD_START):
        return False
    line, newline, _ = head.partition(b"\n")
    if not newline:
        return True  # a first record torn by a kill, or longer than the head we read
    try:
        return is_record(orjson.loads(line))
    except orjson.JSONDecodeError:
        return False


def settings_of(record: dict) -> dict[str, object]:
    """The options a judged record shows it was made with, as --resume compares them: the model (None for
    --no-model), --threshold (without a calibration), and whether it has a map (--localise) and an explanation
    (--explain)."""
    model = record.get("model")
    model_id = model.get("id") if isinstance(model, dict) else None
    threshold = (record.get("threshold") if record.get("calibration") is None else "calibrated") if model_id else None
    return {"--model": model_id if isinstance(model_id, str) else None,
            "--threshold": threshold if isinstance(threshold, (int, float, str)) else None,
            "--localise": record.get("localisation") is not None if model_id else None,
            "--explain": record.get("explanation") is not None if model_id else None}


@dataclass
class ResumeIndex:
    """What an earlier run recorded: resolved path (bytes) → the sha256 of the file's *last* record (the one
    that stands: a later record supersedes earlier ones), as a one-element set.

    None means a last record without a hash (the file was unreadable then): such a file is skipped by path. A
    file whose content differs from its last record's is judged again, and the new record says so — also when
    it went back to the content of an earlier record (A, then B, then A again: B's record stands until then).
    """

    recorded: dict[bytes, frozenset] = field(default_factory=dict)
    records: int = 0
    fake: set[tuple[bytes, str | None]] = field(default_factory=set)  # (key, sha256) last recorded as fake
    contents: set[str] = field(default_factory=set)  # every sha256 recorded, under whatever path
    # how the records that were judged were made: option name → the values seen (see `settings_of`)
    settings: dict[str, set] = field(default_factory=dict)

    def note_settings(self, obj: dict) -> None:
        if obj.get("verdict") in ("real", "fake", "unknown"):
            for name, value in settings_of(obj).items():
                self.settings.setdefault(name, set()).add(value)

    def add(self, path: str, path_bytes: str | None, sha256: str | None, verdict: object = None) -> None:
        key = resume_key(raw_path(path, path_bytes))
        self.recorded[key] = frozenset({sha256})
        self.records += 1
        if verdict == "fake":  # a later record of the same content supersedes an earlier one
            self.fake.add((key, sha256))
        else:
            self.fake.discard((key, sha256))
        if sha256 is not None:
            self.contents.add(sha256)


class ResultsFile:
    """The -o file of one scan. `check` (no side effects), then `open` (lock; resume reads), then `start`."""

    def __init__(self, path: Path, fmt: str, *, resume: bool = False, force: bool = False):
        self.path = path
        self.fmt = fmt
        self.resume = resume
        self.force = force
        self.existed = False
        self.key: tuple[int, int] | None = None  # (st_dev, st_ino) once the file exists
        self.ours = False  # empty, or a fakevlm output
        self.index = ResumeIndex()
        self._fd: int | None = None
        self._regular = True
        self._real = path  # the file a symbolic link at `path` names (opened with O_NOFOLLOW: nothing planted since)
        self._end = 0  # resume: where the complete records end
        self._newline = False  # resume: the last record is whole but lacks its newline

    @property
    def fd(self) -> int:
        """The open results file (between `open` and `start` or `abandon`)."""
        if self._fd is None:
            raise RuntimeError("the results file is not open")
        return self._fd

    # ---- before anything is opened for writing --------------------------------------------------------------
    def check(self, inputs: Iterable[str | os.PathLike] = ()) -> None:
        """Refuse, without touching anything, an output that cannot or must not be written (outputs/guard.py:
        a folder, one of `inputs`, a file that is not ours without --force, an unwritable place)."""
        path = self.path
        if self.resume and self.fmt != "jsonl":
            raise OutputError(f"{path}: --resume works with JSONL output only")
        # with --resume, what is there is read and judged line by line when the file is opened
        guard = OutputTarget(path, RESULTS, inputs=inputs, force=self.force or self.resume)
        guard.check()
        self._real = guard.real
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"{path}: cannot check the results file: {exc.strerror or exc}") from None
        self.existed, self.key = True, (st.st_dev, st.st_ino)
        self._regular = stat.S_ISREG(st.st_mode)
        if not self._regular:
            self.ours = True  # /dev/null, a FIFO, a terminal: written to, never cut or read back
            return
        try:
            with open(path, "rb") as fh:
                self.ours = looks_like_results(fh.read(HEAD)) or st.st_size == 0
        except OSError as exc:
            if self.resume:
                raise OutputError(f"{path}: cannot read it to check that it is a fakevlm results file "
                                  f"({exc.strerror or exc})") from None

    def check_not_input(self, inputs: list[str], role: str = "also an input") -> None:
        """Refuse an existing output that is one of `inputs` (same file, through any link)."""
        OutputTarget(self.path, RESULTS).check_not_input(inputs, role)

    # ---- lock and read --------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open without truncating, take the lock, and (with --resume) read and check what is there."""
        flags = (os.O_RDWR if self.resume or not self.force else os.O_WRONLY) | os.O_CREAT
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
        where = self._real
        if not self._regular:
            flags, where = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), self.path
        try:
            self._fd = os.open(where, flags, 0o666)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write results: {exc.strerror or exc}") from None
        try:
            self._lock()
            st = os.fstat(self.fd)
            self.key = (st.st_dev, st.st_ino)
            if not stat.S_ISREG(st.st_mode):
                return
            if self.resume:
                self._read_records()
            elif st.st_size and not self.force and not self._still_ours():
                raise OutputError(f"{self.path}: changed into something that is not a fakevlm results file "
                                  "while this run started: refusing to overwrite it")
        except BaseException:
            self.abandon()
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{self.path}: another fakevlm run is writing this file; wait for it to finish "
                              "or choose another -o") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OutputError(f"{self.path}: cannot lock the results file: {exc.strerror or exc}") from None
            # a file system without locks (some network mounts): go on unlocked

    def _still_ours(self) -> bool:
        try:
            return looks_like_results(os.pread(self.fd, HEAD, 0))
        except OSError:
            return False

    def _read_records(self) -> None:
        """Index the records; refuse (untouched) a file that holds anything but fakevlm records."""
        path = self.path
        offset = number = 0
        with os.fdopen(os.dup(self.fd), "rb") as fh:
            while line := fh.readline(MAX_LINE + 1):
                number += 1
                if not line.endswith(b"\n"):
                    if len(line) > MAX_LINE:
                        raise OutputError(f"{path}: line {number} is longer than {MAX_LINE // 2**20} MiB: not a "
                                          "fakevlm results file, refusing to resume into it (it is left as it is)")
                    self._torn(line, number)
                    return
                if line.strip():
                    obj = _record_or_none(line)
                    if obj is None:
                        raise OutputError(f"{path}: line {number} is not a fakevlm record: refusing to resume "
                                          "into it (it is left as it is)")
                    self._index(obj, number)
                offset += len(line)
                self._end = offset

    def _torn(self, tail: bytes, number: int) -> None:
        """The last line has no newline: a run killed mid-write, if the file is ours; else refuse."""
        if not self.index.records and not tail.startswith(_RECORD_START):
            if not tail.strip():
                return
            raise OutputError(f"{self.path}: holds no fakevlm records: refusing to resume into it "
                              "(it is left as it is)")
        obj = _record_or_none(tail)
        if obj is not None:  # a whole record that lost only its newline: keep it
            self._index(obj, number)
            self._end += len(tail)
            self._newline = True
        # else: a torn record, cut off when the run starts; its file is judged again

    def _index(self, obj: dict, number: int) -> None:
        sha, path_bytes = obj.get("sha256"), obj.get("path_bytes")
        if not (sha is None or isinstance(sha, str)) or not (path_bytes is None or isinstance(path_bytes, str)):
            raise OutputError(f"{self.path}: line {number}: sha256 and path_bytes must be strings or null: "
                              "refusing to resume into it (it is left as it is)")
        self.index.note_settings(obj)
        try:
            self.index.add(obj["path"], path_bytes, sha, obj.get("verdict"))
        except ValueError:
            raise OutputError(f"{self.path}: line {number}: path_bytes is not base64: refusing to resume into "
                              "it (it is left as it is)") from None

    # ---- write ----------------------------------------------------------------------------------------------
    def start(self) -> IO[bytes]:
        """Cut the file back (to nothing, or after --resume to its last complete record) and return the stream.

        Called after the model has loaded, so a failed load never costs earlier results.
        """
        fd, self._fd = self.fd, None
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                end = self._end if self.resume else 0
                os.ftruncate(fd, end)
                os.lseek(fd, end, os.SEEK_SET)
                if self._newline:
                    os.write(fd, b"\n")
            return os.fdopen(fd, "wb")
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot write results: {exc.strerror or exc}") from None

    def abandon(self) -> None:
        """Close without writing (the lock goes with it); a file this run created and left empty is removed."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            empty = stat.S_ISREG(os.fstat(fd).st_mode) and os.fstat(fd).st_size == 0
        except OSError:
            empty = False
        os.close(fd)
        if empty and not self.existed:
            with contextlib.suppress(OSError):
                os.unlink(self._real)


def _record_or_none(line: bytes) -> dict | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if is_record(obj) else None
