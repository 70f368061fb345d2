"""Walking the paths of one `discover` call: what it yields (`Candidate`), what it counts (`DiscoveryStats`),
and the walker itself (explicit paths, object-store URIs, directories listed once and sorted, depth, hidden
names, symlinks and loops, globs, de-duplication by ``(st_dev, st_ino)``). The rules are `discover`'s."""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from fakevlm_cli.core.files import is_uri


@dataclass(frozen=True)
class Candidate:
    """One file for the scan to look at.

    `path` is joined from the user's argument and the names found below it, never resolved, so the
    record shows the path the user recognises (``photos/link/a.png``, not the link target).
    `explicit` is True when the user named the path (an argument or a line of a path list) rather
    than a directory walk finding it. `error` is set only on explicit paths that cannot be scanned
    (``no such file or directory``, ``not a regular file (fifo)``...): the scan should turn it into
    an error record without opening the path, so a typo shows up in the output instead of vanishing.
    """

    path: Path | str  # a str only for an object-store URI (``s3://bucket/key``, objects.py)
    explicit: bool
    error: str | None = None
    frame_index: int | None = None  # a video's frame to judge as an image (DD-VQA), instead of sampling it


@dataclass
class DiscoveryStats:
    """What discovery skipped, for the scan summary. Pass one to `discover` and read it afterwards.

    Counters are per skipped entry; a skipped directory counts once, its contents are not looked at.

    * hidden: walk-found names starting with ``.`` (without ``hidden=True``).
    * symlinks: walk-found symlinks not followed: all of them without ``follow_symlinks``; with it,
      the dangling ones.
    * excluded: entries dropped by the include/exclude globs (pruned directories count once).
    * duplicates: files (or, through a followed symlink, whole directories) already yielded.
    * not_regular: FIFOs, sockets and devices, which are never opened.
    * loops: symlinks leading back into a directory being walked (never followed round).
    * missing: ``"path: reason"`` for explicit paths that cannot be examined (no such file,
      broken symlink, permission denied); each is also yielded as a `Candidate` with `error`.
    * unreadable_dirs: ``"path: reason"`` for directories that could not be listed.
    * outputs: paths at which the results file itself (`discover`'s `avoid`) was met, and not yielded.
    """

    hidden: int = 0
    symlinks: int = 0
    excluded: int = 0
    duplicates: int = 0
    not_regular: int = 0
    loops: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


# Entry kinds, read from the directory listing (d_type) so that classifying costs no stat.
_DIR, _FILE, _LINK, _OTHER = range(4)


class _Dir(NamedTuple):
    """A directory on the walk's stack: where it is, its path relative to the walked argument, its depth,
    its ``(st_dev, st_ino)`` and the iterator over its sorted entries."""

    path: str
    rel: str
    depth: int
    key: tuple[int, int]
    entries: Iterator[tuple[str, int]]


