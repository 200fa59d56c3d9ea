"""TREC question classification: the loader (counts, labels, the 0xF0 byte, the dev split, refused files,
the download from a local server) and the chapter's analyses against independent small computations."""

from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attnlib.data import trec
from attnlib.data.trec import CLASSES, TRECDataError, find_data_dir, label_counts, load_trec, read_questions


def _real_dir() -> Path | None:
    try:
        return find_data_dir(download=False)
    except TRECDataError:
        return None


REAL_DIR = _real_dir()
needs_data = pytest.mark.skipif(REAL_DIR is None, reason="TREC files not found (../shared/data/trec, "
                                                          "$ATTNLIB_TREC_DIR or user cache); no download in tests")

TRAIN_COUNTS = {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}
TEST_COUNTS = {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}
"""Coarse label counts of the two files, as their distribution documents them."""


@pytest.fixture(scope="module")
def data():
    return load_trec(REAL_DIR)


# --------------------------------------------------------------------------- the real files


@needs_data
def test_counts_and_labels_of_the_original_files() -> None:
    train = read_questions(REAL_DIR / "train_5500.label")
    test = read_questions(REAL_DIR / "TREC_10.label")
    assert (len(train), len(test)) == (5452, 500)
    assert label_counts([CLASSES.index(c) for c, _, _ in train]) == TRAIN_COUNTS
    assert label_counts([CLASSES.index(c) for c, _, _ in test]) == TEST_COUNTS


@needs_data
def test_the_0xf0_byte_is_read_as_a_space() -> None:
    raw = (REAL_DIR / "train_5500.label").read_bytes()
    assert raw.count(b"\xf0") == 1 and raw.index(b"\xf0") == 3695
    line = read_questions(REAL_DIR / "train_5500.label")[65]  # line 66
    assert line[2][7:11] == ["a", "sister", "city", "with"]


@needs_data
def test_splits_partition_the_training_file_with_a_fixed_dev_split(data) -> None:
    sizes = {name: len(c) for name, c in data.splits.items()}
    assert sizes == {"train": 5452 - 545, "dev": 545, "test": 500}
    merged = {c: label_counts(data.train.labels)[c] + label_counts(data.splits["dev"].labels)[c] for c in CLASSES}
    assert merged == TRAIN_COUNTS
    assert data.vocab[0] == "$PAD$"
    # the dev split is the same draw every time, and another seed draws another one
    a, b = trec.dev_indices(5452), trec.dev_indices(5452)
    assert np.array_equal(a, b) and len(a) == 545 and len(np.unique(a)) == 545
    assert not np.array_equal(a, trec.dev_indices(5452, seed=1))
    questions = read_questions(REAL_DIR / "train_5500.label")
    dev_words = [" ".join(data.vocab[i] for i in s) for s in data.splits["dev"].sentences]
    expected = [" ".join(trec.tokenize(questions[i][2])) for i in a]
    assert dev_words == expected


@needs_data
def test_tokenised_as_sst(data) -> None:
    """Lowercased, every character that is not a word character or space deleted, split on whitespace."""
    raw = read_questions(REAL_DIR / "TREC_10.label")
    words = [[data.vocab[i] for i in s] for s in data.test.sentences]
    assert words == [re.sub(r"[^\w\s]", "", " ".join(q).lower()).split() for _, _, q in raw]
    assert words[0] == ["how", "far", "is", "it", "from", "denver", "to", "aspen"]


# --------------------------------------------------------------------------- refused files


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "trec"
    folder.mkdir()
    for f in trec.TREC_FILES.values():
        shutil.copyfile(REAL_DIR / f.name, folder / f.name)
    return folder


@needs_data
@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_damaged_file_is_refused_with_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    folder = _copy(tmp_path)
    path = folder / "train_5500.label"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data.replace(b"DESC:", b"ENTY:", 1))
    with pytest.raises(TRECDataError) as info:
        load_trec(folder)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "does not match the pinned copy" in message
    assert ("truncated" in message) == (damage == "truncate")


def test_a_named_folder_without_the_files_is_an_error_naming_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(trec.ENV_VAR, str(tmp_path))
    with pytest.raises(TRECDataError, match=f"{tmp_path}.*ATTNLIB_TREC_DIR lacks train_5500.label, TREC_10.label"):
        find_data_dir()


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.label"
    path.write_bytes(b"NUM:date When was it ?\nWHAT:x no class here\n")
    with pytest.raises(TRECDataError, match=r"x\.label, line 2: expected 'COARSE:fine question'"):
        read_questions(path)


# --------------------------------------------------------------------------- the download


FAKE = {"train_5500.label": b"NUM:date When did it happen ?\nHUM:ind Who did it ?\nLOC:city Where\xf0is it ?\n",
        "TREC_10.label": b"DESC:def What is it ?\n"}


@pytest.fixture
def fake_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = {split: replace(f, lines=FAKE[f.name].count(b"\n"), bytes=len(FAKE[f.name]),
                           sha256=hashlib.sha256(FAKE[f.name]).hexdigest()) for split, f in trec.TREC_FILES.items()}
    monkeypatch.setattr(trec, "TREC_FILES", pins)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str], dict[str, bytes]]]:
    """A local HTTP server: ``/good/NAME`` serves the fake files, ``/bad/NAME`` an edited copy."""
    requests: list[str] = []
    served = {f"good/{n}": d for n, d in FAKE.items()} | {f"bad/{n}": d.replace(b"it", b"IT") for n, d in FAKE.items()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.strip("/")
            requests.append(name)
            if name not in served:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(served[name])))
            self.end_headers()
            self.wfile.write(served[name])

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", requests, served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    monkeypatch.delenv(trec.ENV_VAR, raising=False)
    monkeypatch.setenv("ATTNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(trec, "shared_data_dir", lambda: shared)
    return {"shared": shared, "cache": tmp_path / "cache" / "trec"}


def test_download_from_a_local_server_verifies_then_installs(server, places, fake_pins,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, requests, _ = server
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "bad")
    with pytest.raises(TRECDataError) as info:
        find_data_dir()
    message = str(info.value)
    assert "\n" not in message and "does not match the pinned copy" in message and "nothing was written" in message
    assert not places["cache"].exists() and [p.name for p in places["cache"].parent.iterdir()] == []
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "good")
    assert find_data_dir() == places["cache"]
    assert {p.name: p.read_bytes() for p in places["cache"].iterdir()} == FAKE
    data = load_trec()
    assert {name: len(c) for name, c in data.splits.items()} == {"train": 3, "dev": 0, "test": 1}
    assert data.vocab.count("where") == 1 and "is" in data.vocab  # the 0xF0 byte split "Where" from "is"
    n = len(requests)
    assert find_data_dir() == places["cache"] and len(requests) == n  # served from the cache now


def test_a_missing_file_on_the_server_is_one_line(server, places, fake_pins, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _, _ = server
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "nowhere")
    with pytest.raises(TRECDataError, match="HTTP 404") as info:
        find_data_dir()
    assert "\n" not in str(info.value) and "TREC data not found" in str(info.value)
    with pytest.raises(TRECDataError, match="automatic download is disabled"):
        find_data_dir(download=False)
