"""One answer to "may fakevlm write here?", for every file it writes (docs/development.md, the layout table).

`OutputTarget(path, kind, inputs=…, force=…).check()` runs before any work and refuses, with one line naming
the path and the problem, the same way for every kind of output:

* a folder;
* one of the inputs, by any path to it (a symbolic or hard link too) — never, --force or not;
* a device, FIFO or socket, for a file that is written whole and renamed into place (the node would be
  replaced); a stream (the results file, eval's predictions) is written *into* such a node (``-o /dev/null``);
* an existing file that is not one fakevlm wrote (`Kind.is_ours`), unless --force;
* a folder that does not exist, or one that cannot be written ("read-only file system" when the mount is, else
  "permission denied").

A symbolic link the user names is taken as the file it names: every rule applies to that file, and it is what
gets written (the link stays a link). `replace` writes a file whole: into a new temporary file beside it
(created with O_EXCL | O_NOFOLLOW, so nothing planted there is followed), then `os.replace`, which replaces
whatever is at the name — a link planted since the check is replaced, never written through. `open_stream`
opens a stream with O_NOFOLLOW. Files whose names fakevlm chooses (scan --heatmaps) never go through a link at
all: see outputs/heatmaps.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.core.files import file_key

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class Kind:
    """What one output is: its name in messages, what counts as ours, and how it is written."""

    noun: str  # "results file", "report", "heatmap" …: "cannot write the {noun}"
    mine: str  # what an existing file must be to be replaced without --force: "a fakevlm report"
    is_ours: Callable[[Path], bool]  # for an existing, non-empty regular file (may raise OSError)
    stream: bool = False  # written in place as it comes (a device or FIFO is written into), not renamed over


def why_not(exc: OSError) -> str:
    return str(exc.strerror or exc)


def why_not_writable(folder: Path) -> str:
    """A read-only file system (a mounted evidence disk, say) is said as such, not as a permission problem."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return "permission denied"


