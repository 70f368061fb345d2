"""Inputs beyond the local disk: ``s3://``, ``gs://``, ``az://``, ``hf://``… — any URI an fsspec filesystem
understands (s3fs for S3 and S3-compatible stores, gcsfs for Google Cloud Storage, adlfs for Azure, …).

fsspec (and the store's own library) is imported only when a URI is met: a local scan never pays its 0.1–0.5 s.
Credentials, endpoints and regions come from each library's usual environment and configuration
(``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``, ``GOOGLE_APPLICATION_CREDENTIALS``, …), never from
fakevlm's options or records: a record's `path` is the URI as given. Every failure is a one-line `ImageError`
(an error record for that object) or, for a listing, a `ValueError` the scan reports.
"""

from __future__ import annotations

from typing import Any

from fakevlm_cli.core.errors import ImageError, first_line

# scheme://… with a scheme of two letters or more (a Windows drive letter "C:\\" is not one).


def scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, the path inside it) for `uri`; `ImageError` when no library handles its scheme."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ImageError(f"{scheme(uri)}:// inputs need fsspec and the store's library "
                         "(pip install 'fakevlm-cli[ray]' brings S3 support)") from None
    try:
        return url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ImageError(f"no filesystem for {scheme(uri)}:// ({first_line(exc)})") from None


def join(uri: str, fs: Any, found: str) -> str:
    """The URI of `found` (a path fsspec listed inside `uri`'s filesystem), written with `uri`'s scheme."""
    return fs.unstrip_protocol(found) if hasattr(fs, "unstrip_protocol") else f"{scheme(uri)}://{found}"


def listing(uri: str) -> tuple[bool, list[str]]:
    """(is it a folder, the object URIs under it in sorted order); an object alone is (False, [uri])."""
    fs, path = filesystem(uri)
    try:
        if not uri.endswith("/") and fs.isfile(path):
            return False, [uri]
        found = fs.find(path)
    except FileNotFoundError:
        raise ImageError("no such object or prefix") from None
    except Exception as exc:  # noqa: BLE001 - each store raises its own errors (permission, network, …)
        raise ImageError(f"cannot list: {first_line(exc)}") from None
    if not found and not fs.isdir(path):
        raise ImageError("no such object or prefix")
    return True, [join(uri, fs, name) for name in sorted(found)]


def relative(uri: str, under: str) -> str:
    """`uri`'s path below the listed prefix `under`, '/'-separated (what --include/--exclude match)."""
    return uri[len(under):].lstrip("/") if uri.startswith(under) else uri.rsplit("/", 1)[-1]


class RemoteFile:
    """An object opened for reading, with `reading.OpenFile`'s interface: its size, its first bytes, and bounded
    ways to read the rest (whole, hashed in pieces, or as a seekable file object for the video demuxer)."""

    HEAD = 4096

    def __init__(self, uri: str):
        self.uri = uri

    def __enter__(self) -> RemoteFile:
        self.fs, path = filesystem(self.uri)
        try:
            self.fh = self.fs.open(path, "rb")
        except FileNotFoundError:
            raise ImageError("no such object") from None
        except IsADirectoryError:
            raise ImageError("a prefix, not an object") from None
        except Exception as exc:  # noqa: BLE001 - permission, network, …: one line for this object
            raise ImageError(f"cannot open: {first_line(exc)}") from None
        try:
            self.size = int(self.fh.size)
            self.head = self._read(0, min(self.HEAD, self.size))
        except BaseException:
            self.fh.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def _read(self, offset: int, n: int) -> bytes:
        try:
            self.fh.seek(offset)
            return self.fh.read(n)
        except Exception as exc:  # noqa: BLE001 - a dropped connection, a changed object
            raise ImageError(f"cannot read: {first_line(exc)}") from None

    def reader(self):
        """The object as a seekable file, at the start."""
        self.fh.seek(0)
        return self.fh

    def read_all(self) -> bytes:
        data = self._read(0, self.size + 1)
        if len(data) > self.size:
            raise ImageError("the object grew while it was being read")
        if len(data) < self.size:
            raise ImageError("the object ended early while it was being read")
        return data

    def sha256(self) -> str:
        import hashlib

        digest, offset = hashlib.sha256(), 0
        while piece := self._read(offset, 1 << 20):
            digest.update(piece)
            offset += len(piece)
        return digest.hexdigest()

