"""Which files a scan looks at.

`discover` turns the paths a user gives (files, directories, lines of a path list) into a stream
of candidate regular files. Whether a candidate is an image is decided later, by its content; this
module only decides *which* files to look at, and it never opens one (opening a FIFO would hang).
It is lazy, so ``fakevlm scan /huge/tree`` starts working at once.

Rules (the docstring of `discover` gives the reasons):

* **Order** - arguments in the order given; each directory is walked depth first with its entries
  sorted by name (code point order, files and subdirectories interleaved). Equivalently, the files
  of one directory argument come out sorted by their tuple of path components, so ``a/z.png``
  comes before ``a-b.png`` and ``a.png``. The same tree always gives the same order.
* **Depth** - like ``find -maxdepth``: 0 = only the paths named, 1 = a directory's direct
  children, 2 = grandchildren too, None = no limit.
* **Explicit wins** - a path named by the user is never filtered: hidden names, symlinks and
  include/exclude globs only apply to what a directory walk finds.
* **Globs** - gitignore patterns, matched against the path relative to the walked directory (``/``
  separated; a pattern without ``/`` matches the name at any depth); exclude wins over include; an
  excluded directory is not descended into.
* **Once per file** - a file reached twice (two arguments, a hard link, a followed symlink) is
  yielded once, at its first position, by the ``(st_dev, st_ino)`` of the real file.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from fakevlm_cli.core.files import is_uri

if TYPE_CHECKING:
    import pathspec

__all__ = ["Candidate", "DiscoveryStats", "discover", "read_path_list"]

# PATH_MAX on Linux: no longer path can be opened, so a longer entry of a path list is not a path.
MAX_PATH_BYTES = 4096


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


def read_path_list(stream: IO[bytes] | IO[str], nul: bool = False, *, max_len: int = MAX_PATH_BYTES,
                   warn: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield the paths listed in `stream` (``--from-file FILE`` or ``-`` for stdin), lazily.

    Newline mode: one path a line; a trailing ``\\r`` is dropped (CRLF files from Windows) and blank
    or whitespace-only lines are skipped; anything else, leading and trailing spaces included, is
    kept exactly. NUL mode (``-0``, for ``find -print0``): records end with ``\\0``, only empty
    records are skipped, and names may contain newlines. Prefer a binary stream (``sys.stdin.buffer``):
    bytes that are not valid UTF-8 then survive as `os.fsdecode` surrogates and map back to the same
    file, and the first paths are yielded while the producer is still writing.

    The stream is read in pieces and each entry joined once, so time is linear in its size, and an entry
    longer than `max_len` (PATH_MAX: it cannot be a path) is skipped with a `warn` — memory stays bounded
    even on a list without separators, or ``--from-file /dev/zero``.
    """
    binary = isinstance(stream.read(0), bytes)
    what = "entry" if nul else "line"

    def too_long(index: int) -> None:
        if warn is not None:
            warn(f"{what} {index} is longer than {max_len} bytes: not a path, skipped")

    sep = "\0" if nul else "\n"
    limit = max_len if nul else max_len + 1  # room for a CR before the newline
    decode = os.fsdecode if binary else str
    for entry in _bounded_entries(stream, sep.encode() if binary else sep, limit, too_long):
        if not nul:
            entry = entry.removesuffix(b"\r" if binary else "\r")
            if not entry.strip():
                continue  # blank or whitespace-only line
        if entry:
            yield decode(entry)


