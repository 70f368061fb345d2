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

The work is done in three modules below this one: `pathlist` (reading ``--from-file`` lists), `globs`
(include/exclude patterns) and `walk` (the walk itself, `Candidate` and `DiscoveryStats`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from fakevlm_cli.media.globs import Globs
from fakevlm_cli.media.pathlist import MAX_PATH_BYTES, read_path_list
from fakevlm_cli.media.walk import Candidate, DiscoveryStats, Walker

__all__ = ["MAX_PATH_BYTES", "Candidate", "DiscoveryStats", "discover", "read_path_list"]


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
    walker = Walker(
        max_depth=max_depth,
        include=Globs(include),
        exclude=Globs(exclude),
        hidden=hidden,
        follow_symlinks=follow_symlinks,
        stats=stats if stats is not None else DiscoveryStats(),
        avoid=avoid if avoid is not None else set(),
    )
    return walker.run(paths)
