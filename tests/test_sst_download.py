"""Downloading SST from a local HTTP server: a good archive, bad ones, a stalled one, and `attnlib verify-data`.

The server runs on 127.0.0.1 in a thread; no test reaches the network. The archives hold small fake
tree files whose sizes and sha256 replace the pinned ones for the test, so the tests run without the
real data.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from attnlib import cli
from attnlib.data import sst
from attnlib.data.sst import SSTDataError, find_data_dir, verify_data

FAKE_TREES = {
    "train": ["(3 (3 a) (2 fine) (3 film))", "(1 (1 dull))", "(2 (2 so-so))", "(4 (4 great) (2 cast))"],
    "dev": ["(0 (0 awful))", "(2 (2 okay))", "(3 (3 nice))"],
    "test": ["(4 (4 superb))", "(1 (1 weak) (2 plot))"],
}
"""Parseable PTB trees; SST2 keeps the roots other than 2 (neutral)."""


def _fake_files() -> dict[str, bytes]:
    return {split: ("\n".join(lines) + "\n").encode() for split, lines in FAKE_TREES.items()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("trees/", b"")
        for member, data in members.items():
            zf.writestr(member, data)
    return buffer.getvalue()


@pytest.fixture
def fake_pins(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Pin the fake files (sizes, line counts, sha256, sentence counts) in place of the real ones."""
    files = _fake_files()
    pins = {split: replace(f, lines=files[split].count(b"\n"), bytes=len(files[split]),
                           sha256=hashlib.sha256(files[split]).hexdigest())
            for split, f in sst.SST_FILES.items()}
    monkeypatch.setattr(sst, "SST_FILES", pins)
    sizes = {"SST5": {s: len(lines) for s, lines in FAKE_TREES.items()},
             "SST2": {s: sum(not line.startswith("(2 ") for line in lines) for s, lines in FAKE_TREES.items()}}
    monkeypatch.setattr(sst, "EXPECTED_SIZES", sizes)
    return files