def _bounded_entries(stream: IO[bytes] | IO[str], sep: Any, limit: int,
                     too_long: Callable[[int], None]) -> Iterator[Any]:
    """The `sep`-separated entries of `stream` (bytes or str, as the stream reads), lazily; an entry longer
    than `limit` is not kept: ``too_long(its 1-based number)`` is called instead, once, as soon as it is seen.

    The stream is read in 64 KiB pieces (``read1`` on a binary stream: what the pipe holds now, instead of
    waiting for a full buffer), each split once, and an entry joined once, so time is linear in the size.
    """
    empty = stream.read(0)
    read = (getattr(stream, "read1", None) if isinstance(empty, bytes) else None) or stream.read
    pending: list = []  # the pieces of the entry being read (empty once it is known to be too long)
    length = number = 0  # the pending entry's length so far; how many entries were finished before it
    while chunk := read(65536):
        parts = chunk.split(sep)
        head = parts[0]
        if length <= limit:
            pending.append(head)
        length += len(head)
        if length > limit and pending:
            pending = []
            too_long(number + 1)
        if len(parts) == 1:
            continue  # the entry goes on in the next chunk
        if length <= limit:
            yield empty.join(pending)
        # Whole entries inside this chunk; empty ones (a run of separators) are skipped at C speed.
        middle = parts[1:-1]
        for index, entry in compress(enumerate(middle, number + 2), middle):
            if len(entry) > limit:
                too_long(index)
            else:
                yield entry
        number += len(parts) - 1
        pending, length = [parts[-1]], len(parts[-1])
        if length > limit:
            pending = []
            too_long(number + 1)
    if length <= limit:
        yield empty.join(pending)


def discover(
    paths: Iterable[str | os.PathLike],
    *,
    max_depth: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    hidden: bool = False,
    follow_symlinks: bool = False,
    stats: DiscoveryStats | None = None,
    avoid: set[tuple[int, int]] | None = None,
) -> Iterator[Candidate]:
    """Yield the regular files to scan under `paths`, in a deterministic order, each once.

    `paths` is consumed lazily (it may be `read_path_list` over stdin). Bad arguments (negative
    `max_depth`, an empty glob) raise `ValueError` here, before anything is yielded.

    Explicit paths (the items of `paths`) are followed if they are symlinks and never filtered by
    hidden/glob rules: the user asked for them. A directory is walked; a regular file is yielded;
    anything else is yielded with `Candidate.error` set and counted (in ``stats.missing`` when it
    cannot be stat'ed, in ``stats.not_regular`` for a FIFO, socket or device), so nothing the user
    named disappears silently. The CLI maps ``-`` / ``--from-file`` to `read_path_list` itself.

    Walking: each directory is listed once with `os.scandir` and its names sorted (one listing
    must be read whole to sort it, but subdirectories are listed only when reached, so a deep tree
    yields at once). File types come from the directory listing, so skipped entries cost no
    ``stat``; a yielded file costs one ``lstat`` (the dedupe key needs ``st_dev``), a directory
    one. Then, per entry:

    * hidden: a name starting with ``.`` is skipped (a directory is not descended) unless `hidden`.
    * symlinks: skipped unless `follow_symlinks`; when followed, a symlink to a directory that is
      being walked (an ancestor) is a loop, counted and not entered, so walking always terminates.
      A directory reached through a symlink that was already walked (as deep) is skipped as a
      duplicate, which keeps symlink farms linear instead of exponential; the first route to it
      decides which relative paths the globs see.
    * depth: a directory argument is depth 0, its entries depth 1 and so on; entries deeper than
      `max_depth` are neither yielded nor listed.
    * globs: `include` / `exclude` patterns are gitignore patterns (pathspec's implementation of
      git's documented rules): ``*`` and ``?`` do not cross ``/``, ``[abc]`` / ``[!abc]`` are
      classes, ``**`` as a whole component spans any number of directories, a backslash escapes the
      next character, and matching is case-sensitive. They are matched against the entry's path
      relative to the walked directory. A pattern with no ``/`` but a trailing one matches at any
      depth (that is, against the name), so ``*.png`` works at any depth while ``raw/**`` means the
      top-level ``raw`` only (``**/raw/**`` or plain ``raw`` for any level). A leading ``/`` anchors a
      pattern to the walked directory; a trailing ``/`` makes it match directories only. A pattern
      that matches a directory matches everything below it: an excluded directory (``raw``,
      ``cache/``, or ``raw`` for ``raw/**``) is pruned, and an include pattern naming a directory
      selects the files below it. Include patterns never prune: directories are descended unless
      excluded. Exclude wins over include. Unlike a .gitignore line, a pattern is taken literally:
      a leading ``#`` or ``!`` and trailing spaces are part of it.
    * FIFOs, sockets and devices are counted in ``stats.not_regular`` and never opened.
    * dedupe: a regular file whose ``(st_dev, st_ino)`` was already yielded (hard link, second
      argument, followed symlink) is counted in ``stats.duplicates``; the first path wins.
    * a directory that cannot be listed is recorded in ``stats.unreadable_dirs`` and skipped.
    * avoid: ``(st_dev, st_ino)`` of files never to yield (the scan's own results file, which may
      be inside a folder being scanned); each path at which one is met goes to ``stats.outputs``.
      The set is read as the walk goes, so a key added after this call still counts.
    """
    if max_depth is not None and max_depth < 0:
        raise ValueError(f"max_depth must be 0 or more, not {max_depth}")
    for globs in (include, exclude):
        if isinstance(globs, (str, bytes)):
            raise TypeError("include/exclude take a sequence of patterns, not a single string")
    walker = _Walker(
        max_depth=max_depth,
        include=_Globs(include),
        exclude=_Globs(exclude),
        hidden=hidden,
        follow_symlinks=follow_symlinks,
        stats=stats if stats is not None else DiscoveryStats(),
        avoid=avoid if avoid is not None else set(),
    )
    return walker.run(paths)


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


