"""Downloading pinned data files: a deadline for the whole transfer, verify-then-install, one-line errors.

Shared by the dataset loaders (:mod:`attnlib.data.sst`, :mod:`attnlib.data.trec`): each says what it
fetches and how its files are pinned; the transfer (pooch in a worker thread, stopped at a deadline),
the atomic installation of a verified folder and the short error texts live here. Every function
raises the loader's own error class (``error``) with one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path


class DataError(ValueError):
    """A dataset's files are missing, differ from the pinned ones, or do not parse (one line, for the user)."""


def reason(exc: BaseException) -> str:
    """The short cause of an error, without the repr noise."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    """Number of newline-terminated lines (plus a final unterminated one)."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def staging_dir(dest: Path, prefix: str, what: str, error: type[Exception]) -> Path:
    """A fresh temporary folder beside ``dest`` (so installing it is a rename on one file system)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    except OSError as exc:
        raise error(f"cannot write the {what} cache folder {dest.parent}: {reason(exc)}") from None


def staged(dest: Path, prefix: str, what: str, error: type[Exception],
           work: Callable[[Path], Path], verify: Callable[[Path], None]) -> None:
    """Run ``work(staging)`` (download and verify into a temporary folder, returning the verified folder),
    install that folder as ``dest``, and remove the temporary folder whatever happens. ``verify(folder)``
    raises ``error`` unless the folder holds the pinned files (a copy already in ``dest`` is kept)."""
    def is_pinned(folder: Path) -> bool:
        try:
            verify(folder)
        except error:
            return False
        return True

    staging = staging_dir(dest, prefix, what, error)
    try:
        install(work(staging), dest, staging, is_pinned, what, error)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Cancelled(Exception):
    """Raised inside the download thread once the deadline has passed."""


class _Guarded:
    """The output file of the download, refusing further writes once ``cancel`` is set."""

    def __init__(self, file: object, cancel: threading.Event) -> None:
        self._file, self._cancel = file, cancel

    def write(self, data: bytes) -> int:
        if self._cancel.is_set():
            raise _Cancelled()
        return self._file.write(data)  # type: ignore[attr-defined]

    def flush(self) -> None:
        self._file.flush()  # type: ignore[attr-defined]


def fetch(url: str, folder: Path, fname: str, deadline_s: float, socket_timeout_s: float, progressbar: bool,
          error: type[Exception], thread_name: str = "attnlib-download") -> Path:
    """Download ``url`` into ``folder/fname`` with pooch in a worker thread, waiting at most ``deadline_s``.

    A socket timeout only bounds each read, so a server sending a byte every few seconds would never
    time out; the deadline bounds the whole transfer. After it, the connection is shut down (which
    ends a read blocked in the worker) and the worker refuses to write anything more.
    """
    import pooch  # noqa: PLC0415 - pooch and requests take ~0.7 s to import: only a download needs them
    import requests  # noqa: PLC0415 - pooch and requests take ~0.7 s to import: only a download needs them

    cancel = threading.Event()
    sockets: list[socket.socket] = []

    def keep(response: requests.Response, *args: object, **kwargs: object) -> None:
        """Keep a duplicate of the connection's socket, to shut it down at the deadline."""
        try:
            sockets.append(socket.socket(fileno=os.dup(response.raw.fileno())))
        except (AttributeError, OSError, ValueError):
            pass  # no socket to keep: the worker then stops at its next write

    http = pooch.HTTPDownloader(progressbar=progressbar, timeout=socket_timeout_s, hooks={"response": keep})

    def downloader(url: str, output_file: str, pooch_: object, check_only: bool = False) -> None:
        with open(output_file, "w+b") as out:
            http(url, _Guarded(out, cancel), pooch_)

    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["path"] = pooch.retrieve(url, known_hash=None, fname=fname, path=folder, downloader=downloader)
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread, which raises it)
            outcome["error"] = exc

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch would log the file's hash and advise pinning it: noise here
    worker = threading.Thread(target=work, name=thread_name, daemon=True)
    try:
        worker.start()
        worker.join(deadline_s)
    finally:
        if worker.is_alive():
            cancel.set()
        for sock in sockets:
            if cancel.is_set():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # a read blocked on it returns at once
            sock.close()
        logger.setLevel(level)
    if cancel.is_set():
        raise error(
            f"the download of {url} did not finish within the {deadline_s:g} s deadline for the whole transfer "
            f"(the server is too slow or stalled); nothing was written to the cache"
        )
    failure = outcome.get("error")
    if isinstance(failure, requests.exceptions.HTTPError) and failure.response is not None:
        raise error(f"could not download {url}: HTTP {failure.response.status_code} "
                    f"{failure.response.reason}; nothing was written to the cache") from None
    if isinstance(failure, requests.exceptions.RequestException):
        raise error(f"could not download {url}: {request_reason(failure)}; nothing was written to the cache") from None
    if isinstance(failure, OSError):
        raise error(f"could not save the download of {url} in {folder}: {reason(failure)}") from None
    if failure is not None:
        raise failure  # type: ignore[misc]  # not an expected failure: keep its traceback
    return Path(str(outcome["path"]))