class Walker:
    """The state one `discover` call shares across its arguments: options, stats, seen files."""

    def __init__(self, *, max_depth, include, exclude, hidden, follow_symlinks, stats, avoid):
        self.max_depth = max_depth
        self.include = include
        self.exclude = exclude
        self.hidden = hidden
        self.follow = follow_symlinks
        self.stats = stats
        self.avoid = avoid
        self.seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of files already yielded
        self.seen_errors: set[str] = set()  # explicit paths already yielded with an error
        self.seen_uris: set[str] = set()  # object-store URIs already yielded
        self.walked: dict[tuple[int, int], float] = {}  # directory -> depth budget it was walked with

    def run(self, paths: Iterable[str | os.PathLike]) -> Iterator[Candidate]:
        for arg in paths:
            yield from self._explicit(os.fsdecode(arg))

    def _explicit(self, text: str) -> Iterator[Candidate]:
        if not text:
            self.stats.missing.append("'': empty path")
            return
        if is_uri(text):
            yield from self._remote(text)
            return
        try:
            st = os.stat(text)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and os.path.islink(text):
                reason = "broken symbolic link"
            else:
                reason = _reason(exc)
            yield from self._explicit_error(text, reason)
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk(text, (st.st_dev, st.st_ino))
        elif stat.S_ISREG(st.st_mode):
            if self._first_time(st, text):
                yield Candidate(Path(text), explicit=True)
        elif self._first_time(st, text):
            self.stats.not_regular += 1
            yield Candidate(Path(text), True, f"not a regular file ({_type_name(st.st_mode)})")

    def _remote(self, uri: str) -> Iterator[Candidate]:
        """An object-store URI: the object itself, or every object under a prefix (a "folder"), sorted, with
        the walk's rules on what the listing finds: hidden names, --max-depth and the globs."""
        from fakevlm_cli.core.errors import ImageError
        from fakevlm_cli.media.objects import listing, relative

        try:
            folder, found = listing(uri)
        except ImageError as exc:
            yield from self._explicit_error(uri, str(exc))
            return
        if not folder:
            if uri not in self.seen_uris:
                self.seen_uris.add(uri)
                yield Candidate(uri, explicit=True)
            else:
                self.stats.duplicates += 1
            return
        for found_uri in found:
            rel = relative(found_uri, uri)
            parts = rel.split("/")
            if not self.hidden and any(part.startswith(".") for part in parts):
                self.stats.hidden += 1
            elif self.max_depth is not None and len(parts) > self.max_depth:
                continue
            elif (self.include and not self.include.matches(rel, is_dir=False)) or \
                    self.exclude.matches(rel, is_dir=False):
                self.stats.excluded += 1
            elif found_uri in self.seen_uris:
                self.stats.duplicates += 1
            else:
                self.seen_uris.add(found_uri)
                yield Candidate(found_uri, explicit=False)

    def _explicit_error(self, text: str, reason: str) -> Iterator[Candidate]:
        key = text if is_uri(text) else str(Path(text))
        if key in self.seen_errors:
            self.stats.duplicates += 1
            return
        self.seen_errors.add(key)
        self.stats.missing.append(f"{text}: {reason}")
        yield Candidate(text if is_uri(text) else Path(text), explicit=True, error=reason)

    def _first_time(self, st: os.stat_result, path: str) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self.avoid:
            self.stats.outputs.append(path)
            return False
        if key in self.seen:
            self.stats.duplicates += 1
            return False
        self.seen.add(key)
        return True

    def _budget(self, depth: int) -> float:
        """How many levels below a directory at `depth` may still be walked."""
        return math.inf if self.max_depth is None else self.max_depth - depth

    def _walk(self, root: str, root_key: tuple[int, int]) -> Iterator[Candidate]:
        if self.max_depth == 0:
            return
        self.walked[root_key] = max(self._budget(0), self.walked.get(root_key, -1))
        ancestors = {root_key}
        # An explicit stack instead of recursion: no recursion limit on deep trees, and the
        # ancestor set (loop detection) is exactly the directories on the stack.
        stack = [_Dir(root, "", 0, root_key, self._list(root))]
        while stack:
            parent = stack[-1]
            item = next(parent.entries, None)
            if item is None:
                stack.pop()
                ancestors.discard(parent.key)
                continue
            name, kind = item
            if not self.hidden and name.startswith("."):
                self.stats.hidden += 1
                continue
            path = os.path.join(parent.path, name)
            rel = f"{parent.rel}/{name}" if parent.rel else name
            link_st = None
            if kind == _LINK:
                link_st = self._follow(path)
                if link_st is None:
                    continue
                kind = _kind_of_mode(link_st.st_mode)
            if kind == _DIR:
                child = self._enter(path, rel, parent.depth + 1, link_st, ancestors)
                if child is not None:
                    ancestors.add(child.key)
                    stack.append(child)
            elif (candidate := self._file(path, rel, kind, link_st)) is not None:
                yield candidate

    def _follow(self, path: str) -> os.stat_result | None:
        """The target's stat of a symlink the walk found, or None when it is not followed (and counted)."""
        if not self.follow:
            self.stats.symlinks += 1
            return None
        try:
            return os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.stats.loops += 1
            else:
                self.stats.symlinks += 1
            return None

    def _enter(self, path: str, rel: str, depth: int, link_st: os.stat_result | None,
               ancestors: set[tuple[int, int]]) -> _Dir | None:
        """The directory to walk next, or None when it is skipped: excluded, too deep, unreadable, a
        loop back to an ancestor, or (reached through a symlink) already walked with as much depth left."""
        stats = self.stats
        if self.exclude.matches(rel, is_dir=True):
            stats.excluded += 1
            return None
        budget = self._budget(depth)
        if budget <= 0:
            return None
        try:
            st = link_st or os.lstat(path)
        except OSError as exc:
            stats.unreadable_dirs.append(f"{path}: {_reason(exc)}")
            return None
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            stats.loops += 1
            return None
        if link_st is not None and self.walked.get(key, -1) >= budget:
            stats.duplicates += 1
            return None
        self.walked[key] = max(budget, self.walked.get(key, -1))
        return _Dir(path, rel, depth, key, self._list(path))

    def _file(self, path: str, rel: str, kind: int, link_st: os.stat_result | None) -> Candidate | None:
        """The candidate for a non-directory the walk found, or None when it is skipped (and counted)."""
        stats = self.stats
        if (self.include and not self.include.matches(rel, is_dir=False)) or self.exclude.matches(rel, is_dir=False):
            stats.excluded += 1
            return None
        if kind != _FILE:
            stats.not_regular += 1
            return None
        st = link_st
        if st is None:
            try:
                st = os.lstat(path)
            except OSError:
                # Vanished or unreadable since the listing: let the scan report why.
                return Candidate(Path(path), explicit=False)
        return Candidate(Path(path), explicit=False) if self._first_time(st, path) else None

    def _list(self, dirpath: str) -> Iterator[tuple[str, int]]:
        """The sorted ``(name, kind)`` entries of a directory; a failure is recorded, not raised.

        Only names and types are kept (not `os.DirEntry` objects), which halves the memory a
        directory of millions of files needs while it is being sorted.
        """
        items = []
        try:
            with os.scandir(dirpath) as it:
                for entry in it:
                    items.append((entry.name, _kind_of_entry(entry)))
        except OSError as exc:
            # Keep what was listed before a mid-listing error: it is still worth scanning.
            self.stats.unreadable_dirs.append(f"{dirpath}: {_reason(exc)}")
        items.sort()
        return iter(items)


def _kind_of_entry(entry: os.DirEntry) -> int:
    try:
        if entry.is_symlink():
            return _LINK
        if entry.is_dir(follow_symlinks=False):
            return _DIR
        if entry.is_file(follow_symlinks=False):
            return _FILE
    except OSError:
        return _FILE  # type unknown and unstat-able: let the scan try it and report the error
    return _OTHER


def _kind_of_mode(mode: int) -> int:
    return _DIR if stat.S_ISDIR(mode) else _FILE if stat.S_ISREG(mode) else _OTHER


def _type_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown type"


def _reason(exc: OSError) -> str:
    """A short, lower-case, locale-free reason for an `OSError`."""
    known = {
        errno.ENOENT: "no such file or directory",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ELOOP: "too many levels of symbolic links",
        errno.ENOTDIR: "not a directory",
    }
    return known.get(exc.errno or 0) or (exc.strerror or type(exc).__name__).lower()