@dataclass
class OutputTarget:
    """One output file: `check` before any work (no side effects), then `replace` or `open_stream`."""

    path: Path
    kind: Kind
    inputs: Iterable[str | os.PathLike] = ()
    force: bool = False
    role: str = "also an input"  # "is {role} ({input})"
    # False for a name fakevlm chose (scan --heatmaps): a symbolic link there is refused, not followed, and
    # --force has no say (what is there was put there by someone else)
    user_named: bool = True
    real: Path = field(init=False)  # the file written: `path`, or what a symbolic link at `path` names

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.inputs = list(self.inputs)
        linked = self.user_named and self.path.is_symlink()
        self.real = Path(os.path.realpath(self.path)) if linked else self.path

    def check(self) -> None:
        """Refuse, without touching anything, an output that cannot or must not be written (OutputError)."""
        if not self.user_named and self.path.is_symlink():
            raise OutputError(f"{self.path}: is a symbolic link: refusing to write the {self.kind.noun} through it")
        st = self._stat()
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{self.path}: is a folder, not a {self.kind.noun}")
        self.check_not_input(self.inputs, self.role)
        if st is not None and not stat.S_ISREG(st.st_mode):
            if not self.kind.stream:  # /dev/null, a FIFO: renaming over it would replace the node itself
                raise OutputError(f"{self.path}: is not a regular file (a device or a pipe): refusing to replace it")
            return  # written into, never cut or renamed over
        if st is not None and st.st_size and not self.force:
            self._check_ours()
        folder = self.real.parent if str(self.real.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{self.path}: folder {folder} does not exist")
        where = self.real if st is not None and self.kind.stream else folder  # a new file is made in the folder
        if not os.access(where, os.W_OK):
            raise OutputError(f"{self.path}: {why_not_writable(folder)}, cannot write the {self.kind.noun} in {folder}")

    def check_not_input(self, inputs: Iterable[str | os.PathLike], role: str = "also an input") -> None:
        """Refuse an existing output that is one of `inputs` (the same file, through any link), --force or not."""
        key = file_key(self.path)
        if key is None:
            return
        for other in inputs:
            if file_key(other) == key:
                raise OutputError(f"{self.path}: is {role} ({os.fsdecode(other)}): refusing to write the "
                                  f"{self.kind.noun} over it")

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot check the {self.kind.noun}: {why_not(exc)}") from None

    def _check_ours(self) -> None:
        try:
            ours = self.kind.is_ours(self.real)
        except OSError as exc:
            hint = "; --force overwrites it" if self.user_named else ""
            raise OutputError(f"{self.path}: cannot read it to check that it is {self.kind.mine} "
                              f"({why_not(exc)}){hint}") from None
        if not ours:
            hint = "--force overwrites it" if self.user_named else "it is left as it is"
            raise OutputError(f"{self.path}: exists and is not {self.kind.mine}: refusing to overwrite it ({hint})")

    # ---- writing --------------------------------------------------------------------------------------------
    def replace(self, data: bytes | Iterable[bytes], *, recheck: bool = True) -> None:
        """Write the whole file: a new temporary file beside it, renamed over it. `recheck` checks again first
        (a long run: the target may have changed since)."""
        if recheck:
            self.check()
        real = self.real
        tmp = real.with_name(f".{real.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        created = False
        try:
            # created as any new file is (0666 less the umask); never through anything planted at its name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
            created = True
            with os.fdopen(fd, "wb") as out:
                for chunk in [data] if isinstance(data, bytes) else data:
                    out.write(chunk)
            os.replace(tmp, real)
            created = False
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the {self.kind.noun}: {why_not(exc)}") from None
        finally:
            if created:
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def open_stream(self) -> IO[bytes]:
        """A stream kind: opened (cut to nothing) for writing; a device or FIFO is written into."""
        path, flags = self.real, os.O_WRONLY | _CLOEXEC
        try:
            if stat.S_ISREG(os.stat(self.path).st_mode):
                flags |= os.O_TRUNC | _NOFOLLOW
            else:
                path = self.path  # /dev/stdout, a FIFO: the node itself (a link to a pipe names no file)
        except FileNotFoundError:
            flags |= os.O_CREAT | os.O_EXCL | _NOFOLLOW
        except OSError:
            pass  # the open says why
        try:
            return os.fdopen(os.open(path, flags, 0o666), "wb")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the {self.kind.noun}: {why_not(exc)}") from None


# ---- what counts as ours, per kind -------------------------------------------------------------------------

# An eval results file or a calibration is a few KB; a larger JSON document is not one of ours.
_OWN_DOCUMENT_MAX_BYTES = 16 << 20


def is_fakevlm_file(path: Path) -> bool:
    """Predictions (our records), or an eval results file or calibration (a JSON document whose `tool.name` is
    "fakevlm"; a data set's JSON that merely mentions fakevlm is not ours)."""
    import orjson

    from fakevlm_cli.outputs.results_file import looks_like_results

    with open(path, "rb") as handle:
        head = handle.read(4096)
        if looks_like_results(head):
            return True
        if not head.lstrip().startswith(b"{") or os.fstat(handle.fileno()).st_size > _OWN_DOCUMENT_MAX_BYTES:
            return False
        try:
            document = orjson.loads(head + handle.read())
        except orjson.JSONDecodeError:
            return False
    tool = document.get("tool") if isinstance(document, dict) else None
    return isinstance(tool, dict) and tool.get("name") == "fakevlm"


def _is_heatmap(path: Path) -> bool:
    from fakevlm_cli.media.pictures import is_heatmap

    return is_heatmap(path)


def _is_results(path: Path) -> bool:
    from fakevlm_cli.outputs.results_file import HEAD, looks_like_results

    with open(path, "rb") as handle:
        return looks_like_results(handle.read(HEAD))


def _is_report(path: Path) -> bool:
    from fakevlm_cli.outputs.report.guard import GENERATOR

    with open(path, "rb") as handle:
        return GENERATOR in handle.read(2048)


RESULTS = Kind("results file", "a fakevlm results file", _is_results, stream=True)
REPORT = Kind("report", "a fakevlm report", _is_report)
HEATMAP = Kind("heatmap", "a fakevlm heatmap", _is_heatmap)
EVAL_RESULTS = Kind("eval results", "a file fakevlm wrote", is_fakevlm_file)
PREDICTIONS = Kind("predictions", "a file fakevlm wrote", is_fakevlm_file, stream=True)
CALIBRATION = Kind("calibration", "a file fakevlm wrote", is_fakevlm_file)