def request_reason(error: BaseException) -> str:
    """The innermost cause of a requests error (e.g. 'Connection refused', 'IncompleteRead(...)'), short."""
    cause = error
    for _ in range(10):
        inner = next((a for a in cause.args if isinstance(a, BaseException)), None) or getattr(cause, "reason", None)
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>: ", "", reason(cause))
    return text if len(text) <= 200 else text[:200] + "..."


def install(folder: Path, dest: Path, staging: Path, is_pinned: Callable[[Path], bool], what: str,
            error: type[Exception]) -> None:
    """Rename the verified ``folder`` onto ``dest``; an old ``dest`` is moved aside first and removed.

    A ``dest`` that already holds the pinned files (``is_pinned``: another process installed them
    meanwhile) is kept, so a reader of that copy never sees it move.
    """
    previous = staging / "previous"
    try:
        if dest.exists() or dest.is_symlink():
            if is_pinned(dest):
                return
            os.rename(dest, previous)
        os.rename(folder, dest)
    except OSError as exc:
        if previous.exists() and not dest.exists():
            os.rename(previous, dest)
        if is_pinned(dest):  # lost a race with another process's install: its copy is as good
            return
        raise error(f"cannot install the verified {what} files into {dest}: {reason(exc)}") from None


def announce(text: str) -> None:
    """One line on stderr saying what is being downloaded, and from where."""
    print(text, file=sys.stderr)


def candidate_places(data_dir: str | Path | None, argument: str, env_var: str,
                     defaults: Callable[[], list[tuple[str, Path]]]) -> list[tuple[str, Path]]:
    """The places searched, in order, each with a description, resolved at each call.

    A folder the user names (``data_dir``, described as ``argument``, else ``$env_var``) is the only
    place: whoever names a folder means that folder, so it is never replaced by another one.
    Otherwise ``defaults()``: the shared folder beside the checkout, then the user cache.
    """
    if data_dir is not None and str(data_dir) != "":
        return [(argument, Path(data_dir).expanduser())]
    env = os.environ.get(env_var)
    if env:
        return [(f"${env_var}", Path(env).expanduser())]
    return defaults()


def missing_names(directory: Path, names: list[str], what: str, error: type[Exception]) -> list[str]:
    """Those of ``names`` that are not files in ``directory``; one ``error`` line if it cannot be read."""
    try:
        return [name for name in names if not (directory / name).is_file()]
    except OSError as exc:
        raise error(f"cannot read the {what} data folder {directory}: {reason(exc)}") from None


def locate(places: list[tuple[str, Path]], cache: Path, *, missing: Callable[[Path], list[str]],
           check_named: Callable[[str, Path], None], verify: Callable[[Path], None],
           fetch_into: Callable[[Path], None], not_found: Callable[[str, Exception | None], str],
           allow_download: bool, what: str, error: type[Exception],
           not_found_error: type[Exception] | None = None) -> Path:
    """The folder holding a dataset's pinned files, the search order every loader shares.

    ``places`` is one named folder (authoritative: an error naming it if it does not hold the files,
    never a fallback), or the default places, the last of which is ``cache``: the first default
    place that holds every file is used; the cache is verified first and repaired by a new download
    when it is not the pinned copy. ``fetch_into(cache)`` downloads, verifies and installs;
    ``not_found(why, stale)`` is the one-line message when nothing could be found or fetched, raised as
    ``not_found_error`` (default ``error``) when downloads are off and no copy exists at all; a cached copy
    that fails its check while downloads are off is an ``error`` that says so, not "not found".
    """
    if len(places) == 1:
        label, path = places[0]
        check_named(label, path)
        return path
    for _, path in places[:-1]:
        if not missing(path):
            return path
    stale = None
    if not missing(cache):
        try:
            verify(cache)
            return cache
        except error as exc:  # the cache is ours to repair: fetch a good copy over a bad one
            stale = exc
    if not allow_download and stale is not None:  # found, and failed its check: say so, not "not found"
        raise error(f"{stale} This is the user cache's copy, which a download replaces, and automatic download "
                    "is disabled: `attnlib verify-data` downloads it again")
    if not allow_download:
        raise (not_found_error or error)(not_found("automatic download is disabled", stale))
    if stale is not None:
        print(f"attnlib: the cached {what} copy in {cache} is not the pinned one; downloading it again", file=sys.stderr)
    try:
        fetch_into(cache)
    except error as exc:
        raise error(not_found(f"the download failed: {exc}", stale)) from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise error(not_found(f"the download failed: {reason(exc)}", stale)) from None
    if missing(cache):
        raise error(not_found(f"the download left {', '.join(missing(cache))} missing", None))
    verify(cache)
    return cache
