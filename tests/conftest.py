"""Shared fixtures: small random corpora; and the isolation every test runs in.

Tests never touch the network or the real user cache:

* the result cache (``ATTNLIB_CACHE_DIR``) and every per-user cache (``XDG_CACHE_HOME``, where the SST
  download, matplotlib and platformdirs look) point at one temporary folder for the whole session, so
  a test may rely on what an earlier call cached, and ``~/.cache`` is never written;
* a socket connection (or a host name lookup) to anything but the loopback interface fails the test
  in this process, and raises ``ConnectionRefusedError`` in Python child processes (the same guard,
  installed through a ``sitecustomize`` on their ``PYTHONPATH``). Loopback keeps working: tests serve
  files on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="attnlib-test-"))
CACHE_DIR = _SESSION_DIR / "attnlib-cache"
XDG_CACHE_DIR = _SESSION_DIR / "xdg-cache"
_GUARD_DIR = _SESSION_DIR / "site"

# set before anything below imports matplotlib or platformdirs, which read them once
os.environ["ATTNLIB_CACHE_DIR"] = str(CACHE_DIR)
os.environ["XDG_CACHE_HOME"] = str(XDG_CACHE_DIR)
os.environ.pop("ATTNLIB_CACHE", None)

_GUARD = '''
import ipaddress, socket

BLOCKED = []
"""(family, address) of every refused connection or lookup in this process."""


def _loopback(host):
    if host in (None, "", "localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(family, address):
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _loopback(address[0]):
        BLOCKED.append((family, address))
        raise ConnectionRefusedError(f"tests must not use the network (connection to {address!r} refused)")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    _check(self.family, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self.family, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host) and host != socket.gethostname():  # this machine's own name is looked up locally
        try:
            ipaddress.ip_address(str(host))  # a numeric address needs no lookup; its connection is checked
        except ValueError:
            BLOCKED.append(("lookup", host))
            raise socket.gaierror(socket.EAI_NONAME, f"tests must not use the network (lookup of {host!r} refused)")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''

_GUARD_DIR.mkdir()
(_GUARD_DIR / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_GUARD_DIR), os.environ.get("PYTHONPATH")) if p)
_network: dict = {}
exec(compile(_GUARD, str(_GUARD_DIR / "sitecustomize.py"), "exec"), _network)  # the guard in this process

import numpy as np  # noqa: E402 - after the environment above
import pytest  # noqa: E402

from attnlib.data import Corpus, Dataset  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_network():
    """Fail the test that tried to reach a non-loopback address, even if the code under test caught
    the refusal (a download that "fails gracefully" must not hide that a test went to the network)."""
    blocked = _network["BLOCKED"]
    blocked.clear()
    yield
    if blocked:
        attempts, _ = list(blocked), blocked.clear()
        pytest.fail(f"the test tried to use the network: {attempts}", pytrace=False)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) cannot be written, replaced or removed inside the block: read-only
    permissions for an ordinary user; for root, who ignores permissions (as CI runs), the immutable
    attribute (``chattr +i``); the test is skipped, with the reason, where neither is possible."""
    path = Path(path)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("root writes into read-only files and folders, and chattr +i (the immutable attribute) is not "
                    "available here or not supported by this file system")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True, capture_output=True)


def random_dataset(seed: int, vocab_size: int = 30, n_classes: int = 3, n_train: int = 12, n_test: int = 5,
                   max_len: int = 8) -> Dataset:
    """Sentences of random length (1..max_len) over a small vocabulary, with repeats."""
    rng = np.random.default_rng(seed)

    def corpus(n: int) -> Corpus:
        sentences = [rng.integers(0, vocab_size, size=rng.integers(1, max_len + 1)) for _ in range(n)]
        return Corpus(sentences, rng.integers(0, n_classes, size=n), vocab_size)

    vocab = [f"w{i}" for i in range(vocab_size)]
    return Dataset("random", vocab, n_classes, {"train": corpus(n_train), "test": corpus(n_test)})


@pytest.fixture
def tiny_datasets() -> list[Dataset]:
    return [random_dataset(11), random_dataset(12)]