@pytest.fixture
def archives(fake_pins: dict[str, bytes]) -> dict[str, bytes]:
    good = _zip({sst.SST_FILES[split].member: data for split, data in fake_pins.items()})
    tampered = dict(fake_pins, dev=fake_pins["dev"].replace(b"okay", b"OKAY"))
    return {
        "good": good,
        "truncated": good[: len(good) // 2],
        "tampered": _zip({sst.SST_FILES[split].member: data for split, data in tampered.items()}),
        "incomplete": good,  # sent with its full Content-Length, then cut off
        "slow": good,  # one byte at a time, slower than any deadline the tests set
    }


class _Server:
    """``/<name>.zip`` serves ``archives[name]``; ``incomplete`` and ``slow`` misbehave as named."""

    def __init__(self, archives: dict[str, bytes]) -> None:
        self.archives = archives
        self.stop = threading.Event()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/").removesuffix(".zip")
                server.requests.append(name)
                if name not in server.archives:
                    self.send_error(404)
                    return
                data = server.archives[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if name == "incomplete":
                        self.wfile.write(data[: len(data) // 3])
                    elif name == "slow":
                        for i in range(len(data)):
                            if server.stop.wait(0.2):
                                return
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(data)
                except OSError:  # the client gave up
                    pass
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}.zip"


@pytest.fixture
def server(archives: dict[str, bytes]) -> Iterator[_Server]:
    srv = _Server(archives)
    srv.thread.start()
    yield srv
    srv.stop.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy configured for the network must not be asked for the local server."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """No data anywhere: no $ATTNLIB_DATA_DIR, an empty shared folder, an empty cache in tmp."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.delenv(sst.ENV_VAR, raising=False)
    monkeypatch.delenv(sst.URL_ENV_VAR, raising=False)
    monkeypatch.setenv("ATTNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sst, "shared_data_dir", lambda: shared)
    return {"shared": shared, "cache": tmp_path / "cache" / "sst"}


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_url_comes_from_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sst.URL_ENV_VAR, raising=False)
    assert sst.sst_url() == sst.SST_URL
    monkeypatch.setenv(sst.URL_ENV_VAR, "http://127.0.0.1:9/mirror.zip")
    assert sst.sst_url() == "http://127.0.0.1:9/mirror.zip"


def test_good_archive_is_installed(server: _Server, places: dict[str, Path], fake_pins: dict[str, bytes],
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    assert find_data_dir() == places["cache"]
    assert _contents(places["cache"]) == {sst.SST_FILES[s].name: data for s, data in fake_pins.items()}
    assert server.requests == ["good"]
    err = capsys.readouterr().err
    assert server.url("good") in err and "\r" not in err  # stderr is not a terminal: no progress bar
    assert [p.name for p in places["cache"].parent.iterdir()] == ["sst"]  # no temporary folder left
    assert find_data_dir() == places["cache"] and server.requests == ["good"]  # served from the cache now


@pytest.mark.parametrize("name, fragment", [
    ("truncated", "is not a valid zip file"),
    ("tampered", "archive member trees/dev.txt downloaded from .* does not match the pinned copy: expected sha256"),
    ("incomplete", "could not download .*IncompleteRead"),
    ("missing", "HTTP 404"),
])
def test_bad_archive_leaves_the_cache_alone_and_the_next_attempt_downloads(
        server: _Server, places: dict[str, Path], name: str, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = places["cache"]
    cache.mkdir(parents=True)
    (cache / "train.txt").write_bytes(b"left by someone\n")  # an incomplete cache must survive a bad download
    before = _contents(cache)
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url(name))
    with pytest.raises(SSTDataError, match=fragment) as info:
        find_data_dir()
    message = str(info.value)
    assert "\n" not in message and server.url(name) in message and "nothing was written to the cache" in message
    assert _contents(cache) == before
    assert [p.name for p in cache.parent.iterdir()] == ["sst"]
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    assert find_data_dir() == cache
    sst.verify_files(cache)
    assert server.requests == [name, "good"]


def test_a_stalled_server_fails_at_the_deadline(server: _Server, places: dict[str, Path]) -> None:
    started = time.monotonic()
    with pytest.raises(SSTDataError, match=r"did not finish within the 1\.5 s deadline") as info:
        sst.download_sst(places["cache"], server.url("slow"), deadline_s=1.5, socket_timeout_s=10)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 5, elapsed  # the server sends a byte every 0.2 s: no read ever times out
    assert "\n" not in str(info.value)
    assert not places["cache"].exists()
    worker = [t for t in threading.enumerate() if t.name == "attnlib-sst-download"]
    for thread in worker:
        thread.join(5)
    assert not any(t.is_alive() for t in worker)  # the blocked read was ended, not left running


def test_default_deadline_is_read_at_call_time(server: _Server, places: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sst, "DOWNLOAD_DEADLINE_S", 1.0)
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("slow"))
    with pytest.raises(SSTDataError, match=r"SST data not found .* the download failed: the download of .* "
                                           r"did not finish within the 1 s deadline"):
        find_data_dir()


def test_progress_bar_only_when_asked_or_on_a_terminal(server: _Server, places: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    sst.download_sst(places["cache"], server.url("good"), progressbar=True)
    assert "B/s" in capsys.readouterr().err  # tqdm's rate column
    (places["cache"] / "test.txt").write_bytes(b"(2 (2 edited))\n")
    sst.download_sst(places["cache"], server.url("good"))  # replaces the copy that no longer verifies
    assert "B/s" not in capsys.readouterr().err
    sst.verify_files(places["cache"])


def test_a_good_copy_installed_meanwhile_is_kept(server: _Server, places: dict[str, Path]) -> None:
    """Two processes downloading at once: the second keeps the first one's copy, which readers may hold."""
    sst.download_sst(places["cache"], server.url("good"))
    inode = (places["cache"] / "train.txt").stat().st_ino
    sst.download_sst(places["cache"], server.url("good"))
    assert (places["cache"] / "train.txt").stat().st_ino == inode
    assert [p.name for p in places["cache"].parent.iterdir()] == ["sst"]


def test_a_bad_cached_copy_is_downloaded_again(server: _Server, places: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    find_data_dir()
    (places["cache"] / "dev.txt").write_bytes(b"(2 (2 edited))\n")
    assert find_data_dir() == places["cache"]
    sst.verify_files(places["cache"])
    assert server.requests == ["good", "good"]
    (places["cache"] / "dev.txt").write_bytes(b"(2 (2 edited))\n")
    with pytest.raises(SSTDataError, match="dev.txt does not match the pinned copy.*download is disabled") as error:
        find_data_dir(download=False)
    assert "not found" not in str(error.value) and not isinstance(error.value, sst.SSTDataNotFound)


# --------------------------------------------------------------------------- through the command line


def test_verify_data_downloads_fails_cleanly_and_recovers(server: _Server, places: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An empty cache and no local data: a good archive verifies, a truncated one gives one line and
    leaves no trace, and the good one then verifies again (the cache was not poisoned)."""
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    assert cli.main(["verify-data"]) == 0
    assert f"SST data verified in {places['cache']}" in capsys.readouterr().out

    cache_root = places["cache"].parent
    for child in list(cache_root.iterdir()):
        for p in child.iterdir():
            p.unlink()
        child.rmdir()
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("truncated"))
    assert cli.main(["verify-data"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("attnlib: SST data not found") and "is not a valid zip file" in err[-1]
    assert err[0].startswith("Downloading the Stanford Sentiment Treebank") and len(err) == 2
    assert list(cache_root.iterdir()) == []

    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    assert cli.main(["verify-data"]) == 0
    assert f"SST data verified in {places['cache']}" in capsys.readouterr().out
    assert server.requests == ["good", "truncated", "good"]


def test_verify_data_never_downloads_for_a_named_folder(server: _Server, places: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(sst.URL_ENV_VAR, server.url("good"))
    missing = tmp_path / "no-such-folder"
    assert cli.main(["verify-data", "--data-dir", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [(f"attnlib: the SST data folder {missing} named by the data_dir argument (--data-dir) does not "
                    "exist (it must hold train.txt, dev.txt and test.txt)")]
    monkeypatch.setenv(sst.ENV_VAR, str(tmp_path))
    assert cli.main(["verify-data"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"folder {tmp_path} named by ${sst.ENV_VAR} lacks train.txt, dev.txt, test.txt" in err[0]
    assert server.requests == [] and not places["cache"].exists()


def test_verify_data_reads_a_named_folder(server: _Server, places: dict[str, Path], fake_pins: dict[str, bytes],
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    for split, data in fake_pins.items():
        (folder / sst.SST_FILES[split].name).write_bytes(data)
    monkeypatch.setenv(sst.ENV_VAR, str(folder))
    assert verify_data() == folder
    assert server.requests == []


# --------------------------------------------------------------------------- malformed files, the real archive


@pytest.mark.parametrize("bad_line, fragment", [
    (b"(3 (3 a) (2 fine) (3 fil", r"train.txt, line 2: leaf token 'fil' is not closed by '\)'"),
    (b"(3 (3 caf\xe9))", r"train.txt, line 2: not UTF-8 text"),
])
def test_malformed_train_is_one_line_naming_it(fake_pins: dict[str, bytes], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, bad_line: bytes,
                                                fragment: str) -> None:
    """A train.txt whose checksum is pinned but whose text does not parse (here: the pin is the bad file's)."""
    lines = fake_pins["train"].split(b"\n")
    lines[1] = bad_line
    files = dict(fake_pins, train=b"\n".join(lines))
    monkeypatch.setitem(sst.SST_FILES, "train", replace(sst.SST_FILES["train"], bytes=len(files["train"]),
                                                        sha256=hashlib.sha256(files["train"]).hexdigest()))
    for split, data in files.items():
        (tmp_path / sst.SST_FILES[split].name).write_bytes(data)
    with pytest.raises(SSTDataError, match=fragment) as info:
        sst.load_sst("SST5", tmp_path, download=False)
    assert str(tmp_path / "train.txt") in str(info.value) and "\n" not in str(info.value)


def _real_dir() -> Path | None:
    folder = sst.shared_data_dir()
    try:
        sst.verify_files(folder)
    except SSTDataError:
        return None
    return folder


@pytest.mark.skipif(_real_dir() is None, reason="the real SST files are not beside the checkout")
def test_real_members_round_trip(tmp_path: Path) -> None:
    """The real files, zipped as the published archive lays them out, pass the real pins."""
    real = _real_dir()
    assert real is not None
    archive = _zip({f.member: (real / f.name).read_bytes() for f in sst.SST_FILES.values()})
    srv = _Server({"real": archive})
    srv.thread.start()
    try:
        dest = tmp_path / "cache" / "sst"
        sst.download_sst(dest, srv.url("real"))
        sst.verify_files(dest)
        assert sorted(p.name for p in dest.iterdir()) == ["dev.txt", "test.txt", "train.txt"]
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