class _Walker:
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


class _Globs:
    """The include or the exclude patterns of one `discover` call, in gitignore syntax (see `discover`).

    Matching is pathspec's gitignore implementation, given each pattern as a gitignore line that means it
    literally (`_gitignore_line`) and each entry as its path relative to the walked directory, with a
    trailing ``/`` for a directory. A pattern without a ``/`` (other than a trailing one) matches at any
    depth, which is the same as matching the entry's name; a pattern that matches a directory matches
    everything below it, so ``raw/**`` and ``raw`` both prune the directory ``raw``.
    """

    def __init__(self, patterns: Sequence[str]):
        self._spec: pathspec.PathSpec | None = None
        lines = []
        for pattern in patterns:
            if not pattern.strip("/"):
                raise ValueError(f"empty glob pattern: {pattern!r}")
            lines.append(_gitignore_line(pattern))
        if not lines:
            return
        import pathspec  # only when there are globs: it adds ~10 ms to every start

        with warnings.catch_warnings():
            # "[[]" is a valid class; Python's re only warns that it may change meaning one day.
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self._spec = pathspec.PathSpec.from_lines("gitignore", lines)
            except (ValueError, re.error):  # pathspec's GitIgnorePatternError (an escaped "/": a\/b), or a
                for pattern, line in zip(patterns, lines, strict=True):  # range Python's re refuses ([b-a])
                    try:
                        pathspec.PathSpec.from_lines("gitignore", [line])
                    except (ValueError, re.error) as exc:  # re's msg: its "at position N" is in the regex
                        raise ValueError(f"invalid glob pattern {pattern!r}: {getattr(exc, 'msg', exc)}") from None
                raise

    def __bool__(self) -> bool:
        return self._spec is not None

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self._spec is None:
            return False
        return self._spec.match_file(rel.replace("\n", "\0") + ("/" if is_dir else ""))


def _gitignore_line(pattern: str) -> str:
    """`pattern` as a gitignore line that means it literally.

    A file name may hold a newline, which pathspec's regular expressions (``.``, ``$``) treat as a line
    end; no name can hold a NUL, so newlines become NULs here and in the paths matched (`_Globs.matches`).
    A command-line pattern is not a line of a .gitignore file, so a leading ``#`` or ``!`` is escaped (not a
    comment, not a negation), trailing spaces are escaped (kept, not stripped), and a lone trailing
    backslash matches itself.
    """
    tokens = re.findall(r"\\.|.", pattern.replace("\n", "\0"), re.DOTALL)
    if tokens[0] in ("#", "!"):
        tokens[0] = "\\" + tokens[0]
    if tokens[-1] == "\\":
        tokens[-1] = "\\\\"
    end = len(tokens)
    while end and tokens[end - 1] == " ":
        end -= 1
    return "".join(tokens[:end]) + "\\ " * (len(tokens) - end)
