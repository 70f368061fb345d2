"""Tests for fakevlm_cli.media.discover: which files a scan looks at, in which order, and what it skips."""

from __future__ import annotations

import io
import itertools
import os
import threading
from pathlib import Path

import pytest

from fakevlm_cli.media import walk as walk_mod
from fakevlm_cli.media.discover import Candidate, DiscoveryStats, discover, read_path_list
from fakevlm_cli.media.globs import Globs


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rels(root: Path, candidates) -> list[str]:
    return [c.path.relative_to(root).as_posix() for c in candidates]


def run(paths, **kwargs) -> tuple[list[Candidate], DiscoveryStats]:
    """discover() with a stats object, in a thread with a deadline: a hang fails instead of blocking."""
    stats = DiscoveryStats()
    result: list = []
    thread = threading.Thread(
        target=lambda: result.extend(discover([str(p) for p in paths], stats=stats, **kwargs)), daemon=True
    )
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "discover() did not terminate"
    return result, stats


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files created in reverse order, so that listing order differs from sorted order."""
    root = tmp_path / "tree"
    for rel in ["z.png", "a.png", "a-b.png", "a/z.png", "a/b/deep.png", "B.png"]:
        touch(root / rel)
    return root


# ---- order and depth -------------------------------------------------------------------------


def test_walk_is_recursive_and_sorted_by_path_components(tree):
    found, _ = run([tree])
    # Per-directory name order ("a" < "a-b.png" < "a.png"), not whole-string order, which would
    # put "a/..." after "a.png"; capitals sort before lower case (code point order, locale-free).
    assert rels(tree, found) == ["B.png", "a/b/deep.png", "a/z.png", "a-b.png", "a.png", "z.png"]
    assert all(not c.explicit and c.error is None for c in found)


def test_arguments_keep_their_order(tree):
    found, _ = run([tree / "z.png", tree / "a", tree / "B.png"])
    assert rels(tree, found) == ["z.png", "a/b/deep.png", "a/z.png", "B.png"]
    assert [c.explicit for c in found] == [True, False, False, True]


@pytest.mark.parametrize(
    ("max_depth", "expected"),
    [
        (0, ["B.png"]),  # only what is named: the directory argument yields nothing
        (1, ["B.png", "a-b.png", "a.png", "z.png"]),
        (2, ["B.png", "a/z.png", "a-b.png", "a.png", "z.png"]),
        (3, ["B.png", "a/b/deep.png", "a/z.png", "a-b.png", "a.png", "z.png"]),
        (None, ["B.png", "a/b/deep.png", "a/z.png", "a-b.png", "a.png", "z.png"]),
    ],
)
def test_max_depth(tree, max_depth, expected):
    found, _ = run([tree, tree / "B.png"], max_depth=max_depth)
    # B.png is named explicitly as well: it is yielded once, at its first position.
    assert rels(tree, found) == expected


def test_max_depth_does_not_list_directories_it_cannot_yield_from(tree, monkeypatch):
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(walk_mod.os, "scandir", lambda p: listed.append(p) or real_scandir(p))
    run([tree], max_depth=1)
    assert listed == [str(tree)]


def test_negative_max_depth_and_empty_glob_are_rejected_at_call_time(tree):
    with pytest.raises(ValueError, match="max_depth"):
        discover([tree], max_depth=-1)
    with pytest.raises(ValueError, match="empty glob"):
        discover([tree], exclude=["/"])
    with pytest.raises(TypeError):
        discover([tree], include="*.png")


def test_discovery_is_lazy(tree):
    def args():
        yield str(tree / "a.png")
        raise AssertionError("the second argument was read before the first file was yielded")

    it = discover(args())
    assert next(it).path == tree / "a.png"


def test_skipped_entries_cost_no_stat(tmp_path, monkeypatch):
    root = tmp_path / "r"
    for i in range(5):
        touch(root / f".hidden{i}.png")
        touch(root / f"skip{i}.txt")
    touch(root / "keep.png")
    touch(root / "sub" / "keep2.png")
    calls = []
    for name in ("stat", "lstat"):
        real = getattr(os, name)
        monkeypatch.setattr(walk_mod.os, name, lambda p, *a, _r=real, **k: calls.append(p) or _r(p, *a, **k))
    found, _ = run([root], exclude=["*.txt"])
    assert rels(root, found) == ["keep.png", "sub/keep2.png"]
    # The root, the subdirectory and the two yielded files; hidden and excluded files: none.
    assert len(calls) == 4, calls


# ---- hidden ------------------------------------------------------------------------------------


def test_hidden_files_and_folders_are_skipped_unless_asked(tmp_path):
    root = tmp_path / "r"
    for rel in ["a.png", ".b.png", ".cache/c.png", ".cache/d.png", "sub/.e.png"]:
        touch(root / rel)
    found, stats = run([root])
    assert rels(root, found) == ["a.png"]
    assert stats.hidden == 3  # .b.png, .cache (once, not descended), sub/.e.png

    found, stats = run([root], hidden=True)
    assert rels(root, found) == [".b.png", ".cache/c.png", ".cache/d.png", "a.png", "sub/.e.png"]
    assert stats.hidden == 0


def test_explicit_hidden_paths_are_scanned(tmp_path):
    root = tmp_path / "r"
    touch(root / ".b.png")
    touch(root / ".cache" / "c.png")
    touch(root / ".cache" / ".d.png")
    found, stats = run([root / ".b.png", root / ".cache"])
    assert rels(root, found) == [".b.png", ".cache/c.png"]  # the walk below .cache still filters
    assert found[0].explicit and not found[1].explicit
    assert stats.hidden == 1


# ---- include / exclude -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("*.png", "a.png", False, True),
        ("*.png", "x/y/a.png", False, True),  # basename match at any depth
        ("*.png", "a.png.txt", False, False),
        ("*.PNG", "a.png", False, False),  # case-sensitive
        ("raw/**", "raw/a.png", False, True),
        ("raw/**", "raw/x/y/a.png", False, True),
        ("raw/**", "x/raw/a.png", False, False),  # has a "/": relative to the walked root
        ("raw/**", "raw", True, True),  # prunes the directory itself
        ("raw/**", "raw", False, False),  # ...but not a file called raw
        ("**/thumbs/*", "thumbs/a.png", False, True),
        ("**/thumbs/*", "x/y/thumbs/a.png", False, True),
        ("**/thumbs/*", "thumbs/sub/a.png", False, False),
        ("a/**/b.png", "a/b.png", False, True),
        ("a/**/b.png", "a/x/y/b.png", False, True),
        ("sub/*.png", "sub/x/a.png", False, False),  # "*" does not cross "/"
        ("?.png", "a.png", False, True),
        ("?.png", "ab.png", False, False),
        ("[ab].png", "b.png", False, True),
        ("[!ab].png", "b.png", False, False),
        ("[!ab].png", "c.png", False, True),
        ("[a-c]x", "bx", False, True),
        ("\\[bold\\]*", "[bold] a.png", False, True),
        ("[[]bold]*", "[bold] a.png", False, True),
        ("[bold]", "[bold]", False, False),  # a class: one of b, o, l, d
        ("/top.png", "top.png", False, True),  # leading "/" anchors to the walked root
        ("/top.png", "x/top.png", False, False),
        ("cache/", "x/cache", True, True),  # trailing "/" : directories only
        ("cache/", "x/cache", False, False),
        ("**/sub/*.png", "new\nline/sub/a.png", False, True),  # names with newlines
        ("*.png", "a.png\n", False, False),  # ...and a name ending in one: no "$ before a newline" match
        ("a?b", "a\nb", False, True),
        # A pattern is taken literally, not as a .gitignore line (kept across the move to pathspec)
        ("#notes", "#notes", False, True),  # not a comment
        ("!a.png", "!a.png", False, True),  # not a negation
        ("!a.png", "a.png", False, False),
        ("a.png ", "a.png ", False, True),  # trailing spaces are kept...
        ("a.png ", "a.png", False, False),  # ...not stripped
        ("a\\ ", "a ", False, True),
        ("back\\", "back\\", False, True),  # a lone trailing backslash matches itself
        # New with pathspec: a pattern that matches a directory matches what is below it (git's rule)
        ("raw", "raw/a.png", False, True),
        ("cache/", "x/cache/a.png", False, True),
        ("**/thumbs/*", "thumbs/sub", True, True),  # so thumbs/sub is pruned, as it was before
        # pathspec lets a negated class match the "/" between two names (git's wildmatch would not);
        # pinned so that a change in pathspec is noticed
        ("a[!x]b", "a/b", False, True),
    ],
)
def test_glob_semantics(pattern, path, is_dir, expected):
    assert Globs([pattern]).matches(path, is_dir) is expected


def test_class_opening_with_a_bracket_raises_no_warning(recwarn):
    assert Globs(["[[]bold]*"]).matches("[bold] a.png", False)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_invalid_glob_is_rejected_at_call_time(tree):
    with pytest.raises(ValueError, match="invalid glob pattern"):
        discover([tree], exclude=["raw\\/x"])  # an escaped "/" is not a gitignore pattern
    # a range Python's re refuses (re.error is no ValueError): named, without the regex's own positions
    with pytest.raises(ValueError, match=r"^invalid glob pattern 'a\[b-a\]c': bad character range b-a$"):
        discover([tree], include=["*.png", "a[b-a]c"])


def test_include_naming_a_directory_selects_the_files_below_it(tmp_path):
    # Before pathspec, an include pattern was matched against files only, so "raw" selected files
    # called raw and "cache/" nothing; now both select what lies below such folders, as in git.
    root = tmp_path / "r"
    for rel in ["raw/a.png", "raw/deep/b.png", "x/raw/c.png", "raw.png", "cache/d.png", "e.png"]:
        touch(root / rel)
    found, stats = run([root], include=["raw", "cache/"])
    assert rels(root, found) == ["cache/d.png", "raw/a.png", "raw/deep/b.png", "x/raw/c.png"]
    assert stats.excluded == 2  # raw.png and e.png
    found, _ = run([root], include=["/raw/"])
    assert rels(root, found) == ["raw/a.png", "raw/deep/b.png"]


def test_include_exclude_and_pruning(tmp_path):
    root = tmp_path / "r"
    for rel in [
        "a.png",
        "a.jpg",
        "notes.txt",
        "raw/1.png",
        "raw/2.png",
        "raw/deep/3.png",
        "x/raw/4.png",
        "x/thumbs/5.png",
        "thumbs/6.png",
    ]:
        touch(root / rel)
    found, stats = run([root], include=["*.png", "*.jpg"], exclude=["raw/**", "**/thumbs/*"])
    assert rels(root, found) == ["a.jpg", "a.png", "x/raw/4.png"]
    # notes.txt (not included) + raw (pruned: counted once, not per file) + two thumbs files
    assert stats.excluded == 4


def test_exclude_wins_over_include(tmp_path):
    root = tmp_path / "r"
    touch(root / "a.png")
    touch(root / "b.png")
    found, stats = run([root], include=["*.png"], exclude=["b.*"])
    assert rels(root, found) == ["a.png"]
    assert stats.excluded == 1


def test_excluded_directory_is_not_descended(tmp_path, monkeypatch):
    root = tmp_path / "r"
    touch(root / "cache" / "a.png")
    touch(root / "keep" / "cache" / "b.png")
    touch(root / "keep" / "c.png")
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(walk_mod.os, "scandir", lambda p: listed.append(p) or real_scandir(p))
    found, stats = run([root], exclude=["cache"])
    assert rels(root, found) == ["keep/c.png"]
    assert stats.excluded == 2
    assert not any("cache" in p for p in listed)


def test_include_does_not_prune_directories(tmp_path):
    root = tmp_path / "r"
    touch(root / "sub" / "a.png")
    touch(root / "sub" / "a.txt")
    found, _ = run([root], include=["*.png"])
    assert rels(root, found) == ["sub/a.png"]


def test_globs_do_not_filter_explicit_files(tmp_path):
    f = touch(tmp_path / "notes.txt")
    found, stats = run([f], include=["*.png"], exclude=["*.txt"])
    assert [c.path for c in found] == [f]
    assert stats.excluded == 0


# ---- symlinks ----------------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    touch(outside / "file.png")
    touch(outside / "dir" / "inner.png")
    root = tmp_path / "r"
    touch(root / "real.png")
    (root / "file-link.png").symlink_to(outside / "file.png")
    (root / "dir-link").symlink_to(outside / "dir", target_is_directory=True)
    (root / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    return root


def test_symlinks_are_skipped_by_default(linked):
    found, stats = run([linked])
    assert rels(linked, found) == ["real.png"]
    assert stats.symlinks == 3


def test_symlinks_are_followed_with_the_flag(linked):
    found, stats = run([linked], follow_symlinks=True)
    # Paths go through the link names, not the resolved targets.
    assert rels(linked, found) == ["dir-link/inner.png", "file-link.png", "real.png"]
    assert stats.symlinks == 1  # only the dangling one is left over


def test_explicit_symlinks_are_followed_without_the_flag(linked):
    found, _ = run([linked / "file-link.png", linked / "dir-link"])
    assert rels(linked, found) == ["file-link.png", "dir-link/inner.png"]
    assert [c.explicit for c in found] == [True, False]


@pytest.mark.parametrize("follow", [False, True])
def test_symlink_loop_terminates(tmp_path, follow):
    root = tmp_path / "r"
    touch(root / "sub" / "a.png")
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)
    (root / "self").symlink_to("self")  # ELOOP when resolved
    found, stats = run([root], follow_symlinks=follow)
    assert rels(root, found) == ["sub/a.png"]
    if follow:
        assert (stats.loops, stats.symlinks) == (2, 0)
    else:
        assert (stats.loops, stats.symlinks) == (0, 2)


def test_mutual_directory_links_terminate(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    touch(a / "1.png")
    touch(b / "2.png")
    (a / "to-b").symlink_to(b, target_is_directory=True)
    (b / "to-a").symlink_to(a, target_is_directory=True)
    found, stats = run([a], follow_symlinks=True)
    assert rels(a, found) == ["1.png", "to-b/2.png"]
    assert stats.loops == 1


def test_symlink_farm_stays_linear(tmp_path):
    # Each level links twice to the next: following blindly would walk 2**20 directories.
    levels = 20
    dirs = [tmp_path / f"d{i}" for i in range(levels + 1)]
    for i, d in enumerate(dirs):
        touch(d / f"f{i}.png")
    for d, nxt in itertools.pairwise(dirs):
        (d / "l1").symlink_to(nxt, target_is_directory=True)
        (d / "l2").symlink_to(nxt, target_is_directory=True)
    found, stats = run([dirs[0]], follow_symlinks=True)
    assert len(found) == levels + 1
    assert stats.duplicates == levels  # each "l2" finds its directory already walked


def test_directory_reached_deeper_first_is_rewalked_when_reached_shallower(tmp_path):
    target = tmp_path / "target"
    touch(target / "f.png")
    touch(target / "sub" / "g.png")
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "l1").symlink_to(target, target_is_directory=True)  # depth 3
    (root / "l2").symlink_to(target, target_is_directory=True)  # depth 1
    found, _ = run([root], follow_symlinks=True, max_depth=4)
    # Through l1 only f.png is within depth 4; l2 has more depth left and reaches sub/g.png.
    assert rels(root, found) == ["a/b/l1/f.png", "l2/sub/g.png"]


# ---- dedupe ------------------------------------------------------------------------------------


def test_same_file_via_two_arguments_is_yielded_once(tree):
    found, stats = run([tree / "a.png", tree, tree / "a/z.png", tree / "./a.png"])
    paths = rels(tree, found)
    assert paths.count("a.png") == 1 and paths.count("a/z.png") == 1
    assert paths[0] == "a.png" and found[0].explicit  # first position wins
    assert stats.duplicates == 3


def test_hard_link_is_yielded_once(tmp_path):
    root = tmp_path / "r"
    touch(root / "a.png")
    os.link(root / "a.png", root / "b.png")
    touch(root / "c.png")
    found, stats = run([root])
    assert rels(root, found) == ["a.png", "c.png"]
    assert stats.duplicates == 1


def test_followed_symlink_to_a_file_in_the_tree_is_yielded_once(tmp_path):
    root = tmp_path / "r"
    touch(root / "b.png")
    (root / "a.png").symlink_to("b.png")
    found, stats = run([root], follow_symlinks=True)
    assert rels(root, found) == ["a.png"]
    assert stats.duplicates == 1


# ---- odd names, odd files ----------------------------------------------------------------------


def test_odd_names_are_kept_exactly(tmp_path):
    root = tmp_path / "r"
    names = ["with space.png", "ünïcödé 画像.png", "new\nline.png", "[bold]red.png", " lead.png"]
    for name in names:
        touch(root / name)
    found, _ = run([root])
    assert sorted(c.path.name for c in found) == sorted(names)
    assert all(c.path.exists() for c in found)


def test_fifo_is_skipped_without_opening(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    root = tmp_path / "r"
    touch(root / "a.png")
    os.mkfifo(root / "pipe.png")
    found, stats = run([root])  # opening the FIFO would block: run() fails on a hang
    assert rels(root, found) == ["a.png"]
    assert stats.not_regular == 1

    found, stats = run([root / "pipe.png"])
    assert [(c.path, c.explicit, c.error) for c in found] == [
        (root / "pipe.png", True, "not a regular file (fifo)")
    ]
    assert stats.not_regular == 1


def test_unreadable_directory_is_recorded_not_fatal(tmp_path):
    root = tmp_path / "r"
    touch(root / "a.png")
    touch(root / "locked" / "b.png")
    touch(root / "z.png")
    (root / "locked").chmod(0)
    try:
        try:
            os.listdir(root / "locked")
        except PermissionError:
            pass
        else:
            pytest.skip("permissions are not enforced here (running as root?)")
        found, stats = run([root])
        assert rels(root, found) == ["a.png", "z.png"]
        assert stats.unreadable_dirs == [f"{root / 'locked'}: permission denied"]
    finally:
        (root / "locked").chmod(0o755)


def test_unlistable_directory_is_recorded_even_as_root(tmp_path, monkeypatch):
    # The chmod test above is skipped as root; this one fakes the EACCES so the handling always runs.
    root = tmp_path / "r"
    touch(root / "a.png")
    touch(root / "locked" / "b.png")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(walk_mod.os, "scandir", scandir)
    found, stats = run([root, root / "locked"])
    assert rels(root, found) == ["a.png"]
    assert stats.unreadable_dirs == [f"{root / 'locked'}: permission denied"] * 2


def test_missing_explicit_path_is_yielded_with_an_error(tmp_path):
    real = touch(tmp_path / "real.png")
    (tmp_path / "broken.png").symlink_to(tmp_path / "gone.png")
    found, stats = run([tmp_path / "nope.png", real, tmp_path / "broken.png", tmp_path / "nope.png"])
    assert [(c.path.name, c.explicit, c.error) for c in found] == [
        ("nope.png", True, "no such file or directory"),
        ("real.png", True, None),
        ("broken.png", True, "broken symbolic link"),
    ]
    assert stats.missing == [
        f"{tmp_path / 'nope.png'}: no such file or directory",
        f"{tmp_path / 'broken.png'}: broken symbolic link",
    ]
    assert stats.duplicates == 1  # nope.png named twice, reported once


# ---- read_path_list ----------------------------------------------------------------------------


def test_read_path_list_newline_mode():
    data = "a.png\r\n\r\n  \nwith space.png \nünï.png\n[bold].png"
    expected = ["a.png", "with space.png ", "ünï.png", "[bold].png"]
    assert list(read_path_list(io.BytesIO(data.encode()))) == expected
    assert list(read_path_list(io.StringIO(data, newline=""))) == expected


def test_read_path_list_nul_mode_allows_newlines():
    data = b"new\nline.png\0plain.png\0\0 spaced \0last"
    expected = ["new\nline.png", "plain.png", " spaced ", "last"]
    assert list(read_path_list(io.BytesIO(data), nul=True)) == expected
    assert list(read_path_list(io.StringIO(data.decode(), newline=""), nul=True)) == expected
    assert list(read_path_list(io.BytesIO(b"a\0b\0"), nul=True)) == ["a", "b"]


def test_read_path_list_keeps_undecodable_bytes(tmp_path):
    raw = b"caf\xe9.png"  # Latin-1, not UTF-8
    (name,) = read_path_list(io.BytesIO(raw + b"\n"))
    assert os.fsencode(name) == raw


def test_read_path_list_is_lazy():
    class Pipe:
        """Hands out one chunk, then fails: the first record must come out before the second read."""

        def __init__(self):
            self.chunks = [b"first.png\0sec"]

        def read(self, n=-1):
            # Like BufferedReader.read(n) on a pipe: waits until n bytes or EOF.
            data = b""
            while n != 0 and (n < 0 or len(data) < n):
                data += self.read1(n)
            return data

        def read1(self, n=-1):
            if not self.chunks:
                raise AssertionError("read past the first chunk before yielding")
            return self.chunks.pop()

    assert next(read_path_list(Pipe(), nul=True)) == "first.png"


@pytest.mark.slow
def test_an_unreadable_file_or_folder_named_on_the_command_line_does_not_stop_the_others(tmp_path):
    """Click would refuse an unreadable PATH with its usage message before any work, so one file without read
    permission lost the whole scan: it is one error record (a folder: one warning) and the rest is scanned.
    Run as a user without the capability to read anything (setpriv as root)."""
    import json
    import shutil
    import subprocess
    import sys

    from PIL import Image

    ok, locked, folder = tmp_path / "ok.png", tmp_path / "locked.png", tmp_path / "locked-folder"
    for path in (ok, locked):
        Image.new("RGB", (8, 8)).save(path)
    touch(folder / "inside.png")
    locked.chmod(0)
    folder.chmod(0)
    command = [sys.executable, "-m", "fakevlm_cli", "scan", str(locked), str(ok), str(folder), "--no-model",
               "--format", "jsonl"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions are not enforced")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        locked.chmod(0o644)
        folder.chmod(0o755)
    if "Operation not permitted" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["path"]).name, r["verdict"], r["error"]) for r in rows] == [
        ("locked.png", "error", "permission denied"), ("ok.png", "unknown", None)]
    assert f"{folder}: permission denied" in result.stderr and "Usage:" not in result.stderr
    assert result.returncode == 0
