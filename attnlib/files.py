"""Writing output files and folders atomically: a run killed at any moment leaves the previous file (or
folder) or the new one, never half a file and never old and new files mixed in one folder. (The result
cache adds an fsync on top; see :mod:`attnlib.cache`.) Also where attnlib's cache folder is, which the
result cache and the SST download share (:func:`cache_dir`)."""

from __future__ import annotations

import errno
import glob
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """attnlib's cache folder (not created here): ``$ATTNLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/attnlib``, else
    ``~/.cache/attnlib``. The result cache (:mod:`attnlib.cache`) keeps its entries there, the SST download its
    files in ``sst/``."""
    explicit = os.environ.get("ATTNLIB_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "attnlib"

PARTIAL = ".partial-"
"""Infix of a folder being built (``.NAME.partial-PID-XXXX`` beside ``NAME``)."""
PREVIOUS = ".previous-"
"""Infix of a replaced folder during the two renames that swap a new one in (``.NAME.previous-PID-XXXX``)."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)`` (UTF-8), atomically."""
    atomic_write(path, lambda target: target.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload: Any, **options: Any) -> None:
    """``payload`` as indented JSON with a final newline, atomically; ``options`` go to :func:`json.dumps`."""
    write_text(path, json.dumps(payload, indent=2, **options) + "\n")


# --------------------------------------------------------------------------- whole folders


def check_replaceable(folder: Path, entries: Iterable[str] | None = None) -> None:
    """Check, before any work, that ``folder`` can be built beside itself and swapped into place.

    The parent is created if missing and must accept a new folder; ``folder``, if it exists, must be a
    folder, and what the swap removes (every file and folder inside it, or only the top-level
    ``entries`` when given) must be writable, so that a read-only or immutable file is refused now
    rather than after the run. Raises an :class:`OSError` naming the offending path.
    """
    folder = Path(folder)
    above = next((p for p in folder.parents if p.exists()), None)
    if above is not None and not above.is_dir():  # else mkdir would say "File exists" of a file named like a folder
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(above))
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.rmdir(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.probe-"))
    if not folder.exists():
        return
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(folder))
    tops = [folder / name for name in entries] if entries is not None else list(folder.iterdir())
    for top in [folder, *tops]:
        paths = [top, *top.rglob("*")] if top.is_dir() and top != folder else [top]
        for path in paths:
            if os.path.lexists(path) and not path.is_symlink() and not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, "it is not writable, so it cannot be replaced", str(path))


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove what killed runs left beside ``folder`` (partly built folders, and a previous folder caught
    between the two renames of a swap, which is put back when ``folder`` is missing); return what was
    removed. Leftovers of a process that is still running are left alone."""
    folder = Path(folder)
    removed = []
    if not folder.parent.is_dir():
        return removed
    for infix in (PREVIOUS, PARTIAL):
        for path in sorted(folder.parent.glob(f".{glob.escape(folder.name)}{infix}*")):
            if _running(path.name[len(folder.name) + 1 + len(infix):].split("-")[0]):
                continue
            if infix == PREVIOUS and not os.path.lexists(folder):
                os.rename(path, folder)  # killed between the two renames: the previous result comes back
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _running(pid: str) -> bool:
    """Whether the process ``pid`` (a decimal string) is alive; True for this process and unknown ones."""
    if not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


@contextmanager
def replaced_folder(folder: Path, keep_others: bool = False) -> Iterator[Path]:
    """Build a new ``folder`` as a whole: yield an empty temporary folder beside it, and when the block
    ends without an error rename it into place; only then is the previous ``folder`` removed.

    On any error or interrupt (``KeyboardInterrupt`` included) the temporary folder is removed and
    ``folder`` is left as it was; after a ``kill -9`` the temporary folder stays (hidden, named
    ``.NAME.partial-PID-...``) until :func:`clean_leftovers` runs, as it does at the start of the next
    replacement. With ``keep_others``, entries of the previous folder that the new one does not have
    are carried over (as hard links where possible) instead of removed.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}{PARTIAL}{os.getpid()}-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # as a plain mkdir would (mkdtemp makes it 0o700)
        yield staging
        if keep_others and folder.is_dir():
            for entry in folder.iterdir():
                ours = entry.name.startswith(".") and (PARTIAL in entry.name or PREVIOUS in entry.name)
                if not ours and not os.path.lexists(staging / entry.name):  # leftovers are not carried
                    _link_copy(entry, staging / entry.name)
        _swap(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a swap


def _link_copy(source: Path, target: Path) -> None:
    """Copy a file or folder tree, hard-linking files (copying them where links are not possible)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=link)
    elif source.is_symlink():
        os.symlink(os.readlink(source), target)
    else:
        link(str(source), str(target))


def _swap(new: Path, folder: Path) -> None:
    """Rename ``new`` onto ``folder``, moving a previous ``folder`` aside first and removing it after.
    SIGINT is held back during the two renames, so an interrupt never leaves ``folder`` missing."""
    previous = folder.with_name(f".{folder.name}{PREVIOUS}{os.getpid()}-{secrets.token_hex(4)}")
    with _interrupts_held():
        moved = os.path.lexists(folder)
        if moved:
            os.rename(folder, previous)
        try:
            os.rename(new, folder)
        except BaseException:
            if moved:
                os.rename(previous, folder)
            raise
    if moved:
        shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Inside the block a SIGINT is recorded instead of raised; it is raised as KeyboardInterrupt at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    before = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if received:
        raise KeyboardInterrupt
